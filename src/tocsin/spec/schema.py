"""What an event looks like: the ``schema`` section."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

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

    @model_validator(mode="after")
    def _distinct_fields(self) -> SchemaSpec:
        seen: dict[str, str] = {}
        roles = [("key_field", self.key_field), ("time_field", self.time_field)]
        roles += [("id_field", self.id_field)] if self.id_field is not None else []
        roles += [("numeric", n) for n in self.numeric] + [("categorical", c) for c in self.categorical]
        for role, name in roles:
            if name in seen:
                raise ValueError(f"field {name!r} is declared twice (as {seen[name]} and {role}); give each field one role")
            seen[name] = role
        for name in self.sensitive:
            if name in (self.id_field, self.key_field):
                raise ValueError(f"sensitive: {name!r} is the id or key field, which lookups need in clear; remove it")
            if name not in seen:
                raise ValueError(f"sensitive: {name!r} is not a declared field; declare it in numeric or categorical")
        return self
