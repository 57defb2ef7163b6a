"""The composed streaming time-series detector, the value-rarity detector it uses, and named configurations.

:class:`TimeSeriesDetector` runs several online detectors over the same
rows, calibrates each one's raw score to surprise (decades of improbability
against its own recent scores), combines the surprises, damps the echoes of an
alarm and maps the result into [0, 1). ``CONFIGURATIONS`` names the settings
the NAB benchmark compares (``tocsin bench nab --detector NAME``); the default,
``DEFAULT_CONFIGURATION``, is the one that measured best there, with one set
of parameters for every series.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
from numba import njit

from tocsin.detectors.base import Capabilities, check_positive
from tocsin.detectors.ewma import EWMAZScore
from tocsin.detectors.forecast import SeasonalForecast
from tocsin.detectors.postprocess import AlarmSuppressor, AnomalyLikelihood, TailSurprise, surprise_to_unit
from tocsin.detectors.seasonal import DAY_SECONDS, SeasonalProfile
from tocsin.detectors.streaming import StreamingDetector, as_rows


class ValueRarity(StreamingDetector):
    """How rarely values like this one have been seen: ``-log`` of a decayed histogram density.

    Per column, the range seen so far (min to max) is cut into ``n_bins``
    bins that hold exponentially decayed counts (each row multiplies all counts
    by ``decay``, then adds 1 to its bin). A row scores
    ``-ln((count_of_its_bin + 0.5) / (total + 1))`` in nats: a value in a bin
    that has been empty for a long time, or beyond the range seen, scores
    high. When a value widens the range, the histogram is rebuilt from the last
    ``memory`` values with their decayed weights (range changes are rare, so
    this costs little on average). 0 until ``warmup`` values.

    **Good at**: "novel levels": a series that settles somewhere it has not
    been (a stuck sensor, a service that stops answering, a price that jumps to
    a new plateau), regardless of how it got there, and multimodal series where
    a value between the modes is rare but not far from the mean.

    **Fails at**: anomalies in *shape or timing* made of common values (a
    daily peak at the wrong hour: use a seasonal detector), and series that
    trend steadily to new values (every new value is "rare"). A single far
    outlier widens the range and coarsens the bins for a while.

    **Cost**: O(columns) per row plus an O(memory x columns) rebuild when the
    range grows; ``n_bins + memory + 5`` floats of state per column.

    Parameters
    ----------
    n_bins
        Bins across the range seen so far.
    decay
        Per-row decay of the counts: the memory is about ``1 / (1 - decay)`` rows.
    memory
        Recent values kept to rebuild the histogram when the range grows.
    warmup
        Values a column must have seen before it is scored.

    Examples
    --------
    >>> import numpy as np
    >>> from tocsin.detectors.timeseries import ValueRarity
    >>> rng = np.random.default_rng(0)
    >>> series = np.concatenate([rng.normal(0, 1, 800), rng.normal(6, 0.1, 50)])
    >>> scores = ValueRarity().score_partial_fit(series)
    >>> round(float(np.median(scores[100:800])), 1), bool(scores[800] > 5)
    (3.0, True)

    References
    ----------
    Goldstein, M. and Dengel, A. (2012). "Histogram-based outlier score (HBOS)".
    *KI-2012 Poster and Demo Track*; made online with decayed counts.
    """

    kind = "value_rarity"
    capabilities = Capabilities(per_series=True, online=True, explains=True)
    _state_names = ("counts_", "total_", "low_", "high_", "count_", "recent_", "recent_position_")

    def __init__(self, n_bins: int = 40, decay: float = 0.999, memory: int = 4096, warmup: int = 20) -> None:
        self.n_bins = n_bins
        self.decay = decay
        self.memory = memory
        self.warmup = warmup

    def check_params(self, feature_names: Sequence[str] | None = None) -> None:
        check_positive("n_bins", self.n_bins, integer=True)
        check_positive("decay", self.decay, upper=1.0)
        check_positive("memory", self.memory, integer=True)
        check_positive("warmup", self.warmup, integer=True)

    def _init_state(self, n_features: int) -> None:
        self.counts_ = np.zeros((n_features, self.n_bins))
        self.total_ = np.zeros(n_features)
        self.low_ = np.zeros(n_features)
        self.high_ = np.zeros(n_features)
        self.count_ = np.zeros(n_features)
        self.recent_ = np.zeros((self.memory, n_features))
        self.recent_position_ = np.zeros(n_features, dtype=np.int64)

    def _run(self, X: np.ndarray, seconds: np.ndarray, learn: bool, score: bool) -> np.ndarray:
        return _rarity(X, self.counts_, self.total_, self.low_, self.high_, self.count_, self.recent_, self.recent_position_, float(self.decay), int(self.warmup), learn, score)


@njit(cache=True)
def _rarity(X, counts, total, low, high, count, recent, recent_position, decay, warmup, learn, score):
    n, d = X.shape
    n_bins = counts.shape[1]
    memory = recent.shape[0]
    out = np.zeros((n, d))
    for i in range(n):
        for j in range(d):
            x = X[i, j]
            if math.isnan(x):
                out[i, j] = np.nan
                continue
            width = high[j] - low[j]
            if score and count[j] >= warmup:
                if width <= 0.0:
                    in_bin = total[j] if x == low[j] else 0.0
                else:
                    b = int((x - low[j]) / width * n_bins)
                    in_bin = counts[j, b] if 0 <= b <= n_bins - 1 else (counts[j, n_bins - 1] if x == high[j] else 0.0)
                out[i, j] = -math.log((in_bin + 0.5) / (total[j] + 1.0))
            if not learn:
                continue
            slot = recent_position[j] % memory
            recent[slot, j] = x
            recent_position[j] += 1
            if count[j] == 0:
                low[j] = x
                high[j] = x
            new_low = min(low[j], x)
            new_high = max(high[j], x)
            count[j] += 1.0
            if new_high > new_low and (new_low < low[j] or new_high > high[j] or width <= 0.0):
                # the range grew: rebuild the decayed histogram from the recent values
                low[j] = new_low
                high[j] = new_high
                counts[j, :] = 0.0
                total[j] = 0.0
                kept = min(recent_position[j], memory)
                weight = 1.0
                for age in range(kept):
                    value = recent[(recent_position[j] - 1 - age) % memory, j]
                    b = min(int((value - new_low) / (new_high - new_low) * n_bins), n_bins - 1)
                    counts[j, b] += weight
                    total[j] += weight
                    weight *= decay
                continue
            for b in range(n_bins):
                counts[j, b] *= decay
            total[j] = total[j] * decay + 1.0
            b = min(int((x - low[j]) / (high[j] - low[j]) * n_bins), n_bins - 1) if high[j] > low[j] else 0
            counts[j, b] += 1.0
    return out


#: component name -> its class and, for each of its parameters that a TimeSeriesDetector
#: sets, the TimeSeriesDetector parameter that sets it (errors name the latter)
_COMPONENTS: dict[str, tuple[type[StreamingDetector], dict[str, str]]] = {
    "seasonal": (SeasonalProfile, {"period": "seasonal_period", "n_buckets": "seasonal_buckets", "alpha": "seasonal_alpha"}),
    "rarity": (ValueRarity, {"n_bins": "rarity_bins", "decay": "rarity_decay"}),
    "ewma": (EWMAZScore, {}),
    "forecast": (SeasonalForecast, {"period": "seasonal_period", "n_buckets": "seasonal_buckets"}),
}
#: the same for the calibration (by ``calibration``) and the alarm suppressor
_CALIBRATIONS: dict[str, tuple[type, dict[str, str]]] = {
    "tail": (TailSurprise, {"window": "calibration_window", "tail_quantile": "tail_quantile", "warmup": "warmup"}),
    "likelihood": (AnomalyLikelihood, {"history": "calibration_window", "warmup": "warmup"}),
}
_SUPPRESSOR: tuple[type, dict[str, str]] = (AlarmSuppressor, {"halflife": "suppress_halflife", "gamma": "suppress_gamma"})


class TimeSeriesDetector(StreamingDetector):
    """Several online detectors, each calibrated to surprise, combined, with alarm echoes damped.

    For each row, in order and strictly online:

    1. every component scores the row from the past (see ``components``):
       ``"seasonal"`` a time-of-day profile (:class:`SeasonalProfile`,
       ``seasonal_buckets`` buckets a day, weight ``seasonal_alpha``),
       ``"rarity"`` the value's rarity (:class:`ValueRarity`), ``"ewma"`` an
       EWMA z-score (:class:`EWMAZScore`), ``"forecast"`` a seasonal forecast's
       residual (:class:`SeasonalForecast`);
    2. each raw score becomes surprise in decades against that component's last
       ``calibration_window`` raw scores (:class:`TailSurprise`, exponential
       tail above ``tail_quantile``), or, with ``calibration="likelihood"``,
       Numenta's anomaly likelihood (:class:`AnomalyLikelihood`);
    3. surprises are combined: ``"sum"`` (evidence adds up: a row that is both
       off its daily profile and at a rare level is more anomalous than either)
       or ``"max"``;
    4. :class:`AlarmSuppressor` damps the rows after a high score
       (``suppress_halflife`` rows, strength ``suppress_gamma``);
    5. the output is ``s / (s + 10)`` in [0, 1) (monotone, so thresholds can
       be swept on either scale).

    Then every component learns the row. Nothing looks ahead; the same
    parameters serve every series (no labels, no per-series tuning). Scores are
    0 for the first ``warmup`` rows while the calibration fills.

    Rows need ``timestamps=`` when a seasonal component is used. With several
    columns each component scores the most anomalous column.

    Capabilities: online, and it needs timestamps with its default components
    (the seasonal profile), so the row pipeline refuses the kind; not per
    series, as the calibration sees the most anomalous column of each row.

    **Good at**: the NAB mix: spikes and dips off a daily pattern, new levels,
    flat-lined or stuck signals, with one early alarm per event (NAB standard
    profile 70.7 on the 31-file set, see :mod:`tocsin.bench.nab`).

    **Fails at**: slow drifts that never leave the range seen (the rarity
    component adapts with them), anomalies in the *relation* between columns,
    seasonality other than daily unless ``seasonal_period`` is changed, and the
    first ``warmup`` rows of a stream. The suppression hides a second, smaller
    event within a few half-lives of the first.

    **Cost**: the sum of the components (tens of ns per row) plus about 1 us
    per row and component for the calibration's sorted window; state is about
    ``2 x calibration_window`` floats per component.

    Parameters
    ----------
    components
        Names of the component detectors (``"seasonal"``, ``"rarity"``,
        ``"ewma"``, ``"forecast"``).
    combine
        ``"sum"`` or ``"max"`` of the components' surprises.
    calibration
        ``"tail"`` (:class:`TailSurprise`) or ``"likelihood"`` (:class:`AnomalyLikelihood`).
    seasonal_period, seasonal_buckets, seasonal_alpha
        The seasonal and forecast components' period (seconds), buckets and weight.
    rarity_bins, rarity_decay
        The rarity component's histogram.
    calibration_window, tail_quantile, warmup
        The calibration's reference window, tail start and warm-up rows.
    suppress_halflife, suppress_gamma
        The alarm suppressor (``suppress_gamma=0`` turns it off).

    Examples
    --------
    >>> import numpy as np
    >>> from tocsin.detectors.timeseries import TimeSeriesDetector
    >>> minutes = np.arange(0, 14 * 1440, 10)            # two weeks every 10 minutes
    >>> rng = np.random.default_rng(0)
    >>> load = 50 + 20 * np.sin(2 * np.pi * minutes / 1440) + rng.normal(0, 1, minutes.size)
    >>> load[1800:1830] = 20.0                            # a stall at a busy hour
    >>> detector = TimeSeriesDetector()
    >>> scores = detector.score_partial_fit(load, timestamps=minutes * 60)
    >>> first_alarm = int(np.argmax(scores > 0.4))
    >>> first_alarm, bool(scores[:1800].max() < scores[1800:1830].max())
    (1800, True)
    """

    kind = "timeseries"
    capabilities = Capabilities(needs_timestamps=True, online=True, explains=True)
    _state_names = ("n_columns_",)

    def __init__(
        self,
        components: tuple[str, ...] | list[str] = ("seasonal", "rarity"),
        combine: str = "sum",
        calibration: str = "tail",
        seasonal_period: float = DAY_SECONDS,
        seasonal_buckets: int = 24,
        seasonal_alpha: float = 0.05,
        rarity_bins: int = 40,
        rarity_decay: float = 0.999,
        calibration_window: int = 4000,
        tail_quantile: float = 0.98,
        warmup: int = 100,
        suppress_halflife: float = 100.0,
        suppress_gamma: float = 0.5,
    ) -> None:
        self.components = components
        self.combine = combine
        self.calibration = calibration
        self.seasonal_period = seasonal_period
        self.seasonal_buckets = seasonal_buckets
        self.seasonal_alpha = seasonal_alpha
        self.rarity_bins = rarity_bins
        self.rarity_decay = rarity_decay
        self.calibration_window = calibration_window
        self.tail_quantile = tail_quantile
        self.warmup = warmup
        self.suppress_halflife = suppress_halflife
        self.suppress_gamma = suppress_gamma

    @property
    def needs_timestamps(self) -> bool:  # type: ignore[override]
        return any(name in ("seasonal", "forecast") for name in self.components)

    def check_params(self, feature_names: Sequence[str] | None = None) -> None:
        components = self.components
        if not isinstance(components, (list, tuple)) or not components or any(
            not isinstance(name, str) or name not in _COMPONENTS for name in components
        ):
            raise ValueError(f"components must be a non-empty list of {list(_COMPONENTS)}, got {self.components!r}")
        if self.combine not in ("sum", "max"):
            raise ValueError(f"combine must be 'sum' or 'max', got {self.combine!r}")
        if self.calibration not in _CALIBRATIONS:
            raise ValueError(f"calibration must be 'tail' or 'likelihood', got {self.calibration!r}")
        # the parts check the rest when they are built
        self._make_parts()

    def _make(self, cls: type, settings: dict[str, str]) -> Any:
        """``cls`` with its parameters from this detector's; an error names this detector's parameter."""
        try:
            made = cls(**{inner: getattr(self, outer) for inner, outer in settings.items()})
            if isinstance(made, StreamingDetector):
                made.check_params()
        except ValueError as error:
            message = str(error)
            for inner, outer in settings.items():
                if message.startswith(f"{inner} "):
                    message = outer + message[len(inner) :]
                    break
            raise ValueError(message) from None
        return made

    def _make_parts(self) -> tuple[list[StreamingDetector], list[Any], AlarmSuppressor]:
        parts = [self._make(*_COMPONENTS[name]) for name in self.components]
        calibrators = [self._make(*_CALIBRATIONS[self.calibration]) for _ in self.components]
        return parts, calibrators, self._make(*_SUPPRESSOR)

    def _build_parts(self) -> None:
        self.parts_, self.calibrators_, self.suppressor_ = self._make_parts()

    def _init_state(self, n_features: int) -> None:
        self._build_parts()
        for part in self.parts_:
            part._init_state(n_features)
        self.n_columns_ = np.array([n_features])

    @property
    def n_features_in_(self) -> int:
        return int(self.n_columns_[0])

    def _fitted_attributes(self) -> list[str]:
        return ["n_columns_"]

    def _surprises(self, X: np.ndarray, seconds: np.ndarray, learn: bool) -> np.ndarray:
        """Per component (components x rows): calibrated surprise of the row's raw score."""
        out = np.empty((len(self.parts_), X.shape[0]))
        for k, (part, calibrator) in enumerate(zip(self.parts_, self.calibrators_)):
            raw = part._reduce(part._run(X, seconds, learn=learn, score=True))
            out[k] = calibrator.process(raw, learn=learn)
        return out

    def _combine(self, surprises: np.ndarray) -> np.ndarray:
        return surprises.sum(axis=0) if self.combine == "sum" else surprises.max(axis=0)

    def _run_scores(self, X: np.ndarray, seconds: np.ndarray, learn: bool) -> np.ndarray:
        combined = self._combine(self._surprises(X, seconds, learn))
        return surprise_to_unit(self.suppressor_.process(combined, learn=learn))

    def fit(self, X: np.ndarray, timestamps: Any = None) -> TimeSeriesDetector:
        """Forget everything, then learn ``X`` row by row (the calibration learns too)."""
        self.check_params()
        X = as_rows(X)
        self._init_state(X.shape[1])
        self._run_scores(X, self._seconds(X, timestamps), learn=True)
        return self

    def partial_fit(self, X: np.ndarray, timestamps: Any = None) -> TimeSeriesDetector:
        X = self._start(X)
        self._run_scores(X, self._seconds(X, timestamps), learn=True)
        return self

    def score_samples(self, X: np.ndarray, timestamps: Any = None) -> np.ndarray:
        """Scores in [0, 1) against the current state; nothing is learned (the rows
        do not see each other, and do not raise the suppression envelope)."""
        self._check_fitted()
        X = self._checked_rows(X)
        return self._run_scores(X, self._seconds(X, timestamps), learn=False)

    def score_partial_fit(self, X: np.ndarray, timestamps: Any = None) -> np.ndarray:
        """Scores in [0, 1), each row from the rows before it, then learned."""
        X = self._start(X)
        return self._run_scores(X, self._seconds(X, timestamps), learn=True)

    def explain(self, X: np.ndarray, timestamps: Any = None) -> np.ndarray:
        """Per column: the components' calibrated surprises of that column alone, combined
        (before suppression); rows x columns, in decades."""
        self._check_fitted()
        X = self._checked_rows(X)
        seconds = self._seconds(X, timestamps)
        per_component = []
        for part, calibrator in zip(self.parts_, self.calibrators_):
            contributions = np.nan_to_num(part._run(X, seconds, learn=False, score=True), nan=-np.inf)
            state = calibrator.state_dict()
            surprise = calibrator.process(contributions.ravel(), learn=False).reshape(contributions.shape)
            calibrator.load_state_dict(state)
            per_component.append(surprise)
        stacked = np.stack(per_component)
        return stacked.sum(axis=0) if self.combine == "sum" else stacked.max(axis=0)

    def state_dict(self) -> dict[str, np.ndarray]:
        self._check_fitted()
        state = {"n_columns": self.n_columns_.copy()}
        for k, (part, calibrator) in enumerate(zip(self.parts_, self.calibrators_)):
            state.update({f"part{k}.{name}": value for name, value in part.state_dict().items()})
            state.update({f"calibrator{k}.{name}": value for name, value in calibrator.state_dict().items()})
        state.update({f"suppressor.{name}": value for name, value in self.suppressor_.state_dict().items()})
        return state

    def load_state_dict(self, state: dict[str, np.ndarray]) -> None:
        self._build_parts()
        for k, (part, calibrator) in enumerate(zip(self.parts_, self.calibrators_)):
            part.load_state_dict(_strip(state, f"part{k}."))
            calibrator.load_state_dict(_strip(state, f"calibrator{k}."))
        self.suppressor_.load_state_dict(_strip(state, "suppressor."))
        self.n_columns_ = np.array(state["n_columns"], dtype=np.int64).reshape(1)

    def get_params(self) -> dict[str, Any]:
        params = super().get_params()
        params["components"] = list(params["components"])  # JSON-friendly in saved models
        return params


def _strip(state: dict[str, np.ndarray], prefix: str) -> dict[str, np.ndarray]:
    return {name[len(prefix) :]: value for name, value in state.items() if name.startswith(prefix)}


#: Named time-series configurations (``tocsin bench nab --detector NAME``); one set of
#: parameters for every series. Measured on NAB's 31-file set: see tocsin.bench.nab.
CONFIGURATIONS: dict[str, dict[str, Any]] = {
    # seasonal profile (hourly buckets) + value rarity, tail-calibrated, surprises summed, echoes damped
    "tocsin": {},
    # the same components, the larger surprise instead of the sum
    "tocsin-max": {"combine": "max"},
    # the seasonal profile alone
    "seasonal": {"components": ("seasonal",)},
    # online Holt-Winters residual + value rarity
    "forecast": {"components": ("forecast", "rarity")},
    # EWMA z-score with Numenta's anomaly likelihood, the classic streaming baseline
    "ewma-likelihood": {"components": ("ewma",), "calibration": "likelihood"},
}
DEFAULT_CONFIGURATION = "tocsin"


def make_detector(name: str | None = None) -> TimeSeriesDetector:
    """A fresh detector of a named configuration (the default when ``name`` is None)."""
    name = DEFAULT_CONFIGURATION if name is None else name
    if name not in CONFIGURATIONS:
        raise ValueError(f"unknown time-series configuration {name!r}; choose from {sorted(CONFIGURATIONS)}")
    return TimeSeriesDetector(**CONFIGURATIONS[name])
