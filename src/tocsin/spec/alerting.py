"""The ``alerting`` section of a pipeline spec: grouping, lifecycle, budget, channels, routes.

Validated by pydantic like the rest of :mod:`tocsin.spec` (frozen models,
unknown fields rejected, messages that name the field). Secrets never appear
inline: a channel names the environment variable that holds its HMAC key or
SMTP password (``secret_env``, ``password_env``), read when the channel is
built.

A minimal section that pages a webhook on critical alerts and mails warnings::

    alerting:
      window: 1h
      quiet_period: 30m
      budget: {per_day: 50}
      channels:
        fraud-hook: {kind: webhook, url: "https://hooks.example.com/fraud", secret_env: TOCSIN_WEBHOOK_KEY}
        oncall-mail: {kind: email, host: smtp.example.com, port: 587, starttls: true,
                      sender: tocsin@example.com, to: [fraud-team@example.com],
                      username: tocsin, password_env: TOCSIN_SMTP_PASSWORD}
      routes:
        - {match: {severity: [critical]}, channels: [fraud-hook]}
        - {match: {severity: [warning]}, channels: [oncall-mail]}
"""

from __future__ import annotations

from typing import Annotated, Literal, Union

from pydantic import Field, model_validator

from tocsin.durations import Duration
from tocsin.spec.base import SpecModel
from tocsin.vocabulary import Severity




# --- severity rules and budget ---------------------------------------------------


class SeverityRule(SpecModel):
    """Raise an alert's severity to ``severity`` when every condition given here holds.

    The score gives the base severity (the pipeline's ``severity`` cut-offs);
    rules can only raise it, e.g. a burst of 20 warnings on one card is critical.
    """

    severity: Severity
    min_count: int | None = Field(None, ge=1, description="anomalies grouped in the alert")
    min_score: float | None = Field(None, gt=0, le=1, description="highest calibrated score in the alert")
    patterns: list[str] | None = Field(None, min_length=1, description="the alert's pattern is one of these")

    @model_validator(mode="after")
    def _has_a_condition(self) -> SeverityRule:
        if self.min_count is None and self.min_score is None and self.patterns is None:
            raise ValueError("a rule needs at least one of min_count, min_score, patterns")
        return self


class BudgetSpec(SpecModel):
    """At most ``per_day`` new alerts per event-time day (UTC) for this pipeline.

    When the day's pace projects past the budget, the score needed to *open* an
    alert rises (the remaining tail above the cut-off halves) every
    ``adapt_every`` of event time, and falls back as the pace drops under 80 % of
    the budget. Anomalies joining an alert that is already open are never cut.
    """

    per_day: int | None = Field(None, ge=1, description="null: no budget")
    adapt_every: Duration = Field(900.0, description="event time between cut-off adjustments")
    max_cutoff: float = Field(0.999999, gt=0, lt=1, description="the cut-off never rises above this")


# --- channels ---------------------------------------------------------------------


class WebhookChannel(SpecModel):
    """POST the alert as JSON; signed with HMAC-SHA256 when ``secret_env`` is set."""

    kind: Literal["webhook"]
    url: str = Field(pattern=r"^https?://", description="http(s) URL")
    secret_env: str | None = Field(None, description="environment variable holding the HMAC-SHA256 key")
    headers: dict[str, str] = Field(default_factory=dict, description="extra request headers (no secrets: use secret_env)")
    timeout: Duration = 10.0


class SlackChannel(SpecModel):
    """POST a Slack-compatible message (``text`` + ``blocks``) to an incoming-webhook URL."""

    kind: Literal["slack"]
    url: str = Field(pattern=r"^https?://", description="Slack incoming-webhook URL")
    secret_env: str | None = Field(None, description="optional HMAC-SHA256 key, as for webhook")
    timeout: Duration = 10.0


class EmailChannel(SpecModel):
    """Mail the alert over SMTP (plain, STARTTLS, or implicit TLS with ``ssl``)."""

    kind: Literal["email"]
    host: str
    port: int = Field(25, ge=1, le=65535)
    starttls: bool = Field(False, description="upgrade the connection with STARTTLS before sending")
    ssl: bool = Field(False, description="implicit TLS (SMTPS, usually port 465)")
    ca_file: str | None = Field(None, description="CA bundle to verify the server's certificate (default: system)")
    username: str | None = None
    password_env: str | None = Field(None, description="environment variable holding the SMTP password")
    sender: str
    to: list[str] = Field(min_length=1)
    timeout: Duration = 10.0

    @model_validator(mode="after")
    def _one_tls_mode(self) -> EmailChannel:
        if self.starttls and self.ssl:
            raise ValueError("choose starttls or ssl, not both")
        if self.password_env and not self.username:
            raise ValueError("password_env needs username")
        return self


class KafkaChannel(SpecModel):
    """Produce the alert as JSON to ``topic``, keyed by its idempotency key."""

    kind: Literal["kafka"]
    bootstrap_servers: str
    topic: str = Field(min_length=1)
    config: dict[str, str | int | float | bool] = Field(
        default_factory=dict, description="extra librdkafka producer settings (no secrets inline)"
    )
    timeout: Duration = 10.0


class StoreChannel(SpecModel):
    """The results store (always written); naming it in a route only records it as a delivery."""

    kind: Literal["store"]


ChannelSpec = Annotated[
    Union[WebhookChannel, SlackChannel, EmailChannel, KafkaChannel, StoreChannel], Field(discriminator="kind")
]


# --- routes -----------------------------------------------------------------------


class RouteMatch(SpecModel):
    """Conditions an alert must meet (all given ones); an empty match takes every alert."""

    severity: list[Severity] | None = Field(None, min_length=1)
    pipeline: list[str] | None = Field(None, min_length=1)
    patterns: list[str] | None = Field(None, min_length=1)
    entity: list[str] | None = Field(None, min_length=1, description="exact entity keys")
    attributes: dict[str, list[str]] = Field(
        default_factory=dict,
        description="field -> accepted values, tested on the event that opened the alert (e.g. channel: [online])",
    )


class Route(SpecModel):
    match: RouteMatch = Field(default_factory=RouteMatch)
    channels: list[str] = Field(min_length=1)


class RetrySpec(SpecModel):
    """Delivery retries: exponential backoff with full jitter, per (alert, channel)."""

    initial: Duration = 1.0
    multiplier: float = Field(2.0, ge=1.0)
    max_delay: Duration = Field(600.0, description="the backoff stops growing here")
    jitter: float = Field(0.5, ge=0, le=1, description="share of each delay that is random")
    max_attempts: int | None = Field(None, ge=1, description="null: retry until delivered (an outage never loses an alert)")
    lease: Duration = Field(60.0, description="a claimed delivery is retried after this if its dispatcher died mid-send")


# --- the section --------------------------------------------------------------------


class AlertingSpec(SpecModel):
    """How anomalies become alerts, and where alerts go."""

    min_severity: Severity = Field("warning", description="the lowest anomaly severity that can open an alert")
    group_by: str | None = Field(
        None, description="a categorical field whose value is the alert's entity (the IP: one attack is one alert naming "
                          "the users it touched, in attributes.members); default: the schema's key field")
    window: Duration = Field(3600.0, description="an alert groups one entity's anomalies of one pattern for this long (event time)")
    quiet_period: Duration = Field(1800.0, description="an alert with no new anomaly for this long (event time) resolves itself")
    suppress_for: Duration = Field(
        21600.0,
        description="after an alert's window closes, a new alert of the same entity and pattern within this time is a "
        "repeat: stored, counted, not delivered (unless more severe)",
    )
    group_wait: Duration | None = Field(
        None, description="wall-clock delay before a new alert's first delivery, so it carries the grouped count"
    )
    notify_resolved: bool = Field(False, description="also deliver when an alert resolves itself")
    rules: list[SeverityRule] = Field(default_factory=list)
    budget: BudgetSpec = Field(default_factory=BudgetSpec)
    channels: dict[str, ChannelSpec] = Field(default_factory=dict)
    routes: list[Route] = Field(default_factory=list)
    retry: RetrySpec = Field(default_factory=RetrySpec)

    @model_validator(mode="after")
    def _routes_name_channels(self) -> AlertingSpec:
        for i, route in enumerate(self.routes):
            for name in route.channels:
                if name not in self.channels:
                    raise ValueError(
                        f"routes.{i}.channels: {name!r} is not a channel; define it under alerting.channels "
                        f"or use one of {sorted(self.channels)}"
                    )
        if self.quiet_period > self.suppress_for:
            raise ValueError(f"quiet_period ({self.quiet_period:g}s) must be <= suppress_for ({self.suppress_for:g}s)")
        return self

    @property
    def delivers(self) -> bool:
        """True if some route sends to a channel other than the store (a dispatcher is needed)."""
        return any(self.channels[name].kind != "store" for route in self.routes for name in route.channels)

    @property
    def store_channels(self) -> frozenset[str]:
        """Names of the ``store`` channels: their deliveries are recorded as delivered when written."""
        return frozenset(name for name, channel in self.channels.items() if channel.kind == "store")
