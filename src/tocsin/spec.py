"""The pipeline spec: one YAML file says where events come from, what they look
like, which features and detectors run, and where results go.

Validated by pydantic at load, so a mistake fails before any event is read,
with a message that names the field path and what was expected.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal, Union

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from tocsin.durations import Duration, format_duration, parse_duration  # noqa: F401  (the last two re-exported)



class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# --- sources -----------------------------------------------------------------


class SimulatorSource(_Model):
    kind: Literal["simulator"]
    scenario: Literal["transactions"] = "transactions"
    seed: int = 7
    users: int = Field(5_000, ge=1)
    merchants: int = Field(2_000, ge=10)
    fraud_rate: float = Field(0.004, ge=0, le=0.5, description="share of events that are injected fraud")
    warmup_days: float = Field(1.0, ge=0, description="days of clean history before the first injected fraud")
    start: str = "2026-01-01T00:00:00Z"


class FileSource(_Model):
    kind: Literal["file"]
    path: Path
    format: Literal["csv", "jsonl", "json", "parquet"] | None = Field(
        None, description="inferred from the file suffix when omitted"
    )


from tocsin.alerting.config import AlertingSpec  # noqa: E402  (pydantic models only)
from tocsin.kafka.config import KafkaSource, StreamSettings  # noqa: E402  (pydantic models only)

SourceSpec = Annotated[Union[SimulatorSource, FileSource, KafkaSource], Field(discriminator="kind")]


# --- event schema ------------------------------------------------------------


class SchemaSpec(_Model):
    """What an event looks like. Unknown fields are accepted and ignored."""

    id_field: str = "id"
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
        roles = [("id_field", self.id_field), ("key_field", self.key_field), ("time_field", self.time_field)]
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


# --- features ----------------------------------------------------------------


class _FeatureBase(_Model):
    by: str | None = Field(
        "entity",
        description="'entity' (the schema's key field), a categorical field name, or 'global' for one state shared by all events",
    )


class WindowFeature(_FeatureBase):
    """Count (and sum of ``field``) of the key's earlier events in sliding time windows."""

    kind: Literal["window"]
    field: str | None = None
    windows: list[Duration] = Field(default_factory=lambda: [60.0, 3600.0], min_length=1)


class DecayedStatsFeature(_FeatureBase):
    """z-score and ratio of ``field`` against the key's time-decayed mean and std."""

    kind: Literal["decayed_stats"]
    field: str
    half_life: Duration = 86_400.0
    outputs: list[Literal["zscore", "ratio", "mean", "std"]] = Field(default_factory=lambda: ["zscore", "ratio"])


class RecencyFeature(_FeatureBase):
    """Seconds since the key's previous event (``cap`` when there is none)."""

    kind: Literal["recency"]
    cap: Duration = 30 * 86_400.0


class VelocityFeature(_FeatureBase):
    """Time-decayed event rate of the key, in events per minute (and, with ``baseline``, relative to its usual rate)."""

    kind: Literal["velocity"]
    half_life: Duration = 600.0
    baseline: Duration | None = Field(
        None, description="also output the rate relative to the key's own rate over this longer half-life (a burst ratio)"
    )

    @model_validator(mode="after")
    def _baseline_longer(self) -> VelocityFeature:
        if self.baseline is not None and self.baseline <= self.half_life:
            raise ValueError(f"baseline ({self.baseline:g}s) must be longer than half_life ({self.half_life:g}s)")
        return self


class NoveltyFeature(_FeatureBase):
    """Whether the key has seen this value of a categorical ``field`` before, and how often."""

    kind: Literal["novelty"]
    field: str


class ValueFeature(_Model):
    """A numeric field passed through, optionally as log1p of its magnitude."""

    kind: Literal["value"]
    field: str
    log: bool = False


FeatureSpec = Annotated[
    Union[WindowFeature, DecayedStatsFeature, RecencyFeature, VelocityFeature, NoveltyFeature, ValueFeature],
    Field(discriminator="kind"),
]


# --- detectors, calibration, thresholds ---------------------------------------


class DetectorSpec(_Model):
    kind: str = Field("isolation_forest", description="a detector name from `tocsin.detectors.DETECTORS`")
    params: dict[str, Any] = Field(default_factory=dict, description="passed to the detector's constructor")
    features: list[str] | None = Field(None, description="feature names to score on; all features when omitted")
    warmup_events: int = Field(20_000, ge=100, description="events whose features train the detector before scoring starts")
    refit_every: int | None = Field(
        50_000, ge=100, description="events from the first fit to the first refit on the most recent train_window events; null fits once"
    )
    refit_growth: float = Field(
        2.0, ge=1.0, description="each interval between refits is this many times the one before (state matures early, so refit early)"
    )
    refit_max_every: int = Field(1_000_000, ge=100, description="the interval between refits stops growing here")
    train_window: int = Field(50_000, ge=100, description="most recent events a (re)fit learns from")

    @model_validator(mode="after")
    def _window_holds_warmup(self) -> DetectorSpec:
        if self.train_window < self.warmup_events:
            raise ValueError(
                f"train_window ({self.train_window}) must be >= warmup_events ({self.warmup_events}), "
                "or the first fit would see fewer rows than the warm-up"
            )
        return self


class CalibrationSpec(_Model):
    window: int = Field(50_000, ge=100, description="recent raw scores the calibrated score is ranked against")
    tail_quantile: float = Field(0.98, gt=0.5, lt=1.0, description="above this quantile the tail is extrapolated")
    update_every: int = Field(
        1_000, ge=1, description="scored events between calibration/threshold updates; fixed counts keep results independent of batch cuts"
    )


class ThresholdSpec(_Model):
    kind: Literal["fixed", "quantile", "adaptive"] = "fixed"
    value: float = Field(0.995, gt=0, lt=1, description="fixed: calibrated-score cut-off; quantile: q of recent calibrated scores")
    target_rate: float = Field(0.005, gt=0, lt=1, description="adaptive: share of events to flag")


class SeveritySpec(_Model):
    """Calibrated-score cut-offs; an anomaly below ``warning`` is ``info``."""

    warning: float = Field(0.999, gt=0, lt=1)
    critical: float = Field(0.9999, gt=0, lt=1)

    @model_validator(mode="after")
    def _ordered(self) -> SeveritySpec:
        if self.critical < self.warning:
            raise ValueError(f"critical ({self.critical}) must be >= warning ({self.warning})")
        return self


# --- sinks, checkpoints, runner ----------------------------------------------


class StoreSpec(_Model):
    url: str = Field("sqlite:///tocsin.db", description="SQLAlchemy URL; env TOCSIN_STORE_URL overrides")
    scored_events: bool = Field(False, description="also store every scored event, not only anomalies")


class CheckpointSpec(_Model):
    dir: Path = Path(".tocsin/checkpoints")
    interval: Duration = 10.0


class RunnerSpec(_Model):
    batch_size: int = Field(5_000, ge=1, le=1_000_000)
    max_wait: Duration = 0.1


class PipelineSpec(_Model):
    name: str = Field(pattern=r"^[A-Za-z0-9_.-]+$")
    source: SourceSpec
    event_schema: SchemaSpec = Field(alias="schema")
    features: list[FeatureSpec] = Field(min_length=1)
    detector: DetectorSpec = Field(default_factory=DetectorSpec)
    calibration: CalibrationSpec = Field(default_factory=CalibrationSpec)
    threshold: ThresholdSpec = Field(default_factory=ThresholdSpec)
    severity: SeveritySpec = Field(default_factory=SeveritySpec)
    store: StoreSpec = Field(default_factory=StoreSpec)
    checkpoint: CheckpointSpec = Field(default_factory=CheckpointSpec)
    runner: RunnerSpec = Field(default_factory=RunnerSpec)
    stream: StreamSettings = Field(default_factory=StreamSettings)
    alerting: AlertingSpec = Field(default_factory=AlertingSpec)

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    @model_validator(mode="after")
    def _features_name_declared_fields(self) -> PipelineSpec:
        schema = self.event_schema
        for i, feature in enumerate(self.features):
            by = getattr(feature, "by", "entity")
            if by not in ("entity", "global", None) and by not in schema.categorical:
                raise ValueError(
                    f"features.{i}.by: {by!r} is not a categorical field; use 'entity', 'global' "
                    f"or one of {schema.categorical}"
                )
            name = getattr(feature, "field", None)
            if name is None:
                continue
            wanted = schema.categorical if feature.kind == "novelty" else schema.numeric
            role = "categorical" if feature.kind == "novelty" else "numeric"
            if name not in wanted:
                raise ValueError(
                    f"features.{i}.field: {name!r} is not a declared {role} field; add it to schema.{role} "
                    f"or use one of {wanted}"
                )
        return self


class SpecError(ValueError):
    """An invalid pipeline spec; the message names each bad field and the fix."""


def _format_validation_error(error: ValidationError, source: str) -> str:
    lines = [f"invalid pipeline spec {source}:"]
    for item in error.errors():
        path = ".".join(str(part) for part in item["loc"] if not str(part).startswith("function-"))
        message = item["msg"].removeprefix("Value error, ")
        if item["type"] == "extra_forbidden":
            message = "unknown field; remove it or check its spelling"
        elif item["type"] == "union_tag_invalid":
            message = f"{message} (this field's 'kind' picks its type)"
        got = item.get("input")
        hint = "" if item["type"] in ("missing", "value_error") or isinstance(got, dict) else f" (got {got!r})"
        lines.append(f"  {path or '<root>'}: {message}{hint}")
    return "\n".join(lines)


def parse_spec(data: Any, source: str = "<dict>") -> PipelineSpec:
    """A validated spec from already-parsed YAML/JSON data."""
    if not isinstance(data, dict):
        raise SpecError(f"invalid pipeline spec {source}: the top level must be a mapping, got {type(data).__name__}")
    try:
        return PipelineSpec.model_validate(data)
    except ValidationError as error:
        raise SpecError(_format_validation_error(error, source)) from None


def load_spec(path: str | Path) -> PipelineSpec:
    """Read and validate a YAML pipeline spec; relative paths inside it resolve against its folder."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as error:
        raise SpecError(f"cannot read pipeline spec {path}: {error.strerror}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise SpecError(f"pipeline spec {path} is not valid YAML: {error}") from None
    spec = parse_spec(data, str(path))
    if isinstance(spec.source, FileSource) and not spec.source.path.is_absolute():
        resolved = (path.parent / spec.source.path).resolve()
        if resolved.exists() or not spec.source.path.exists():
            spec = spec.model_copy(update={"source": spec.source.model_copy(update={"path": resolved})})
    return spec
