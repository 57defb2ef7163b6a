"""Seasonal profile: each row against the typical value of its time of day (or of week)."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from numba import njit

from tocsin.detectors.base import Capabilities, check_positive
from tocsin.detectors.streaming import StreamingDetector

DAY_SECONDS = 86_400
WEEK_SECONDS = 7 * DAY_SECONDS


class SeasonalProfile(StreamingDetector):
    """Online per-bucket mean and variance over a seasonal period, per column.

    The period (a day by default; ``7 * 86400`` for time-of-week) is cut into
    ``n_buckets`` equal buckets; a row falls in bucket
    ``floor((t mod period) / period x n_buckets)`` of its timestamp ``t``
    (seconds since the epoch, UTC; pass local times if the seasonality follows
    local clocks). Each bucket and column keeps an exponentially weighted mean
    and variance (weight ``alpha``; a running average while the bucket has seen
    fewer than ``1 / alpha`` values). The score is the largest over columns of
    ``|x - mean_bucket| / (sd_bucket + floor)``, ``floor = relative_floor x
    (max - min seen)``; 0 until the row's bucket has seen ``min_count`` values.

    Rows need ``timestamps=``: one per row, ``datetime64`` or epoch seconds; as
    its capabilities say, the row pipeline, which passes rows alone, refuses it.

    **Good at**: daily and weekly patterns (traffic, load, temperature): the
    nightly dip is normal at night and alarming at noon; it learns the shape
    online in ``min_count`` periods and follows slow changes of it.

    **Fails at**: series without the assumed period (then it is a slow
    per-bucket mean, noisier than :class:`~tocsin.detectors.ewma.EWMAZScore`),
    patterns that shift in phase (daylight saving, holidays), and fast level
    shifts, which each bucket only learns the next time it comes round, so a
    shift keeps scoring for up to a period. Within-bucket trends (a steep ramp
    inside one hour) inflate the bucket's spread.

    **Cost**: O(columns) per row in a compiled loop; ``3 x n_buckets`` floats
    of state per column.

    Parameters
    ----------
    period
        Length of the season in seconds.
    n_buckets
        Buckets the period is cut into.
    alpha
        Weight of the newest value in its bucket's mean and variance.
    min_count
        Values a bucket must have seen before rows in it are scored.
    relative_floor
        Smallest spread, as a share of the range of values seen so far.

    Examples
    --------
    >>> import numpy as np
    >>> from tocsin.detectors.seasonal import SeasonalProfile
    >>> hours = np.arange(24 * 14)                       # two weeks, hourly
    >>> rng = np.random.default_rng(0)
    >>> load = 100 + 50 * np.sin(2 * np.pi * hours / 24) + rng.normal(0, 2, hours.size)
    >>> load[24 * 12 + 18] = 100.0                       # the evening low did not come
    >>> detector = SeasonalProfile(period=86_400, n_buckets=24)
    >>> scores = detector.score_partial_fit(load, timestamps=hours * 3600)
    >>> int(scores.argmax()) == 24 * 12 + 18, round(float(scores.max()), 1)
    (True, 22.8)

    References
    ----------
    Hyndman, R. J. and Athanasopoulos, G. (2021). *Forecasting: Principles and
    Practice*, 3rd ed., section 3.2 (seasonal profiles) and 9.9 (seasonal naive).
    """

    kind = "seasonal"
    capabilities = Capabilities(needs_timestamps=True, per_series=True, online=True, explains=True)
    _state_names = ("mean_", "var_", "bucket_count_", "low_", "high_", "count_")

    def __init__(
        self,
        period: float = DAY_SECONDS,
        n_buckets: int = 24,
        alpha: float = 0.05,
        min_count: int = 3,
        relative_floor: float = 1e-3,
    ) -> None:
        self.period = period
        self.n_buckets = n_buckets
        self.alpha = alpha
        self.min_count = min_count
        self.relative_floor = relative_floor

    def check_params(self, feature_names: Sequence[str] | None = None) -> None:
        check_positive("period", self.period)
        check_positive("n_buckets", self.n_buckets, integer=True)
        check_positive("alpha", self.alpha, upper=1.0)
        check_positive("min_count", self.min_count, integer=True)
        check_positive("relative_floor", self.relative_floor)

    def _init_state(self, n_features: int) -> None:
        self.mean_ = np.zeros((self.n_buckets, n_features))
        self.var_ = np.zeros((self.n_buckets, n_features))
        self.bucket_count_ = np.zeros((self.n_buckets, n_features))
        self.low_ = np.zeros(n_features)
        self.high_ = np.zeros(n_features)
        self.count_ = np.zeros(n_features)

    def bucket_of(self, timestamps) -> np.ndarray:
        """The bucket index of each timestamp."""
        from tocsin.detectors.streaming import as_epoch_seconds

        seconds = as_epoch_seconds(timestamps, np.asarray(timestamps).shape[0])
        return _buckets(seconds, float(self.period), int(self.n_buckets))

    def _run(self, X: np.ndarray, seconds: np.ndarray, learn: bool, score: bool) -> np.ndarray:
        buckets = _buckets(seconds, float(self.period), int(self.n_buckets))
        return _seasonal(
            X, buckets, self.mean_, self.var_, self.bucket_count_, self.low_, self.high_, self.count_,
            float(self.alpha), int(self.min_count), float(self.relative_floor), learn, score,
        )


@njit(cache=True)
def _buckets(seconds, period, n_buckets):
    out = np.empty(seconds.size, dtype=np.int64)
    for i in range(seconds.size):
        phase = seconds[i] % period  # in [0, period) for negative times too (floored modulo)
        out[i] = min(int(phase * n_buckets // period), n_buckets - 1)
    return out


@njit(cache=True)
def _seasonal(X, buckets, mean, var, bucket_count, low, high, count, alpha, min_count, relative_floor, learn, score):
    n, d = X.shape
    out = np.zeros((n, d))
    for i in range(n):
        b = buckets[i]
        for j in range(d):
            x = X[i, j]
            if math.isnan(x):
                out[i, j] = np.nan
                continue
            if score and bucket_count[b, j] >= min_count:
                spread = math.sqrt(var[b, j]) + relative_floor * (high[j] - low[j]) + 1e-12
                out[i, j] = abs(x - mean[b, j]) / spread
            if learn:
                if count[j] == 0:
                    low[j] = x
                    high[j] = x
                else:
                    low[j] = min(low[j], x)
                    high[j] = max(high[j], x)
                count[j] += 1.0
                if bucket_count[b, j] == 0:
                    mean[b, j] = x
                weight = max(alpha, 1.0 / (bucket_count[b, j] + 1.0))
                delta = x - mean[b, j]
                mean[b, j] += weight * delta
                var[b, j] = (1.0 - weight) * (var[b, j] + weight * delta * delta)
                bucket_count[b, j] += 1.0
    return out



#: The seasons :class:`AutoSeasonalProfile` holds at once, shortest first: (period in
#: seconds, buckets). Not tuned on any data set: they are the clock's and the calendar's
#: cycles, the periods at which human activity and the machines that serve it repeat,
#: each cut into hours (the grain of a timetable). A day divides a week, so a series
#: that repeats daily is explained by both; one with weekends only by the week.
AUTO_SEASONS: tuple[tuple[float, int], ...] = ((DAY_SECONDS, 24), (WEEK_SECONDS, 168))


class AutoSeasonalProfile(StreamingDetector):
    """Seasonal profiles of a day and of a week at once; each series uses the week only once it has predicted better.

    For each season of :data:`AUTO_SEASONS` (a day in hours, a week in hours)
    and each column, every bucket keeps an exponentially weighted mean and
    variance as :class:`SeasonalProfile` does (weight ``alpha``; a running
    average while the bucket has seen fewer than ``1 / alpha`` values). A
    bucket forecasts once it holds ``min_count`` values; until then the week
    uses the day's forecast, and a row whose day bucket cannot forecast yet
    scores 0 (as :class:`SeasonalProfile` does). A row scores
    ``|x - mean| / spread`` of the chosen season's bucket, spread ``sd +
    relative_floor x (max - min seen)``.

    **Choosing the season, per series, online.** The day is used until the
    week has forecast the series *significantly* better: over the rows where a
    week bucket forecasts from an earlier week, the mean of ``|error of the
    day| - |error of the week|`` must exceed two of its standard errors (a
    one-sided Diebold-Mariano test of equal forecast accuracy at about the 2.5 %
    level, the conventional significance, not tuned here). So there is no
    period to set: a daily series keeps the day's profile (the week's, with
    seven times fewer values per bucket, forecasts it no better), a series with
    weekends switches to the week's once a few weeks have shown the difference,
    and a series that repeats on no calendar cycle keeps the day's profile,
    which is then a slow mean per hour whose calibrated surprise stays low. The
    choice is made from the past only and may change as the series does.

    **Good at**: what :class:`SeasonalProfile` is good at, without setting a
    period, for daily and weekly patterns (a 12-hour pattern is also daily).

    **Fails at**: periods that are not a divisor of a day or a week (a 7-hour
    machine cycle is seen as noise around an hourly mean); a weekly pattern
    until its weeks have been seen (the first weekend is news); sharp changes
    within an hour (the hour's spread widens).

    **Cost**: ``len(AUTO_SEASONS)`` profiles per row and column, compiled;
    about ``5 x 2 x 168`` floats of state per column.

    Parameters
    ----------
    alpha
        Weight of the newest value in its bucket's mean and variance.
    min_count
        Values a bucket must hold before it forecasts.
    relative_floor
        Smallest spread, as a share of the range of values seen so far.

    Examples
    --------
    >>> import numpy as np
    >>> hours = np.arange(24 * 21)                       # three weeks, hourly
    >>> rng = np.random.default_rng(0)
    >>> load = 100 + 50 * np.sin(2 * np.pi * hours / 24) + rng.normal(0, 2, hours.size)
    >>> load[24 * 16 + 18] = 100.0                       # the evening low did not come
    >>> scores = AutoSeasonalProfile().score_partial_fit(load, timestamps=hours * 3600)
    >>> int(scores.argmax()) == 24 * 16 + 18
    True
    """

    kind = "auto_seasonal"
    capabilities = Capabilities(needs_timestamps=True, per_series=True, online=True, explains=True)
    _state_names = ("mean_", "var_", "bucket_count_", "last_cycle_", "cycles_seen_", "low_", "high_", "count_", "evidence_")

    def __init__(self, alpha: float = 0.05, min_count: int = 3, relative_floor: float = 1e-3) -> None:
        self.alpha = alpha
        self.min_count = min_count
        self.relative_floor = relative_floor

    def check_params(self, feature_names: Sequence[str] | None = None) -> None:
        check_positive("alpha", self.alpha, upper=1.0)
        check_positive("min_count", self.min_count, integer=True)
        check_positive("relative_floor", self.relative_floor)

    def _init_state(self, n_features: int) -> None:
        shape = (len(AUTO_SEASONS), max(b for _, b in AUTO_SEASONS), n_features)
        self.mean_ = np.zeros(shape)
        self.var_ = np.zeros(shape)
        self.bucket_count_ = np.zeros(shape)
        self.last_cycle_ = np.zeros(shape)
        self.cycles_seen_ = np.zeros(shape)
        self.low_ = np.zeros(n_features)
        self.high_ = np.zeros(n_features)
        self.count_ = np.zeros(n_features)
        self.evidence_ = np.zeros((len(AUTO_SEASONS), 3, n_features))

    def _run(self, X: np.ndarray, seconds: np.ndarray, learn: bool, score: bool) -> np.ndarray:
        buckets = np.stack([_buckets(seconds, float(p), int(b)) for p, b in AUTO_SEASONS])
        cycles = np.stack([np.floor(seconds / float(p)) for p, _ in AUTO_SEASONS])
        return _auto_seasonal(
            X, buckets, cycles, self.mean_, self.var_, self.bucket_count_, self.last_cycle_, self.cycles_seen_, self.low_, self.high_, self.count_,
            self.evidence_, float(self.alpha), int(self.min_count), float(self.relative_floor), learn, score,
        )


@njit(cache=True)
def _auto_seasonal(X, buckets, cycles, mean, var, bucket_count, last_cycle, cycles_seen, low, high, count, evidence, alpha, min_count, relative_floor, learn, score):
    n, d = X.shape
    k_all = buckets.shape[0]
    out = np.zeros((n, d))
    for i in range(n):
        for j in range(d):
            x = X[i, j]
            if math.isnan(x):
                out[i, j] = np.nan
                continue
            floor = relative_floor * (high[j] - low[j]) + 1e-12
            # each season forecasts; one whose bucket cannot yet uses the season before it's forecast
            forecast = False
            mu = 0.0
            sd = 1.0
            previous_error = 0.0
            chosen = 0.0
            for k in range(k_all):
                b = buckets[k, i]
                if bucket_count[k, b, j] >= min_count:
                    mu = mean[k, b, j]
                    sd = math.sqrt(var[k, b, j]) + floor
                    forecast = True
                if not forecast:
                    break  # the shortest season has no forecast yet: the row is not scored
                z = (x - mu) / sd
                error = abs(x - mu)
                if k == 0:
                    chosen = z
                else:
                    # the longer season replaces the shorter once it has forecast significantly
                    # better: a one-sided Diebold-Mariano test on absolute errors (2 standard errors)
                    n_k = evidence[k, 2, j]
                    if n_k > 1.0:
                        gain = evidence[k, 0, j] / n_k
                        spread = math.sqrt(max(evidence[k, 1, j] / n_k - gain * gain, 0.0) / n_k)
                        if gain > 2.0 * spread and gain > 0.0:
                            chosen = z
                    if learn and cycles_seen[k, b, j] >= 2.0:  # a forecast from an earlier cycle
                        difference = previous_error - error
                        evidence[k, 0, j] += difference
                        evidence[k, 1, j] += difference * difference
                        evidence[k, 2, j] += 1.0
                previous_error = error
            if score and forecast:
                out[i, j] = abs(chosen)
            if learn:
                if count[j] == 0:
                    low[j] = x
                    high[j] = x
                else:
                    low[j] = min(low[j], x)
                    high[j] = max(high[j], x)
                count[j] += 1.0
                for k in range(k_all):
                    b = buckets[k, i]
                    if bucket_count[k, b, j] == 0:
                        mean[k, b, j] = x
                    if bucket_count[k, b, j] == 0 or cycles[k, i] > last_cycle[k, b, j]:
                        last_cycle[k, b, j] = cycles[k, i]
                        cycles_seen[k, b, j] += 1.0
                    weight = max(alpha, 1.0 / (bucket_count[k, b, j] + 1.0))
                    delta = x - mean[k, b, j]
                    mean[k, b, j] += weight * delta
                    var[k, b, j] = (1.0 - weight) * (var[k, b, j] + weight * delta * delta)
                    bucket_count[k, b, j] += 1.0
    return out
