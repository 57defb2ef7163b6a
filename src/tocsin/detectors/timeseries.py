"""The composed streaming time-series detector, the value-rarity detector it uses, and named configurations.

:class:`TimeSeriesDetector` runs several online detectors over each series
(column), calibrates each one's raw score to surprise (decades of improbability
against its own recent scores on that series), combines the surprises, damps
the echoes of an alarm and maps the result into [0, 1). ``CONFIGURATIONS``
names the settings the NAB benchmark compares (``tocsin bench nab --detector
NAME``); ``CV_CANDIDATES`` is the fixed set ``tocsin bench nab --cv`` chooses
among by leave-one-category-out cross-validation, and the default,
``DEFAULT_CONFIGURATION``, is the one it chose, with one set of parameters for
every series.
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
from tocsin.detectors.postprocess import ConformalTail, EchoDamper, _damp_echoes, surprise_to_unit
from tocsin.detectors.seasonal import AutoSeasonalProfile
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


def rarity_bins(memory: float) -> int:
    """Bins of the rarity histogram for a memory of ``memory`` rows: Rice's rule, ``ceil(2 n^(1/3))``,
    for the histogram's effective number of values ``n = 2 x memory - 1``.

    A histogram's bins should grow as the cube root of the values it holds (the
    order that balances the bias of wide bins against the noise of sparse ones
    for a smooth density; Scott 1979, Freedman and Diaconis 1981); Rice's rule is
    that order with no estimate of the spread, which the rarity histogram cannot
    use (its range is the range seen, not a standard deviation). The counts are
    exponentially decayed (weight ``d^age``, ``d = 1 - 1 / memory``), so the
    number of values they hold is Kish's effective sample size
    ``(sum w)^2 / sum w^2 = (1 + d) / (1 - d) = 2 x memory - 1``: 4,000 rows of
    memory give 40 bins. The bin count therefore follows the memory instead of
    being a knob of its own.

    >>> rarity_bins(4000.0), rarity_bins(1000.0), rarity_bins(8000.0)
    (40, 26, 51)
    """
    effective = 2.0 * float(memory) - 1.0
    return max(1, math.ceil(2.0 * effective ** (1.0 / 3.0) - 1e-9))


def _decay(memory: Any) -> Any:
    return 1.0 - 1.0 / memory if isinstance(memory, (int, float)) and memory >= 1 else memory


def _bins(memory: Any) -> Any:
    return rarity_bins(memory) if isinstance(memory, (int, float)) and memory >= 1 else 1


#: component name -> its class and, for each of its parameters that a TimeSeriesDetector
#: sets, the TimeSeriesDetector parameter that sets it and how (errors name the latter)
_COMPONENTS: dict[str, tuple[type[StreamingDetector], dict[str, tuple[str, Any]]]] = {
    "seasonal": (AutoSeasonalProfile, {"alpha": ("seasonal_alpha", None)}),
    "rarity": (ValueRarity, {"n_bins": ("rarity_memory", _bins), "decay": ("rarity_memory", _decay)}),
    "ewma": (EWMAZScore, {}),
    "forecast": (SeasonalForecast, {}),
}


class TimeSeriesDetector(StreamingDetector):
    """Online detectors per series, each calibrated to surprise, summed, with alarm echoes damped.

    Each column is a series of its own (capabilities: per series). For each row,
    in order and strictly online, per column:

    1. every component scores the value from the past (``components``):
       ``"seasonal"`` its hour-of-day and hour-of-week profiles
       (:class:`~tocsin.detectors.seasonal.AutoSeasonalProfile`: no period to set),
       ``"rarity"`` the rarity of the value (:class:`ValueRarity`), ``"ewma"``
       an EWMA z-score (:class:`EWMAZScore`), ``"forecast"`` a seasonal
       daily forecast's residual (:class:`SeasonalForecast`);
    2. each raw score becomes surprise in decades against that component's last
       ``calibration_window`` raw scores on this series (:class:`ConformalTail`:
       a rank, an exponential tail, and never more surprise than the scores
       seen can support, so there is no warm-up to set);
    3. the surprises are summed (``combine="sum"``: evidence adds up, a value
       both off its hour's profile and at a rare level is more anomalous than
       either) or the largest is taken (``"max"``);
    4. :class:`~tocsin.detectors.postprocess.EchoDamper` damps the rows after a
       high score by the share of their surprise that is new (no strength to set);
    5. the output is ``s / (s + 10)`` in [0, 1) (monotone: thresholds can be
       swept on either scale). With several columns a row scores its most
       anomalous column.

    Then every component learns the row. Nothing looks ahead, and one set of
    parameters serves every series: the default was chosen by leave-one-category-out
    cross-validation on NAB among the fixed candidates of :data:`CV_CANDIDATES`
    (``tocsin bench nab --cv``; figures in ``docs/quality.md``).

    Why each knob has its value (none was set per series), and what is not a knob:

    - no period: the seasonal component holds the day's and the week's
      profiles in hours at once (the clock's and the calendar's cycles,
      :data:`~tocsin.detectors.seasonal.AUTO_SEASONS`) and each series moves
      from the day to the week only once the week has forecast it significantly
      better; where nothing repeats daily or weekly each bucket is a slow mean
      per hour and its calibrated surprise stays low;
    - ``seasonal_alpha`` 0.05: each bucket's mean and spread remember about 20
      values, so a daily pattern is learned in a few days and follows slow change;
    - ``rarity_memory`` 4,000 rows of counts: a level is "rare" against about two
      weeks of 5-minute data, long enough that an ordinary daily excursion is
      common, short enough that a level the series moved to long ago is normal
      again; the histogram's bins follow from it (:func:`rarity_bins`, Rice's
      rule on the decayed counts' effective number of values: 40 bins for
      4,000 rows);
    - ``calibration_window`` 4,000 scores: a 2 % tail of 80 points;
    - ``suppress_halflife`` 100 rows: the first alarm of an event passes, its
      echoes over the next few hundred rows keep only the share of their
      surprise that the alarm does not account for (NAB and people count every
      repeated alarm as a false one); the damping has no strength of its own.

    **Good at**: spikes and dips off a daily pattern, new levels, flat-lined
    or stuck signals, with one early alarm per event; short series (surprise
    is bounded by what has been seen, not switched on after a warm-up).

    **Fails at**: slow drifts that never leave the range seen (the rarity
    component adapts with them), anomalies in the *relation* between columns,
    periods other than a day or a week, and a
    second, smaller event within a few half-lives of the first. The NAB score
    of any setting is noisy: one detected window is worth about 1.7 points, so
    changing a parameter by half or double moves it by several points (the
    sensitivity table in ``docs/quality.md``).

    **Cost**: the components (tens of ns per row and column) plus about 1 us per
    row, column and component for the calibration's sorted window; state is
    about ``2 x calibration_window`` floats per component and column.

    Parameters
    ----------
    components
        Names of the component detectors (``"seasonal"``, ``"rarity"``,
        ``"ewma"``, ``"forecast"``).
    combine
        ``"sum"`` or ``"max"`` of the components' surprises.
    seasonal_alpha
        The seasonal component's weight of the newest value in its bucket.
    rarity_memory
        The rarity component's memory of its counts in rows (its bins follow).
    calibration_window
        Raw scores per component and series the surprise is computed against.
    suppress_halflife
        Rows over which the echo damping halves.

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
    >>> int(np.argmax(scores > 0.4)), bool(scores[:1800].max() < scores[1800:1830].max())
    (1800, True)
    """

    kind = "timeseries"
    capabilities = Capabilities(needs_timestamps=True, per_series=True, online=True, explains=True)
    _state_names = ("n_columns_",)

    def __init__(
        self,
        components: tuple[str, ...] | list[str] = ("seasonal", "rarity"),
        combine: str = "sum",
        seasonal_alpha: float = 0.05,
        rarity_memory: float = 4000.0,
        calibration_window: int = 4000,
        suppress_halflife: float = 100.0,
    ) -> None:
        self.components = components
        self.combine = combine
        self.seasonal_alpha = seasonal_alpha
        self.rarity_memory = rarity_memory
        self.calibration_window = calibration_window
        self.suppress_halflife = suppress_halflife

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
        check_positive("rarity_memory", self.rarity_memory)
        if not self.rarity_memory > 1:
            raise ValueError(f"rarity_memory must be more than 1 row, got {self.rarity_memory!r}")
        # the parts check the rest when they are built
        self._make_parts()

    def _make(self, cls: type, settings: dict[str, tuple[str, Any]]) -> Any:
        """``cls`` with its parameters from this detector's; an error names this detector's parameter."""
        try:
            made = cls(**{inner: (convert or (lambda v: v))(getattr(self, outer)) for inner, (outer, convert) in settings.items()})
            if isinstance(made, StreamingDetector):
                made.check_params()
        except ValueError as error:
            message = str(error)
            for inner, (outer, _) in settings.items():
                if message.startswith(f"{inner} "):
                    message = outer + message[len(inner) :]
                    break
            raise ValueError(message) from None
        return made

    def _make_parts(self) -> tuple[list[StreamingDetector], list[ConformalTail], EchoDamper]:
        parts = [self._make(*_COMPONENTS[name]) for name in self.components]
        calibrators = [self._make(ConformalTail, {"window": ("calibration_window", None)}) for _ in self.components]
        return parts, calibrators, self._make(EchoDamper, {"halflife": ("suppress_halflife", None)})

    def _build_parts(self, n_features: int) -> None:
        self.parts_, self.calibrators_, self.suppressor_ = self._make_parts()
        for calibrator in self.calibrators_:
            calibrator.reset(n_features)
        self.envelope_ = np.zeros(n_features)

    def _init_state(self, n_features: int) -> None:
        self._build_parts(n_features)
        for part in self.parts_:
            part._init_state(n_features)
        self.n_columns_ = np.array([n_features])

    @property
    def n_features_in_(self) -> int:
        return int(self.n_columns_[0])

    def _fitted_attributes(self) -> list[str]:
        return ["n_columns_"]

    def _combined(self, X: np.ndarray, seconds: np.ndarray, learn: bool) -> np.ndarray:
        """Rows x columns: the components' calibrated surprises, combined (before suppression)."""
        stacked = np.stack([
            calibrator.process(part._run(X, seconds, learn=learn, score=True), learn=learn)
            for part, calibrator in zip(self.parts_, self.calibrators_)
        ])
        return stacked.sum(axis=0) if self.combine == "sum" else stacked.max(axis=0)

    def _per_column(self, X: np.ndarray, seconds: np.ndarray, learn: bool) -> np.ndarray:
        combined = self._combined(X, seconds, learn)
        envelope = self.envelope_ if learn else self.envelope_.copy()
        decay = 0.5 ** (1.0 / float(self.suppress_halflife))
        out = np.empty_like(combined)
        for j in range(combined.shape[1]):
            out[:, j] = _damp_echoes(np.ascontiguousarray(combined[:, j]), envelope[j : j + 1], decay)
        # a missing value gives its column no score (the row scores its other columns)
        out[np.isnan(X)] = np.nan
        return surprise_to_unit(np.nan_to_num(out, nan=0.0)) if X.shape[1] == 1 else np.where(np.isnan(out), np.nan, surprise_to_unit(np.nan_to_num(out)))

    def _run_scores(self, X: np.ndarray, seconds: np.ndarray, learn: bool) -> np.ndarray:
        per_column = self._per_column(X, seconds, learn)
        return np.nan_to_num(self._reduce(per_column), nan=0.0)

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
        """Per column: the components' calibrated surprises combined (before suppression),
        rows x columns, in decades; 0 where the value is missing."""
        self._check_fitted()
        X = self._checked_rows(X)
        return np.nan_to_num(self._combined(X, self._seconds(X, timestamps), learn=False), nan=0.0)

    def state_dict(self) -> dict[str, np.ndarray]:
        self._check_fitted()
        state = {"n_columns": self.n_columns_.copy(), "envelope": self.envelope_.copy()}
        for k, (part, calibrator) in enumerate(zip(self.parts_, self.calibrators_)):
            state.update({f"part{k}.{name}": value for name, value in part.state_dict().items()})
            state.update({f"calibrator{k}.{name}": value for name, value in calibrator.state_dict().items()})
        return state

    def load_state_dict(self, state: dict[str, np.ndarray]) -> None:
        n_columns = int(np.asarray(state["n_columns"]).reshape(-1)[0])
        self._build_parts(n_columns)
        for k, (part, calibrator) in enumerate(zip(self.parts_, self.calibrators_)):
            part.load_state_dict(_strip(state, f"part{k}."))
            calibrator.load_state_dict(_strip(state, f"calibrator{k}."))
        envelope = np.array(state["envelope"], dtype=np.float64).reshape(-1)
        if envelope.shape != (n_columns,):
            raise ValueError(f"state holds {envelope.shape} suppression envelopes for {n_columns} columns")
        self.envelope_ = envelope
        self.n_columns_ = np.array([n_columns], dtype=np.int64)

    def get_params(self) -> dict[str, Any]:
        params = super().get_params()
        params["components"] = list(params["components"])  # JSON-friendly in saved models
        return params


def _strip(state: dict[str, np.ndarray], prefix: str) -> dict[str, np.ndarray]:
    return {name[len(prefix) :]: value for name, value in state.items() if name.startswith(prefix)}


#: Named time-series configurations (``tocsin bench nab --detector NAME``); one set of
#: parameters for every series. Fixed before any cross-validated score was seen; the
#: default is the one with the best leave-one-category-out NAB score (``--cv``).
CONFIGURATIONS: dict[str, dict[str, Any]] = {
    # day + week profiles (hourly buckets) + value rarity (memory 4,000 rows), calibrated, surprises summed, echoes damped
    "tocsin": {},
    # the same, the rarity remembering a quarter as long (1,000 rows: the previous default)
    "tocsin-short": {"rarity_memory": 1000.0},
    # the same components, the larger surprise instead of the sum
    "tocsin-max": {"combine": "max", "rarity_memory": 1000.0},
    # the day + week profiles alone
    "seasonal": {"components": ("seasonal",)},
    # value rarity alone (no timestamps needed)
    "rarity": {"components": ("rarity",)},
    # online Holt-Winters residual (daily season) + value rarity
    "forecast": {"components": ("forecast", "rarity"), "rarity_memory": 1000.0},
    # day + week profiles + value rarity + EWMA z-score
    "tocsin-ewma": {"components": ("seasonal", "rarity", "ewma"), "rarity_memory": 1000.0},
}
#: The candidates ``tocsin bench nab --cv`` chooses among (earlier wins ties): all of CONFIGURATIONS.
CV_CANDIDATES: tuple[str, ...] = tuple(CONFIGURATIONS)
DEFAULT_CONFIGURATION = "tocsin"

#: Neighbouring choices of the parameters that are not numbers (the sensitivity table);
#: ``components`` is left out: each alternative is a candidate of its own.
NEIGHBOURS: dict[str, dict[Any, tuple[Any, ...]]] = {"combine": {"sum": ("max",), "max": ("sum",)}}


def sensitivity_variants(params: dict[str, Any]) -> dict[str, tuple[Any, ...]]:
    """Every parameter of a configuration at x0.5 and x2 (integers rounded), or its
    neighbouring choices (:data:`NEIGHBOURS`): the rows of the sensitivity table.

    >>> sensitivity_variants({"combine": "sum", "calibration_window": 4000, "suppress_halflife": 100.0, "components": ["rarity"]})
    {'combine': ('max',), 'calibration_window': (2000, 8000), 'suppress_halflife': (50.0, 200.0)}
    """
    variants: dict[str, tuple[Any, ...]] = {}
    for name, value in params.items():
        if name in NEIGHBOURS:
            variants[name] = NEIGHBOURS[name].get(value, ())
        elif isinstance(value, bool) or not isinstance(value, (int, float)):
            continue
        elif isinstance(value, int):
            variants[name] = (max(1, round(value / 2)), value * 2)
        else:
            variants[name] = (value / 2, value * 2)
    return variants


def make_detector(name: str | None = None, **overrides: Any) -> TimeSeriesDetector:
    """A fresh detector of a named configuration (the default when ``name`` is None),
    with ``overrides`` on top of its parameters."""
    name = DEFAULT_CONFIGURATION if name is None else name
    if name not in CONFIGURATIONS:
        raise ValueError(f"unknown time-series configuration {name!r}; choose from {sorted(CONFIGURATIONS)}")
    return TimeSeriesDetector(**{**CONFIGURATIONS[name], **overrides})
