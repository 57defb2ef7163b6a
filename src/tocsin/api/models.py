"""The HTTP API's request and response bodies: the single source of its OpenAPI schema."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from tocsin.vocabulary import Severity

MAX_BATCH_EVENTS = 10_000

AlertStatus = Literal["open", "acknowledged", "resolved"]
FeedbackLabel = Literal["true_positive", "false_positive"]
RoleName = Literal["viewer", "analyst", "admin"]

_EXAMPLE_EVENT = {
    "tx_id": "tx-1", "card_id": "card0000042", "ts": 1767225600.0, "amount": 42.5,
    "merchant_id": "m00017", "merchant_category": "grocery", "city": "city_03", "channel": "pos",
}

Event = dict[str, Any]
"""One event: an object with the fields the pipeline's schema declares (see ``GET /v1/pipelines``);
unknown fields are kept but not scored. Events are validated one by one: a bad one is returned as a
dead letter with its reason, the others are still scored."""


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class EventsIn(_Model):
    """Give exactly one of ``event`` (one event) or ``events`` (1 to 10,000 events)."""

    event: Event | None = Field(None, description="one event")
    events: list[Event] | None = Field(None, min_length=1, max_length=MAX_BATCH_EVENTS, description="a batch of events, scored in order")

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"event": _EXAMPLE_EVENT}, {"events": [_EXAMPLE_EVENT]}]})

    @model_validator(mode="after")
    def _exactly_one(self) -> EventsIn:
        if (self.event is None) == (self.events is None):
            raise ValueError("give exactly one of `event` or `events`")
        return self

    def records(self) -> list[Event]:
        return [self.event] if self.event is not None else list(self.events or [])


class Contribution(BaseModel):
    feature: str
    value: float | None = None
    contribution: float
    text: str


class ScoreResult(BaseModel):
    """The decision for one event, in request order."""

    index: int = Field(description="position of the event in the request")
    id: str | None = Field(None, description="the event's id field")
    entity: str | None = Field(None, description="the event's key field")
    status: Literal["scored", "warming_up", "dead_letter"] = Field(
        description="scored; warming_up: the detector is still learning from its first events, so score is null and "
        "is_anomaly false; dead_letter: the event failed validation (see reason)"
    )
    score: float | None = Field(None, ge=0, le=1, description="calibrated anomaly score in [0, 1]")
    score_100: float | None = Field(None, ge=0, le=100, description="the same score on a 0-100 scale")
    is_anomaly: bool = False
    severity: Severity | None = None
    explanation: list[Contribution] = Field(default_factory=list, description="top feature contributions, anomalies only")
    reason: str | None = Field(None, description="why a dead letter was rejected")


class ScoreResponse(BaseModel):
    pipeline: str
    model_status: Literal["warm", "warming_up"]
    model_version: int = Field(description="number of detector fits so far (0 while warming up)")
    scored: int
    dead_letters: int
    results: list[ScoreResult]
    position: int = Field(description="the request's journal entry (its place in the order events were folded in)")


class EventsAccepted(BaseModel):
    accepted: int
    ids: list[str | None] = Field(description="each event's id field, in request order (null when missing)")
    queue_depth: int
    position: int = Field(description="the request's journal entry: durable once answered, folded in in this order")


class Anomaly(BaseModel):
    id: int
    event_id: str
    entity: str
    event_time: float
    score: float
    score_100: float
    raw_score: float | None = None
    severity: Severity
    detector: str
    explanation: list[dict[str, Any]]
    fields: dict[str, Any] = Field(description="the event as received; sensitive fields masked for viewers")
    label: int | None = Field(None, description="1 true positive, 0 false positive (feedback or ground truth)")
    created_at: float


class AnomalyPage(BaseModel):
    items: list[Anomaly]
    next_cursor: str | None = Field(None, description="pass as `cursor` for the next page; null on the last page")


class Alert(BaseModel):
    id: int
    alert_key: str
    entity: str
    severity: Severity
    status: AlertStatus
    first_event_id: str
    event_time: float
    score: float
    count: int
    explanation: list[dict[str, Any]]
    created_at: float
    updated_at: float
    pattern: str | None = Field(None, description="what the grouped anomalies have in common (e.g. rate, amount, new_city)")
    window_start: float | None = Field(None, description="event time of the first anomaly in the group")
    window_end: float | None = None
    last_event_time: float | None = None
    suppressed: bool | None = Field(None, description="a repeat within the suppression period: stored, not delivered")
    budget_cutoff: float | None = Field(None, description="the alert budget's score cut-off when this alert opened")
    deliveries: list[dict[str, Any]] = Field(default_factory=list, description="per channel: status, attempts, last error")
    acknowledged_by: str | None = Field(None, description="who acknowledged it (the key id or the token's subject)")
    acknowledged_at: float | None = None
    resolved_by: str | None = Field(None, description="who resolved it; null when it resolved itself after a quiet period")
    resolved_at: float | None = None
    mutes: list[Mute] = Field(default_factory=list, description="mutes its verdicts set: who muted what and until when")
    verdicts: list[Verdict] = Field(default_factory=list, description="verdicts given on it, newest first (one alert's page only)")


class Verdict(BaseModel):
    label: FeedbackLabel
    author: str | None = None
    note: str | None = None
    created_at: float
    anomalies: int = Field(description="how many of its anomalies the verdict labelled")


class AlertPage(BaseModel):
    items: list[Alert]
    next_cursor: str | None = None


class MuteIn(_Model):
    """Stop alerting on what the verdict said is normal: later anomalies that match are stored and counted
    but open no alert, until the mute ends (or someone lifts it: ``DELETE /v1/mutes/{id}``)."""

    days: float = Field(gt=0, le=365, description="how long, counted from now (or from the alert's last anomaly if later)")
    scope: Literal["entity_pattern", "entity"] = Field(
        "entity_pattern", description="`entity_pattern`: this entity's anomalies with this pattern; `entity`: all of this entity's")


class FeedbackIn(_Model):
    """A verdict on one anomaly (``event_id``) or on one alert (``alert_id``: applied to every anomaly it
    grouped); a false-positive verdict may ``mute`` what it saw."""

    event_id: str | None = Field(None, min_length=1, max_length=255, description="the anomaly's event id")
    alert_id: int | None = Field(None, ge=1, description="the alert's id")
    label: FeedbackLabel
    note: str | None = Field(None, max_length=2_000)
    mute: MuteIn | None = None

    @model_validator(mode="after")
    def _one_target(self) -> FeedbackIn:
        if (self.event_id is None) == (self.alert_id is None):
            raise ValueError("give exactly one of `event_id` (a verdict on one anomaly) or `alert_id` (on one alert)")
        if self.mute is not None and self.label != "false_positive":
            raise ValueError("`mute` needs `label: false_positive`: only what people said is normal can be muted")
        return self


class Mute(BaseModel):
    id: int
    entity: str
    pattern: str | None = Field(description="null: every pattern of the entity")
    since: float = Field(description="event time from which matching anomalies open no alert")
    until: float = Field(description="event time at which the mute ends")
    alert_id: int | None = None
    event_id: str | None = None
    author: str | None = Field(None, description="who muted (the key id or the token's subject)")
    note: str | None = None
    created_at: float
    lifted_at: float | None = Field(None, description="when someone lifted it early")
    lifted_by: str | None = None


class MutePage(BaseModel):
    items: list[Mute]


class FeedbackOut(BaseModel):
    event_id: str | None = None
    alert_id: int | None = None
    label: FeedbackLabel
    note: str | None = None
    author: str = Field(description="who gave it (the key id or the token's subject)")
    created_at: float
    anomalies: int = Field(1, description="how many anomalies got the label (an alert's verdict labels all it grouped)")
    mute: Mute | None = None


class DeadLetter(BaseModel):
    id: int
    source: str = Field(description="where the record came from, e.g. `api` or `kafka:tx/3`")
    position: int = Field(description="its place in that source")
    reason: str
    raw: str | None = Field(description="the record as received, as UTF-8 text (undecodable bytes replaced)")
    raw_bytes: int = Field(description="the stored record's size in bytes")
    raw_truncated: bool = Field(description="`raw` holds only the first 64 KiB")
    created_at: float


class DeadLetterPage(BaseModel):
    items: list[DeadLetter]
    next_cursor: str | None = None


class RecentEvent(BaseModel):
    event_id: str
    event_time: float
    score: float | None
    score_100: float | None
    is_anomaly: bool
    severity: Severity | None
    values: dict[str, Any] = Field(description="the event's declared numeric and categorical fields")


class MetricAnomaly(BaseModel):
    event_id: str
    event_time: float
    value: float | None = Field(description="the metric's reading")
    score_100: float | None
    severity: Severity | None
    why: str = Field(description="what the anomaly's explanation says of this metric")


class MetricSeries(BaseModel):
    """One metric of the entity over its recent readings, beside what its series model expected (a ``series``
    feature): the columns of a metric chart with its usual band, aligned with ``times``."""

    metric: str
    features: list[str] = Field(description="the features computed from this metric's series (its surprise, its trend)")
    times: list[float] = Field(description="event times of the entity's recent readings, oldest first")
    values: list[float | None]
    expected: list[float | None] = Field(description="the value the series model expected at each reading, from its state before it")
    sigma: list[float | None] = Field(description="the standard deviation it expected around that value")
    low: list[float | None] = Field(description="the usual band's low end: expected - 2 sigma (0 for a non-negative metric)")
    high: list[float | None] = Field(description="the usual band's high end: expected + 2 sigma")
    anomalies: list[MetricAnomaly] = Field(description="the readings flagged for this metric (their explanation names it)")


class Entity(BaseModel):
    key: str
    state: dict[str, float] = Field(description="current per-entity feature state, as of its last event")
    recent_events: list[RecentEvent] = Field(description="this service's most recent events of the entity, oldest first")
    anomalies: list[Anomaly] = Field(description="stored anomalies of the entity, newest first")
    metrics: list[MetricSeries] = Field(
        default_factory=list, description="a series pipeline: each metric over the recent events with its usual band (none otherwise)")


class Vocabulary(BaseModel):
    """What the pipeline's things are called, from its schema (the dashboard speaks these words)."""

    pipeline: str
    entity: str = Field(description="an entity, from the key field: `card_id` is a card, `host` a host")
    entities: str
    label: str | None = Field(description="the ground-truth label, from the label field: `is_incident` is an incident")
    labels: str | None
    events: Literal["events", "readings"] = Field(description="readings where events are aggregated into per-entity readings")
    metrics: list[str] = Field(description="the metrics a series feature models per entity (plotted with their usual band)")


class PipelineInfo(BaseModel):
    name: str
    detector: str
    model_status: Literal["warm", "warming_up"]
    model_version: int
    events_seen: int
    warmup_events: int
    features: list[str]
    event_schema: dict[str, Any]
    threshold: dict[str, Any]
    severity: dict[str, Any]
    sensitive_fields: list[str]


class ComponentHealth(BaseModel):
    status: Literal["ok", "warming_up", "not_configured", "down"]
    detail: str = ""


class Health(BaseModel):
    status: Literal["ok", "degraded"]
    components: dict[str, ComponentHealth]


class SeriesPoint(BaseModel):
    t: float = Field(description="epoch second")
    events: int
    anomalies: int


class Stats(BaseModel):
    pipeline: str
    events: int
    events_per_s: float = Field(description="over the last 10 seconds")
    anomalies: int
    anomaly_rate: float = Field(description="anomalies / scored events since start")
    anomalies_by_severity: dict[str, int]
    alerts_by_severity: dict[str, int]
    alerts_by_status: dict[str, int]
    dead_letters: int
    queue_depth: int
    model_status: Literal["warm", "warming_up"]
    series: list[SeriesPoint] = Field(description="events and anomalies per second, last 5 minutes")


class KeyCreate(_Model):
    role: RoleName
    name: str = Field("", max_length=200)


class KeyInfo(BaseModel):
    id: str
    role: RoleName
    name: str
    created_at: float


class KeyCreated(KeyInfo):
    key: str = Field(description="the secret key; shown once, only its hash is stored")


class ModelInfo(BaseModel):
    detector: str
    status: Literal["warm", "warming_up"]
    version: int
    training_rows: int
    params: dict[str, Any]
    features: list[str]


AliasName = Literal["champion", "challenger"]


class ModelVersionInfo(BaseModel):
    """A registered model version (``tocsin train`` writes them) and the aliases naming it."""

    pipeline: str
    version: int = Field(description="1, 2, 3… per pipeline; one number is one model for ever")
    aliases: list[str] = Field(description="champion (scores live), challenger (scores in shadow)")
    detector: str
    feature_names: list[str] = Field(description="the detector's input columns, in order")
    spec_hash: str = Field(description="hash of the spec sections it was trained for (features, detector, schema)")
    sections: dict[str, Any] = Field(description="those sections")
    trained_from: float | None = Field(description="event time of the first training row (epoch seconds)")
    trained_until: float | None
    rows: int = Field(description="training rows")
    metrics: dict[str, float | None] = Field(description="metrics on the held-out tail (null: not measured)")
    tocsin_version: str
    created_by: str
    created_at: float
    note: str


class AliasMove(BaseModel):
    """An alias pointed at a version: by a promotion, or back by a rollback."""

    alias: AliasName
    version: int = Field(description="the version the alias names now")
    previous: int | None = Field(description="the version it named before (null: none)")
    kind: Literal["promote", "rollback"]
    by: str = Field(description="who: an API key id (key:…) or a token's subject")
    at: float
    model: ModelVersionInfo


class ModelComparison(BaseModel):
    """A challenger scored in shadow beside the champion, summed over the same events
    (:func:`tocsin.engine.shadow.comparison`)."""

    pipeline: str
    challenger: int
    champion: int = Field(description="the champion it ran beside last")
    champions: list[int] = Field(description="every champion it ran beside")
    batches: int
    events: int = Field(description="events both scored")
    champion_anomalies: int
    challenger_anomalies: int
    both_anomalies: int
    overlap: float | None = Field(description="flagged by both / flagged by either (null: neither flagged any)")
    labelled: int = Field(description="of the events, those with a label")
    positives: int
    champion_true: int
    challenger_true: int
    champion_precision: float | None
    challenger_precision: float | None
    champion_recall: float | None
    challenger_recall: float | None
    champion_scores: list[int] = Field(description="calibrated scores counted in 20 bins of [0, 1]")
    challenger_scores: list[int]


class FeatureDrift(BaseModel):
    feature: str = Field(description="a scored feature, or 'score' for the detector's raw score")
    psi: float = Field(description="population stability index of the recent rows against the model's training rows")
    ks: float = Field(description="Kolmogorov-Smirnov distance, the same two distributions")
    drifted: bool = Field(description="past drift.psi_alert (alerts are raised for a model from the registry)")


class ModelDrift(BaseModel):
    """How far the scored features and the score moved from the running model's training rows."""

    model_version: int = Field(description="the registry version scoring (0: the pipeline's own fit)")
    psi_alert: float | None
    features: list[FeatureDrift] = Field(description="worst first; empty until drift.min_rows rows were scored")
