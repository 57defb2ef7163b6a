"""Per-series models: how far a reading is from what its own series (an entity's metric) expects now.

A series is (entity, metric). Hosts report cpu, memory and network; each
metric of each host is its own series, and each keeps a small model in dense
per-series arrays: a level, a spread (mean absolute residual), a seasonal
profile by slot of the day (an hour, or ``slot`` wide; each slot with its
own offset and spread) or by hour of the week (falling back to the slot of
the day until a week has been seen), and a run of out-of-band readings. A
reading is scored against the model as learned so far, then learned, one
reading at a time in event-time order inside a compiled kernel (so results
never depend on batch cuts, and the state checkpoints with every other
feature). The output column ``{field}_surprise`` is the signed number of
standard deviations from the expected value; a detector (``robust_zscore``)
takes the most surprising metric of an event, so one wild metric is enough.

Written against what users of the anchor systems complain about most:

- **cold start**: a new series borrows from its siblings (the same metric
  across all entities): its first reading is scored against their pooled
  level and dispersion, and until it has ``prior_weight`` readings its spread
  is shrunk towards theirs, so it has a sensible band from the first reading
  and explanations say "cold start";
- **one level shift alerting for weeks**: readings move the model by at most
  ``clip_z`` standard deviations (a spike does not teach it that spikes are
  normal), but a run of same-side readings beyond ``shift_z`` lasting
  ``shift_after`` is a confirmed shift, and the run's mean becomes the level;
- **scores that change after the alert fired**: never; a reading's score is
  computed once from the state before it.

Wide events (cpu, memory and net in one event) use one ``series`` feature per
field; long events (one metric per event, a metric-name field, like
Prometheus samples) use ``metric_field``: the series key is then
(entity, metric name) and the siblings are that metric across entities.

Good at: level changes, spikes and dips against a series' own time-of-day
pattern; thousands to millions of series at O(1) per reading. Where it fails:
slow drifts slower than ``level_half_life`` are learned as normal; a series
whose seasonality is not daily or weekly is modelled by level and spread
only; the hour-of-day profile needs a few visits to each hour (two readings
per slot), so the first day's peaks read as surprises against the level.

With ``sustained`` = k, a reading is only as surprising as the least
surprising of its series' last k readings when all stray on the same side,
so blips shorter than k readings (a cron job's spike) stay quiet and an
outage is flagged from its k-th reading: the ``for: 2m`` of metric alert
rules, per series.

With ``trend``, a second column ``{field}_trend`` accumulates the readings'
clipped surprise (two one-sided CUSUMs, slack 0.5 sigma): a memory leak that
climbs half a sigma a minute stands out there within minutes, long before any
single reading does, and one blip adds at most ``clip_z`` - 0.5.

With ``stuck``, a third column ``{field}_stuck`` reads k equal readings in a
row, for a series that repeats a reading exactly at rate r, as the normal z of
a 1-in-r**k event (0 below 3 in a row): a sensor frozen on its last value is
invisible to the level and spread, and flagrant here.

``max_series`` is a memory budget: series past it (in order of first reading)
are not modelled, their readings score 0 and say so, and they are counted
(``unmodelled``; the ``tocsin_series_unmodelled`` gauge and a warning), never
dropped silently.

Cost: 17 floats per series, plus 3 per slot of the day with ``season: daily``
(hourly slots: 712 bytes; 15-minute slots: 2,440 bytes) and 336 more with
``season: weekly`` (hourly slots: 3,400 bytes); O(1) per reading.
"""

from __future__ import annotations

import fnmatch
import time

import numpy as np

from tocsin.batch import EventBatch
from tocsin.features.base import (
    BatchKeys,
    FeatureOperator,
    FeatureOutput,
    format_number,
)
from tocsin.features.kernels import (
    MAX_SUSTAINED,
    MEAN_ABS_TO_STD,
    POOLED_COLUMNS,
    S_LEVEL,
    S_N,
    S_SPREAD,
    SERIES_COLUMNS,
    grow,
    series_update,
)  # fmt: skip

SEASONS = {"none": 0, "daily": 1, "weekly": 2}
_EMPTY_SERIES = np.array([-np.inf] + [0.0] * (SERIES_COLUMNS - 1))
#: the allowance a CUSUM subtracts per reading (in standard deviations): half the shift it is tuned to find
TREND_SLACK = 0.5
_WEEKDAYS = ("Mondays", "Tuesdays", "Wednesdays", "Thursdays", "Fridays", "Saturdays", "Sundays")
#: a composite (entity, metric) series key packs the metric id in the low bits
_METRIC_BITS = 24


class SeriesModel(FeatureOperator):
    """Signed surprise of ``field`` against each series' level, spread and time-of-day profile.

    >>> hours = np.arange(0, 3 * 86_400, 600.0)           # one host, every 10 minutes, 3 days
    >>> busy = ((hours % 86_400) >= 9 * 3600) & ((hours % 86_400) < 17 * 3600)
    >>> cpu = 30 + 20 * busy + np.random.default_rng(0).normal(0, 2, len(hours))  # busy 09-17h
    >>> cpu[-1] = 95.0                                     # last reading: 23:50, usually quiet
    >>> batch = EventBatch(ids=np.arange(len(hours)).astype(str).astype(object),
    ...                    keys=np.array(["web-1"] * len(hours), dtype=object), times=hours, numeric={"cpu": cpu})
    >>> op = SeriesModel("cpu", season="daily", this="this host", possessive="this host's")
    >>> out = op.transform_update(batch, BatchKeys(by={"entity": np.zeros(len(hours), dtype=np.int64)}))
    >>> z = out.columns["cpu_surprise"]
    >>> float(np.abs(z[144:-1]).max()) < 3.5               # from day 2 on, busy and quiet hours are both expected
    True
    >>> op.describe("cpu_surprise", len(hours) - 1, batch, out)
    "cpu 95 vs this host's usual 24.3–33.9 at 23:00"
    >>> op.describe("cpu_surprise", 288 + 6 * 9, batch, out)
    "cpu 52.93 vs this host's usual 45.1–55.2 at 09:00"
    >>> op.bytes_per_series
    712
    """

    def __init__(
        self,
        field: str,
        *,
        by: str = "entity",
        metric_field: str | None = None,
        season: str = "daily",
        level_half_life: float = 86_400.0,
        spread_half_life: float = 86_400.0,
        season_memory: float = 2.0,
        prior_weight: float = 20.0,
        clip_z: float = 3.0,
        shift_z: float = 4.0,
        shift_after: float = 3_600.0,
        shift_min_readings: int = 5,
        min_rel_spread: float = 0.01,
        min_spread: float = 0.0,
        min_slot_readings: int = 2,
        slot: float = 3_600.0,
        sustained: int = 1,
        trend: bool = False,
        stuck: bool = False,
        max_series: int | None = None,
        log_scale: list[str] | tuple[str, ...] = (),
        seasonal: list[str] | tuple[str, ...] | None = None,
        this: str = "this key",
        possessive: str = "this key's",
        siblings: str = "others",
    ) -> None:
        if not 1 <= sustained <= MAX_SUSTAINED + 1:
            raise ValueError(f"sustained must be 1 to {MAX_SUSTAINED + 1} readings, got {sustained}")
        if not (0 < slot <= 86_400 and (86_400 / slot).is_integer()):
            raise ValueError(f"slot must divide a day (15m, 30m, 1h, ...), got {slot} seconds")
        if season not in SEASONS:
            raise ValueError(f"season must be one of {list(SEASONS)}, got {season!r}")
        for name, value in (("level_half_life", level_half_life), ("spread_half_life", spread_half_life),
                            ("season_memory", season_memory), ("clip_z", clip_z), ("shift_z", shift_z)):
            if not value > 0:
                raise ValueError(f"{name} must be positive, got {value}")
        self.field = field
        self.by = by
        #: metric name patterns modelled on a log scale, and each metric name's verdict (names repeat)
        self.log_scale = tuple(log_scale)
        #: metric name patterns that follow ``season`` (None: all); the others are modelled without one
        self.seasonal = None if seasonal is None else tuple(seasonal)
        self._matches = _Patterns(self.log_scale), _Patterns(self.seasonal or ())
        self.metric_field = metric_field
        self.season = season
        self.this = this
        self.possessive = possessive
        self.siblings = siblings
        self._params = np.array([
            level_half_life, spread_half_life, season_memory * 3_600.0, prior_weight, clip_z, shift_z,
            shift_after, shift_min_readings, min_rel_spread, min_slot_readings, 1e-4, slot, float(sustained), TREND_SLACK if trend else 0.0, min_spread, float(stuck),
        ], dtype=np.float64)  # fmt: skip
        prefix = "" if by == "entity" else f"{by}."
        self._column = f"{prefix}{field}_surprise"
        self._trend = f"{prefix}{field}_trend"
        self._stuck = f"{prefix}{field}_stuck"
        self.names = [self._column] + ([self._trend] if trend else []) + ([self._stuck] if stuck else [])
        self._context = {part: f"{prefix}{field}_{part}" for part in ("expected", "sigma", "readings", "profile")}
        week = 168 if season == "weekly" else 0
        self._series = np.empty((0, SERIES_COLUMNS), dtype=np.float64)
        day = int(86_400 // slot) if season != "none" else 0
        self._day = (np.empty((0, day)), np.empty((0, day)), np.empty((0, day)))
        self._week = (np.empty((0, week)), np.empty((0, week)))
        self._pooled = np.zeros((0, POOLED_COLUMNS), dtype=np.float64)
        self._series_keys = np.empty(0, dtype=np.int64)  # composite keys, by series id (long format)
        #: series beyond this many are not modelled (their readings score 0) and are counted
        self.max_series = max_series
        self._seen = 0  # series ever seen (ids are dense, in order of first reading)
        self._series_index: dict[int, int] = {}

    @property
    def unmodelled(self) -> int:
        """Series seen past ``max_series``: their readings are not modelled and score 0."""
        return 0 if self.max_series is None else max(0, self._seen - self.max_series)

    @property
    def bytes_per_series(self) -> int:
        """State bytes one series holds (its row in every per-series array)."""
        columns = SERIES_COLUMNS + sum(a.shape[1] for a in (*self._day, *self._week))
        return 8 * (columns + (1 if self.metric_field else 0))

    def _series_ids(self, keys: BatchKeys) -> tuple[np.ndarray, np.ndarray]:
        entity = np.ascontiguousarray(keys.by[self.by], dtype=np.int64)
        if self.metric_field is None:
            return entity, np.zeros(len(entity), dtype=np.int64)
        metric = np.ascontiguousarray(keys.by[self.metric_field], dtype=np.int64)
        composite = (entity << _METRIC_BITS) | metric
        unique, inverse = np.unique(composite, return_inverse=True)
        index = self._series_index
        ids = np.empty(len(unique), dtype=np.int64)
        new: list[int] = []
        for j, key in enumerate(unique.tolist()):
            found = index.get(key)
            if found is None:
                found = index[key] = len(index)
                new.append(key)
            ids[j] = found
        if new:
            self._series_keys = np.concatenate([self._series_keys, np.array(new, dtype=np.int64)])
        return ids[inverse], metric

    def _grow(self, series: int, groups: int) -> None:
        self._series = grow(self._series, series, _EMPTY_SERIES)
        self._day = tuple(grow(a, series, 0.0) for a in self._day)
        self._week = tuple(grow(a, series, 0.0) for a in self._week)
        self._pooled = grow(self._pooled, groups, 0.0)

    def transform_update(self, batch: EventBatch, keys: BatchKeys) -> FeatureOutput:
        n = len(batch)
        out = {part: np.zeros(n, dtype=np.float64) for part in ("surprise", "trend", "stuck", *self._context)}
        if n:
            values, logged, seasons = self._per_metric(batch)
            series_ids, group_ids = self._series_ids(keys)
            self._seen = max(self._seen, int(series_ids.max()) + 1)
            if self.max_series is not None and self._seen > self.max_series:
                series_ids = np.where(series_ids < self.max_series, series_ids, -1)
            self._grow(max(int(series_ids.max()) + 1, 1), int(group_ids.max()) + 1)
            series_update(
                series_ids, group_ids,
                np.ascontiguousarray(batch.times, dtype=np.float64),
                values,
                seasons, self._params,
                self._series, *self._day, *self._week, self._pooled,
                out["surprise"], out["expected"], out["sigma"], out["readings"], out["profile"], out["trend"], out["stuck"],
            )  # fmt: skip
            if logged is not None and logged.any():  # the band back in the metric's unit (explanations, dashboard)
                centre, spread = out["expected"][logged], out["sigma"][logged]
                low, high = np.expm1(centre - 2 * spread), np.expm1(centre + 2 * spread)
                out["expected"][logged] = (low + high) / 2
                out["sigma"][logged] = (high - low) / 4
        columns = {self._column: out["surprise"], self._trend: out["trend"], self._stuck: out["stuck"]}
        return FeatureOutput(columns={name: columns[name] for name in self.names},
                             context={self._context[part]: out[part] for part in self._context})

    def is_logged(self, metric: str) -> bool:
        """Whether ``metric`` is modelled as log(1 + value) (``log_scale``)."""
        return self._matches[0](metric)

    def _follows(self, metric: str) -> bool:
        """Whether ``metric`` follows ``season`` (``seasonal``; every metric when it is null)."""
        return self.seasonal is None or self._matches[1](metric)

    def _per_metric(self, batch: EventBatch) -> tuple[np.ndarray, np.ndarray | None, np.ndarray]:
        """The readings as the model sees them (log(1 + value), negatives as 0, for the ``log_scale`` metrics),
        which rows those are (None: no such metric), and each reading's season code (``season`` for the
        ``seasonal`` metrics, else none); one pass over the batch's metric names serves both."""
        values = np.ascontiguousarray(batch.numeric[self.field], dtype=np.float64)
        seasons = np.full(len(batch), SEASONS[self.season], dtype=np.int64)
        by_name = bool(self.log_scale) or (self.seasonal is not None and self.season != "none")
        if not by_name:
            return values, None, seasons  # the batch's own column: the kernel only reads it
        if self.metric_field is None:
            names, index = [self.field], np.zeros(len(batch), dtype=np.int64)
        else:
            unique, index = np.unique(batch.categorical[self.metric_field].astype(str), return_inverse=True)
            names = unique.tolist()
        logged = None
        if self.log_scale:
            logged = np.array([self.is_logged(name) for name in names], dtype=bool)[index]
            values = values.copy()
            values[logged] = np.log1p(np.maximum(values[logged], 0.0))
        if self.seasonal is not None and self.season != "none":
            seasons[~np.array([self._follows(name) for name in names], dtype=bool)[index]] = SEASONS["none"]
        return values, logged, seasons

    def key_state(self, key_id: int) -> dict[str, float]:
        """Level and standard deviation of entity ``key_id``'s series (wide format; {} for long)."""
        if self.metric_field is not None or key_id >= len(self._series) or self._series[key_id, S_N] == 0:
            return {}
        row = self._series[key_id]
        level, sigma = float(row[S_LEVEL]), MEAN_ABS_TO_STD * float(row[S_SPREAD])
        if self.log_scale and self.is_logged(self.field):  # modelled as log(1 + value): back in the field's unit
            level, sigma = float(np.expm1(level)), float((np.expm1(level + sigma) - np.expm1(level - sigma)) / 2)
        return {f"{self.field}_level": level, f"{self.field}_sigma": sigma}

    def describe(self, name: str, row: int, batch: EventBatch, output: FeatureOutput) -> str:
        metric = str(batch.categorical[self.metric_field][row]) if self.metric_field else self.field
        x = float(batch.numeric[self.field][row])
        expected = float(output.context[self._context["expected"]][row])
        sigma = float(output.context[self._context["sigma"]][row])
        readings = int(output.context[self._context["readings"]][row])
        if readings < 0:
            return f"{metric} {format_number(x, 4)}: not modelled ({self.this} is past the series budget, max_series)"
        low, high = expected - 2 * sigma, expected + 2 * sigma
        if low < 0 <= expected and x >= 0:
            low = 0.0  # a non-negative quantity: a negative "usual" bound reads as nonsense
        band = f"{format_number(low)}–{format_number(high)}"
        if readings == 0:
            return f"{metric} {format_number(x, 4)} vs {self.siblings}' usual {band} (cold start: first reading of {self.this})"
        profile = int(output.context[self._context["profile"]][row])
        t = float(batch.times[row])
        when = ""
        if profile:
            slot = self._params[11] if profile == 1 else 3_600.0
            when = " at " + time.strftime("%H:%M", time.gmtime(t - t % slot))
            if profile == 2:
                when = f" on {_WEEKDAYS[time.gmtime(t).tm_wday]}{when}"
        if name == self._stuck:
            rarity = format_number(float(output.columns[name][row]))
            return (f"{metric} {format_number(x, 4)} repeated exactly reading after reading (stuck?): as rare for "
                    f"{self.this} as a {rarity}-sigma reading")
        if name == self._trend:
            direction = "rising" if output.columns[name][row] > 0 else "falling"
            when = f" {when.strip()}" if when else ""
            return (f"{metric} {format_number(x, 4)} {direction} steadily ({format_number(abs(output.columns[name][row]))} "
                    f"sigma accumulated) vs {self.possessive} usual {band}{when}")
        cold = f" (cold start: {readings} readings)" if readings < self._params[3] else ""
        if not profile and self.season != "none" and self._follows(metric):
            cold += " (no profile for this hour yet)"
        return f"{metric} {format_number(x, 4)} vs {self.possessive} usual {band}{when}{cold}"

    def state_dict(self) -> dict[str, np.ndarray]:
        state = {"series": self._series.copy(), "day_offsets": self._day[0].copy(), "day_counts": self._day[1].copy(),
                 "day_spreads": self._day[2].copy(),
                 "week_offsets": self._week[0].copy(), "week_counts": self._week[1].copy(), "pooled": self._pooled.copy()}
        if self.metric_field is not None:
            state["series_keys"] = self._series_keys.copy()
        state["seen"] = np.array(self._seen)
        return state

    def load_state_dict(self, state: dict[str, np.ndarray]) -> None:
        self._series = np.array(state["series"], dtype=np.float64).reshape(-1, SERIES_COLUMNS)
        self._day = tuple(np.array(state[name], dtype=np.float64) for name in ("day_offsets", "day_counts", "day_spreads"))
        self._week = (np.array(state["week_offsets"], dtype=np.float64), np.array(state["week_counts"], dtype=np.float64))
        self._pooled = np.array(state["pooled"], dtype=np.float64).reshape(-1, POOLED_COLUMNS)
        self._seen = int(state["seen"]) if "seen" in state else len(self._series)
        if self.metric_field is not None:
            self._series_keys = np.array(state["series_keys"], dtype=np.int64)
            self._series_index = {int(k): i for i, k in enumerate(self._series_keys.tolist())}


class _Patterns:
    """Metric-name patterns (``fnmatch``), each name's verdict remembered: a long-format batch repeats a few names."""

    def __init__(self, patterns: tuple[str, ...]) -> None:
        self.patterns = patterns
        self._verdicts: dict[str, bool] = {}

    def __call__(self, metric: str) -> bool:
        verdict = self._verdicts.get(metric)
        if verdict is None:
            verdict = self._verdicts[metric] = any(fnmatch.fnmatchcase(metric, pattern) for pattern in self.patterns)
        return verdict
