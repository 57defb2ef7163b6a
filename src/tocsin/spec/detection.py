"""How rows become decisions: the ``detector``, ``calibration``, ``threshold`` and ``severity`` sections."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, model_validator

from tocsin.durations import Duration
from tocsin.spec.base import SpecModel
from tocsin.vocabulary import Severity


class DetectorSpec(SpecModel):
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


class CalibrationSpec(SpecModel):
    window: int = Field(50_000, ge=100, description="recent raw scores the calibrated score is ranked against")
    tail_quantile: float = Field(0.98, gt=0.5, lt=1.0, description="above this quantile the tail is extrapolated")
    update_every: int = Field(
        1_000, ge=1, description="scored events between calibration/threshold updates; fixed counts keep results independent of batch cuts"
    )


class ThresholdSpec(SpecModel):
    kind: Literal["fixed", "quantile", "adaptive"] = "fixed"
    value: float = Field(0.995, gt=0, lt=1, description="fixed: calibrated-score cut-off; quantile: q of recent calibrated scores")
    target_rate: float = Field(0.005, gt=0, lt=1, description="adaptive: share of events to flag")


class SeveritySpec(SpecModel):
    """Calibrated-score cut-offs; an anomaly below ``warning`` is ``info``."""

    warning: float = Field(0.999, gt=0, lt=1)
    critical: float = Field(0.9999, gt=0, lt=1)

    @model_validator(mode="after")
    def _ordered(self) -> SeveritySpec:
        if self.critical < self.warning:
            raise ValueError(f"critical ({self.critical}) must be >= warning ({self.warning})")
        return self


class SupervisedSpec(SpecModel):
    """A supervised re-ranker beside the unsupervised score (``tocsin.engine.supervised``), fitted once
    labels have confirmed ``min_positives`` remembered events; the blend stays calibrated."""

    enabled: bool = Field(False, description="learn from labels (needs a label source: --label-delay, source.labels_topic or verdicts)")
    min_positives: int = Field(200, ge=5, description="confirmed positives among the remembered events before the first fit")
    refit_every: int = Field(100, ge=1, description="new confirmed positives between fits")
    label_window: Duration = Field(7 * 86_400.0, description="an event this old with no positive label counts as a negative")
    weight: float = Field(0.5, gt=0, le=1, description="the supervised part of the blend (1: the supervised model alone ranks)")
    memory: int = Field(200_000, ge=1_000, description="scored events whose features are remembered for training")


class DriftSpec(SpecModel):
    """How far the scored features and the score may move from the model's training rows
    (``tocsin.engine.drift``): PSI and KS gauges, and a "model drift" alert past ``psi_alert``."""

    half_life: int = Field(20_000, ge=100, description="scored events after which a row weighs half in the live shares")
    min_rows: float = Field(5_000, ge=10, description="live (decayed) rows needed before a distance is reported")
    psi_alert: float | None = Field(
        0.25, gt=0, description="a feature (or the score) whose PSI exceeds this raises a model-drift alert (null: gauges only)")
    retrain: bool = Field(
        False, description="on a model-drift alert, fit a new version on the stream's latest detector.train_window rows "
                           "and name it challenger (one per champion; it scores in shadow until someone promotes it)")


class SilenceSpec(SpecModel):
    """Entities that stop reporting (``tocsin.engine.silence``): each learns its usual interval between events,
    and one silent for ``factor`` times it gets a ``silence`` anomaly with no event needed to trigger it."""

    enabled: bool = Field(False, description="watch every entity's reporting interval (for regular reporters: hosts, sensors, services)")
    factor: float = Field(3.0, ge=1.5, description="an entity silent for this many of its usual intervals is an anomaly")
    spread: float = Field(0.0, ge=0.0, description=(
        "or, when longer, for its usual interval plus this many standard deviations of its gaps: entities whose gaps "
        "vary (a quiet service's minutes with and without a request) are given the gaps they usually take; 0: off"))
    min_reports: int = Field(5, ge=2, description="events an entity must have sent before its silences count")
    min_interval: Duration = Field(1.0, description="the usual interval is at least this (entities reporting in bursts)")
    repeat_every: Duration | None = Field(
        600.0, description="while the silence lasts, a reminder anomaly this often keeps its alert open (null: one anomaly)")
    severity: Severity = Field("warning", description="the silence anomalies' severity")


class RuleSpec(SpecModel):
    """A rule beside the model (``rules``): an event it fires on is an anomaly by definition, with the rule's
    severity and its text first in the explanation, whatever the calibrated score says."""

    name: str = Field(pattern=r"^[A-Za-z0-9_.-]+$", description="what alerts and explanations call it")
    when: str = Field(description="an expression over feature names, as in the rules detector "
                                  "(`ip.count_10m > 30 and ip.user_distinct > 20`)")
    severity: Severity = Field("warning", description="the severity of its anomalies (their score is at least that severity's cut-off)")
