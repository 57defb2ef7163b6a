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
