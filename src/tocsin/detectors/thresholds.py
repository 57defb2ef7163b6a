"""Decisions on calibrated scores: which events are anomalies, and how severe.

A :class:`Threshold` decides a whole batch with the cut-off it had when the
batch arrived, then learns from the batch. Deciding first means an event's
decision never depends on events after it in the same batch, and a replayed
batch gets the decisions it got the first time (given the same state).
An event is flagged when its calibrated score is ``>=`` the cut-off.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod

import numpy as np

from tocsin.detectors.calibration import RingBuffer
from tocsin.spec import ThresholdSpec



def assign_severity(p: np.ndarray, warning: float, critical: float) -> np.ndarray:
    """Severity index per calibrated score: 0 (info) below ``warning``, 1 (warning)
    from ``warning``, 2 (critical) from ``critical``; names are in :data:`tocsin.vocabulary.SEVERITIES`.

    >>> assign_severity(np.array([0.5, 0.999, 0.9995, 0.9999, 1.0]), warning=0.999, critical=0.9999)
    array([0, 1, 1, 2, 2], dtype=int8)
    """
    if critical < warning:
        raise ValueError(f"critical ({critical}) must be >= warning ({warning})")
    p = np.asarray(p, dtype=np.float64)
    return ((p >= warning).astype(np.int8) + (p >= critical).astype(np.int8)).astype(np.int8)


class Threshold(ABC):
    """A cut-off on calibrated scores that may learn from the scores it decides."""

    @property
    @abstractmethod
    def current(self) -> float:
        """The cut-off the next batch will be decided with."""

    def decide(self, p: np.ndarray) -> np.ndarray:
        """Flags (``p >= current``) for the batch, then the state updated from it.

        NaN scores are never flagged and do not update the state.
        """
        p = np.asarray(p, dtype=np.float64).ravel()
        flags = p >= self.current
        scored = ~np.isnan(p)
        if scored.any():
            self._update(p[scored], flags[scored])
        return flags

    def _update(self, p: np.ndarray, flags: np.ndarray) -> None:
        """Learn from a decided batch (no NaN); stateless thresholds keep the default."""

    def state_dict(self) -> dict[str, np.ndarray]:
        return {}

    def load_state_dict(self, state: dict[str, np.ndarray]) -> None:
        return None


class FixedThreshold(Threshold):
    """A constant cut-off: flag calibrated scores ``>= value``.

    >>> FixedThreshold(0.99).decide(np.array([0.5, 0.99, 0.999]))
    array([False,  True,  True])
    """

    def __init__(self, value: float) -> None:
        if not (0.0 < value < 1.0):
            raise ValueError(f"value must be in (0, 1), got {value!r}")
        self.value = float(value)

    @property
    def current(self) -> float:
        return self.value


class QuantileThreshold(Threshold):
    """The cut-off is the ``q``-quantile of the last ``window`` calibrated scores
    (``q`` itself before any score arrived).

    Calibrated scores are already ranks against the detector's recent raw
    scores, so this mostly corrects for a calibration reference that lags the
    stream (e.g. right after a model swap). Flags about ``1 - q`` of events
    whatever happens, so a real incident cannot raise the alert volume beyond
    that; use :class:`FixedThreshold` when it should.

    >>> threshold = QuantileThreshold(0.9, window=100)
    >>> threshold.current
    0.9
    >>> threshold.decide(np.array([0.2, 0.95])).tolist()  # decided with 0.9, then learns
    [False, True]
    >>> flags = threshold.decide(np.arange(100) / 100)
    >>> round(threshold.current, 3)
    0.891
    """

    def __init__(self, q: float, window: int = 50_000) -> None:
        if not (0.0 < q < 1.0):
            raise ValueError(f"q must be in (0, 1), got {q!r}")
        if not (isinstance(window, (int, np.integer)) and window >= 1):
            raise ValueError(f"window must be a positive int, got {window!r}")
        self.q = float(q)
        self.window = int(window)
        self._recent = RingBuffer(self.window)
        self._current = self.q

    @property
    def current(self) -> float:
        return self._current

    def _update(self, p: np.ndarray, flags: np.ndarray) -> None:
        self._recent.extend(p)
        self._current = float(np.quantile(self._recent.unordered(), self.q))

    def state_dict(self) -> dict[str, np.ndarray]:
        return {"recent": self._recent.ordered()}

    def load_state_dict(self, state: dict[str, np.ndarray]) -> None:
        self._recent.clear()
        self._recent.extend(np.asarray(state["recent"], dtype=np.float64))
        recent = self._recent.unordered()
        self._current = float(np.quantile(recent, self.q)) if recent.size else self.q


#: |logit(cut-off)| is kept below this, so the cut-off stays strictly inside (0, 1)
#: (about 9e-14 from either end).
_MAX_ABS_LOGIT = 30.0
#: Largest change of logit(cut-off) from one batch: a batch that is all anomalies
#: (an incident, a broken feature) moves the cut-off by at most a factor e in odds.
_MAX_LOGIT_STEP = 1.0


def _logit(p: float) -> float:
    return math.log(p / (1.0 - p))


def _sigmoid(z: float) -> float:
    return 1.0 / (1.0 + math.exp(-z))


class AdaptiveThreshold(Threshold):
    """Moves its cut-off so that about ``target_rate`` of events are flagged (an alert budget).

    Control rule (a Robbins-Monro quantile tracker in log-odds): after deciding
    a batch of ``n`` events of which ``k`` were flagged, with ``expected =
    target_rate * n``::

        logit(cut) += gain * (k - expected) / max(expected, 1)

    (step clipped to +-1, logit clipped to +-30, so the cut-off stays inside
    (0, 1)). Too many flags raise the cut-off, too few lower it; in expectation
    the update is zero only where the flag rate equals ``target_rate``, so on a
    stationary stream the share of flagged events converges to it and the
    cut-off to the ``1 - target_rate`` quantile of the calibrated scores. Large
    batches take relative steps (``gain`` x the relative error); batches
    expected to hold less than one flag take per-event steps, so many small
    batches do not add up to more movement than one large one.
    The error is the *batch's*, not the recent window's: a window share lags
    the cut-off by the window length, and an integrating controller fed a
    lagged error overshoots and oscillates. ``recent_rate`` reports the share
    flagged over the last ``window_events`` events, which is what the rule keeps
    near ``target_rate``.

    Parameters
    ----------
    target_rate
        Share of events to flag, in (0, 1).
    initial
        Cut-off before any event was seen.
    gain
        Step size in log-odds per batch at 100% relative error; larger adapts
        faster and fluctuates more (about ``sqrt(gain / (2 * expected))`` relative
        spread of the flag rate).
    window_events
        Events over which ``recent_rate`` is measured.

    >>> rng = np.random.default_rng(0)
    >>> threshold = AdaptiveThreshold(target_rate=0.05, initial=0.5, gain=0.1)
    >>> for _ in range(300):
    ...     flags = threshold.decide(rng.uniform(size=1000))
    >>> round(threshold.current, 2), round(threshold.recent_rate, 2)
    (0.95, 0.05)
    """

    def __init__(
        self, target_rate: float, initial: float = 0.995, gain: float = 0.05, window_events: int = 50_000
    ) -> None:
        if not (0.0 < target_rate < 1.0):
            raise ValueError(f"target_rate must be in (0, 1), got {target_rate!r}")
        if not (0.0 < initial < 1.0):
            raise ValueError(f"initial must be in (0, 1), got {initial!r}")
        if not (gain > 0.0):
            raise ValueError(f"gain must be positive, got {gain!r}")
        if not (isinstance(window_events, (int, np.integer)) and window_events >= 1):
            raise ValueError(f"window_events must be a positive int, got {window_events!r}")
        self.target_rate = float(target_rate)
        self.initial = float(initial)
        self.gain = float(gain)
        self.window_events = int(window_events)
        self._logit = float(np.clip(_logit(self.initial), -_MAX_ABS_LOGIT, _MAX_ABS_LOGIT))
        self._recent_flags = RingBuffer(self.window_events, dtype=np.bool_)

    @property
    def current(self) -> float:
        return _sigmoid(self._logit)

    @property
    def recent_rate(self) -> float:
        """Share of the last ``window_events`` events that were flagged (NaN before any)."""
        if len(self._recent_flags) == 0:
            return math.nan
        return float(self._recent_flags.unordered().mean())

    def _update(self, p: np.ndarray, flags: np.ndarray) -> None:
        expected = self.target_rate * flags.size
        step = self.gain * (int(flags.sum()) - expected) / max(expected, 1.0)
        step = min(max(step, -_MAX_LOGIT_STEP), _MAX_LOGIT_STEP)
        self._logit = min(max(self._logit + step, -_MAX_ABS_LOGIT), _MAX_ABS_LOGIT)
        self._recent_flags.extend(flags)

    def state_dict(self) -> dict[str, np.ndarray]:
        return {"logit": np.asarray(self._logit), "recent_flags": self._recent_flags.ordered()}

    def load_state_dict(self, state: dict[str, np.ndarray]) -> None:
        self._logit = float(np.clip(float(state["logit"]), -_MAX_ABS_LOGIT, _MAX_ABS_LOGIT))
        self._recent_flags.clear()
        self._recent_flags.extend(np.asarray(state["recent_flags"], dtype=np.bool_))


def build_threshold(spec: ThresholdSpec) -> Threshold:
    """The threshold a pipeline spec asks for.

    ``fixed`` and ``quantile`` use ``spec.value`` as cut-off and as q;
    ``adaptive`` targets ``spec.target_rate`` starting from ``spec.value``.
    """
    if spec.kind == "fixed":
        return FixedThreshold(spec.value)
    if spec.kind == "quantile":
        return QuantileThreshold(spec.value)
    if spec.kind == "adaptive":
        return AdaptiveThreshold(spec.target_rate, initial=spec.value)
    raise ValueError(f"unknown threshold kind {spec.kind!r}; expected fixed, quantile or adaptive")
