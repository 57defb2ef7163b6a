"""The streaming features a pipeline computes per key: the ``features`` section (a list, each item picked by ``kind``)."""

from __future__ import annotations

from typing import Annotated, Literal, Union

from pydantic import Field, model_validator

from tocsin.durations import Duration
from tocsin.spec.base import SpecModel


class _FeatureBase(SpecModel):
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


class ConfirmedFeature(_FeatureBase):
    """Confirmed positives of the key from labels as they arrive (feedback, a label stream, a backtest's
    delayed labels), time-decayed, and their share of the key's events: risk only labels reveal."""

    kind: Literal["confirmed"]
    half_lives: list[Duration] = Field(default_factory=lambda: [7 * 86_400.0, 28 * 86_400.0], min_length=1)


class SeriesFeature(_FeatureBase):
    """Signed surprise of a metric against its own series' level, spread and time-of-day profile
    (``tocsin.features.series``): one series per entity (``by``) and, with ``metric_field``, per metric name."""

    kind: Literal["series"]
    field: str = Field(description="the numeric reading (wide events: one series feature per metric field)")
    metric_field: str | None = Field(
        None, description="long events (one metric per event): the categorical field naming the metric; each (entity, metric) is a series")
    season: Literal["none", "daily", "weekly"] = Field(
        "daily", description="profile by hour of the day, or of the week (hour of the day until a week is seen)")
    level_half_life: Duration = Field(86_400.0, description="how fast the level follows the series")
    spread_half_life: Duration = Field(86_400.0, description="how fast the spread follows the series")
    slot: Duration = Field(3_600.0, description="width of a slot of the day's profile; must divide a day (15m: a nightly job starting at 01:15)")
    sustained: int = Field(1, ge=1, le=5, description="score a reading as the least surprising of its series' last this many "
                           "readings (all on one side, else 0): blips shorter than that stay quiet (1: every reading as it is)")
    trend: bool = Field(False, description="also output {field}_trend: the readings' accumulated surprise (CUSUM), "
                        "which finds slow drifts (a memory leak) long before a single reading stands out")
    stuck: bool = Field(False, description="also output {field}_stuck: k equal readings in a row, as rare as the series "
                        "makes them, on the surprise scale (a sensor frozen on its last value)")
    log_scale: list[str] = Field(default_factory=list, description="metrics modelled as log(1 + value), explained in "
                                 "their own unit: counts and durations, whose noise and seasons scale with them (names "
                                 "or patterns like '*.distinct'; wide events: the field's name, or '*'); values must be >= 0")
    seasonal: list[str] | None = Field(None, description="long events: the metrics that follow `season` (names or patterns); "
                                       "the others are modelled without one (null: every metric)")
    max_series: int | None = Field(None, ge=1, description="memory budget: series past this many (in order of first reading) "
                                   "are not modelled, score 0 and are counted (gauge tocsin_series_unmodelled); null: no limit")
    season_memory: float = Field(2.0, gt=0, description="half-life of the seasonal profile, in visits to each hour (days or weeks)")
    prior_weight: float = Field(20.0, ge=0, description="readings a new series' spread is worth less than its siblings' (cold start)")
    clip_z: float = Field(3.0, gt=0, description="a reading moves the model by at most this many standard deviations")
    shift_z: float = Field(4.0, gt=0, description="readings beyond this many standard deviations, on one side, start a run")
    shift_after: Duration = Field(3_600.0, description="a run this long (and >= 5 readings) is a confirmed shift: its mean becomes the level")
    min_rel_spread: float = Field(0.01, ge=0, description="the spread is at least this share of the expected value")
    min_spread: float = Field(0.0, ge=0, description="the standard deviation is at least this, in the field's unit "
                              "(changes smaller than a few of it never alarm: 0.01 for an error share that is usually 0)")

    @model_validator(mode="after")
    def _slot_divides_a_day(self) -> SeriesFeature:
        if not (86_400 / self.slot).is_integer() or self.slot > 86_400:
            raise ValueError(f"slot ({self.slot:g}s) must divide a day: use 5m, 10m, 15m, 30m, 1h, 2h, ...")
        return self


class TravelFeature(_FeatureBase):
    """Distance from the key's previous event's place (``travel_km``) and the speed it implies
    (``travel_speed_kmh``): impossible travel between two logins."""

    kind: Literal["travel"]
    lat_field: str = Field(description="the numeric field holding the latitude, in degrees")
    lon_field: str = Field(description="the numeric field holding the longitude, in degrees")
    min_seconds: Duration = Field(60.0, description="the gap between two events is at least this when the speed is computed")


class NavigationFeature(_FeatureBase):
    """Regularity of the key's pace (``gap_log_std``, ``gaps``) and the share of its recent steps between values of
    a categorical ``page_field`` (page to page) that almost no one took before (``{page_field}_rare_step_share``,
    ``{page_field}_known_steps``): bots with an inhuman cadence, and page sequences no person follows."""

    kind: Literal["navigation"]
    page_field: str = Field(description="the declared categorical field whose steps are judged (the page's route, not a full URL)")
    span: int = Field(10, ge=2, le=1000, description="recent gaps and steps the spread and the share weigh (exponentially)")
    max_gap: Duration = Field(1_800.0, description="a longer gap between two events of the key starts a new visit: neither a gap nor a step")
    rare_below: int = Field(2, ge=1, description="a step every key together took fewer times than this before is rare")
    min_known: int = Field(5, ge=0, description="steps from a page every key together left fewer times than this before "
                           "are not judged (its links are not known yet)")


class ValueFeature(SpecModel):
    """A numeric field passed through, optionally as log1p of its magnitude."""

    kind: Literal["value"]
    field: str
    log: bool = False


FeatureSpec = Annotated[
    Union[WindowFeature, DecayedStatsFeature, RecencyFeature, VelocityFeature, NoveltyFeature, ConfirmedFeature, SeriesFeature, TravelFeature,
          NavigationFeature, ValueFeature],
    Field(discriminator="kind"),
]
