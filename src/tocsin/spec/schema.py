"""What an event looks like, and which events may change state: the ``schema`` and ``admission`` sections."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from tocsin.durations import Duration
from tocsin.spec.base import SpecModel


class SchemaSpec(SpecModel):
    """What an event looks like. Unknown fields are accepted and ignored."""

    id_field: str | None = Field(
        "id", description="unique event id; null: none in the data, an id is derived from the source and position (replays stay idempotent)"
    )
    key_field: str
    time_field: str = "ts"
    time_format: Literal["epoch_s", "epoch_ms", "iso8601"] = "epoch_s"
    numeric: list[str] = Field(default_factory=list)
    categorical: list[str] = Field(default_factory=list)
    label_field: str | None = Field(None, description="ground-truth column (0/1) for backtests and demos")
    sensitive: list[str] = Field(
        default_factory=list, description="fields encrypted at rest (AES-256-GCM) and masked for viewers in the API"
    )
    max_event_bytes: int = Field(65_536, ge=64)
    derived: dict[str, str] = Field(
        default_factory=dict,
        description="numeric fields computed from the declared numeric fields and the event time, e.g. "
                    "{is_error: 'status >= 500', hour: 'hour_of_day(ts)'} (the rules' expressions; true is 1)")
    optional: dict[str, float | str] = Field(
        default_factory=dict,
        description="declared fields that may be absent or null, with the value they then take: {discount: 0, coupon: 'none'} "
                    "(a number for a numeric field, text for a categorical one); other declared fields are required")
    max_abs_value: float = Field(
        1e15, gt=0, description="a numeric field beyond ± this is a dead letter (huge values overflow per-entity statistics)")

    @property
    def numeric_fields(self) -> list[str]:
        """The numeric fields features may read: the declared ones, then the derived ones."""
        return [*self.numeric, *self.derived]

    @model_validator(mode="after")
    def _distinct_fields(self) -> SchemaSpec:
        seen: dict[str, str] = {}
        roles = [("key_field", self.key_field), ("time_field", self.time_field)]
        roles += [("id_field", self.id_field)] if self.id_field is not None else []
        roles += [("numeric", n) for n in self.numeric] + [("categorical", c) for c in self.categorical]
        for role, name in roles:
            if name == self.key_field and role == "categorical":
                continue  # the key may also be a category (distinct users per IP: novelty of `user` by `ip`)
            if name in seen:
                raise ValueError(f"field {name!r} is declared twice (as {seen[name]} and {role}); give each field one role")
            seen[name] = role
        for name, expression in self.derived.items():
            if name in seen or not name.isidentifier():
                raise ValueError(f"derived: {name!r} is " + ("already declared" if name in seen else "not a field name")
                                 + "; give the derived field a name of its own (letters, digits, _)")
            from tocsin.expressions import RuleError, parse_rule  # the expression grammar (a leaf module)

            try:
                reads = parse_rule(expression)[1]
            except RuleError as error:
                raise ValueError(f"derived.{name}: {error}") from None
            known = {*self.numeric, self.time_field, *list(self.derived)[: list(self.derived).index(name)]}
            unknown = [column for column in reads if column not in known]
            if unknown:
                raise ValueError(f"derived.{name}: {unknown} are not numeric fields (or the time field "
                                 f"{self.time_field!r}, or a derived field above it); choose from {sorted(known)}")
            seen[name] = "derived"
        for name, default in self.optional.items():
            role = seen.get(name)
            if role not in ("numeric", "categorical"):
                raise ValueError(f"optional: {name!r} is " + (f"the {role}" if role else "not a declared field")
                                 + "; only numeric and categorical fields may be optional (declare it in one of them)")
            if role == "numeric" and (isinstance(default, str) or isinstance(default, bool)):
                raise ValueError(f"optional.{name}: {default!r} is not a number; a numeric field's default is a number")
            if role == "categorical" and not isinstance(default, str):
                raise ValueError(f"optional.{name}: {default!r} is not text; a categorical field's default is text, e.g. 'none'")
            if name == self.key_field:
                raise ValueError(f"optional: {name!r} is the key field, which every event must carry")
        for name in self.sensitive:
            if name in (self.id_field, self.key_field):
                raise ValueError(f"sensitive: {name!r} is the id or key field, which lookups need in clear; remove it")
            if name not in seen:
                raise ValueError(f"sensitive: {name!r} is not a declared field; declare it in numeric or categorical")
        return self


class AdmissionSpec(SpecModel):
    """Which decoded events may change a stream's state (``tocsin.engine.admission``): its event-time
    clock refuses times far from it, and a repeated event id is not counted twice."""

    max_ahead: Duration | None = Field(
        86_400.0, description="events more than this after the stream's event-time clock are dead letters (null: no limit)")
    max_behind: Duration | None = Field(
        30 * 86_400.0, description="events more than this before the stream's event-time clock are dead letters (null: no limit)")
    reclock_after: int = Field(
        3, ge=2, description="this many refused events in a row, close to each other, restart the clock at them (a feed resuming after a gap)")
    dedup_ids: int | None = Field(
        100_000, ge=2, description="the last this many admitted event ids (at least half of them) are remembered; a repeat is a dead letter (null: off)")
