"""Seasonal forecast residual: how surprising is each value given an online level + season forecast."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from numba import njit

from tocsin.detectors.base import Capabilities, check_positive
from tocsin.detectors.streaming import StreamingDetector
from tocsin.detectors.seasonal import DAY_SECONDS, _buckets


class SeasonalForecast(StreamingDetector):
    """Additive Holt-Winters forecast, learned online; the score is the surprise of the residual.

    Per column, the forecast of a row is ``level + season[bucket]``, with the
    period (a day by default) cut into ``n_buckets`` buckets as in
    :class:`~tocsin.detectors.seasonal.SeasonalProfile`. After the row is
    scored, the level moves towards the deseasonalised value
    (``level += alpha * (x - season - level)``), the row's bucket towards the
    detrended value (``season += gamma * (x - level - season)``), and the
    residual variance is an exponentially weighted mean of squared residuals
    (weight ``residual_alpha``). The score is the surprise of the residual in
    decades: ``-log10 P(|Z| >= |residual| / (sd + floor))`` for a standard
    normal Z, the largest over columns; 0 until ``warmup`` rows.

    Rows need ``timestamps=`` (``datetime64`` or epoch seconds); as its
    capabilities say, the row pipeline, which passes rows alone, refuses it.

    **Good at**: seasonal series with a moving level: unlike a seasonal profile
    it separates "the whole series went up" (absorbed by the level within
    ``1 / alpha`` rows) from "this hour is off its usual shape". The residual's
    surprise is on the same scale for every series.

    **Fails at**: multiplicative seasons (the amplitude grows with the level),
    several seasonalities at once (only one period), and, like any forecaster,
    anomalies that build up slower than ``1 / alpha`` rows. Heavy-tailed
    residuals make the Gaussian surprise overstate rare-but-normal jumps:
    calibrate it (:class:`~tocsin.detectors.postprocess.TailSurprise`).

    **Cost**: O(columns) per row, compiled; ``n_buckets + 4`` floats of state
    per column.

    Parameters
    ----------
    period
        Season length in seconds.
    n_buckets
        Buckets the period is cut into.
    alpha
        Level smoothing weight.
    gamma
        Season smoothing weight.
    residual_alpha
        Weight of the newest squared residual in the residual variance.
    warmup
        Rows before scoring starts.
    relative_floor
        Smallest residual spread, as a share of the range of values seen.

    Examples
    --------
    >>> import numpy as np
    >>> from tocsin.detectors.forecast import SeasonalForecast
    >>> hours = np.arange(24 * 21)
    >>> rng = np.random.default_rng(0)
    >>> series = 100 + 30 * np.sin(2 * np.pi * hours / 24) + rng.normal(0, 1, hours.size)
    >>> series[24 * 20 + 6] += 12.0
    >>> detector = SeasonalForecast(period=86_400, n_buckets=24)
    >>> scores = detector.score_partial_fit(series, timestamps=hours * 3600)
    >>> int(scores.argmax()) == 24 * 20 + 6, bool(scores.max() > 5)
    (True, True)

    References
    ----------
    Winters, P. R. (1960). "Forecasting sales by exponentially weighted moving
    averages". *Management Science* 6(3). Hyndman and Athanasopoulos (2021),
    *Forecasting: Principles and Practice*, 3rd ed., section 8.3.
    """

    kind = "seasonal_forecast"
    capabilities = Capabilities(needs_timestamps=True, per_series=True, online=True, explains=True)
    _state_names = ("level_", "season_", "bucket_count_", "residual_var_", "low_", "high_", "count_")

    def __init__(
        self,
        period: float = DAY_SECONDS,
        n_buckets: int = 24,
        alpha: float = 0.1,
        gamma: float = 0.1,
        residual_alpha: float = 0.02,
        warmup: int = 50,
        relative_floor: float = 1e-3,
    ) -> None:
        self.period = period
        self.n_buckets = n_buckets
        self.alpha = alpha
        self.gamma = gamma
        self.residual_alpha = residual_alpha
        self.warmup = warmup
        self.relative_floor = relative_floor

    def check_params(self, feature_names: Sequence[str] | None = None) -> None:
        check_positive("period", self.period)
        check_positive("n_buckets", self.n_buckets, integer=True)
        for name in ("alpha", "gamma", "residual_alpha"):
            check_positive(name, getattr(self, name), upper=1.0)
        check_positive("warmup", self.warmup, integer=True)
        check_positive("relative_floor", self.relative_floor)

    def _init_state(self, n_features: int) -> None:
        self.level_ = np.zeros(n_features)
        self.season_ = np.zeros((self.n_buckets, n_features))
        self.bucket_count_ = np.zeros((self.n_buckets, n_features))
        self.residual_var_ = np.zeros(n_features)
        self.low_ = np.zeros(n_features)
        self.high_ = np.zeros(n_features)
        self.count_ = np.zeros(n_features)

    def _run(self, X: np.ndarray, seconds: np.ndarray, learn: bool, score: bool) -> np.ndarray:
        buckets = _buckets(seconds, float(self.period), int(self.n_buckets))
        return _forecast(
            X, buckets, self.level_, self.season_, self.bucket_count_, self.residual_var_, self.low_, self.high_, self.count_,
            float(self.alpha), float(self.gamma), float(self.residual_alpha), int(self.warmup), float(self.relative_floor), learn, score,
        )


@njit(cache=True)
def _forecast(X, buckets, level, season, bucket_count, residual_var, low, high, count, alpha, gamma, residual_alpha, warmup, relative_floor, learn, score):
    n, d = X.shape
    out = np.zeros((n, d))
    for i in range(n):
        b = buckets[i]
        for j in range(d):
            x = X[i, j]
            if math.isnan(x):
                out[i, j] = np.nan
                continue
            residual = x - (level[j] + season[b, j])
            if score and count[j] >= warmup:
                spread = math.sqrt(residual_var[j]) + relative_floor * (high[j] - low[j]) + 1e-12
                tail = math.erfc(abs(residual) / spread / math.sqrt(2.0))
                out[i, j] = -math.log10(max(tail, 1e-300))
            if learn:
                if count[j] == 0:
                    level[j] = x
                    low[j] = x
                    high[j] = x
                else:
                    level[j] += max(alpha, 1.0 / (count[j] + 1.0)) * (x - season[b, j] - level[j])
                    low[j] = min(low[j], x)
                    high[j] = max(high[j], x)
                weight = max(gamma, 1.0 / (bucket_count[b, j] + 1.0))
                season[b, j] += weight * (x - level[j] - season[b, j])
                bucket_count[b, j] += 1.0
                if count[j] > 0:
                    residual_var[j] += max(residual_alpha, 1.0 / count[j]) * (residual * residual - residual_var[j])
                count[j] += 1.0
    return out
