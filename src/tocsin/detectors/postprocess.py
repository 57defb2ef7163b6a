"""What happens to a streaming detector's raw scores afterwards, each step strictly online
(the detectors themselves build on :mod:`tocsin.detectors.streaming`):

   - :class:`TailSurprise` turns raw scores into *surprise* in decades,
     ``-log10 P(score >= s)``, against the detector's own recent scores
     (empirical below a high quantile, exponential tail above it, as
     :class:`~tocsin.detectors.calibration.ScoreCalibrator` does for batches);
   - :class:`AnomalyLikelihood` is Numenta's anomaly likelihood: how
     improbable the short-term average of raw scores is under a Gaussian fitted
     to its longer history;
   - :class:`AlarmSuppressor` keeps the first alarm of a burst and damps the
     echoes that follow it (NAB counts every repeated alarm outside a window as
     a false positive).

Surprise in decades adds up across independent detectors (it is a log
p-value), is comparable between series, and :func:`surprise_to_unit` maps it
monotonically into [0, 1) where a score in [0, 1] is required.

Rows: ``X`` is rows x value columns (a 1-D array is one column). Timestamps,
where a detector needs them, come as the keyword ``timestamps=``: one per row,
``datetime64`` or numbers in seconds since the epoch (UTC, naive).
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from tocsin.detectors.base import check_positive

#: Smallest probability a surprise is computed from (caps the surprise at 300 decades).
_MIN_PROBABILITY = 1e-300


def surprise_to_unit(surprise: np.ndarray, scale: float = 10.0) -> np.ndarray:
    """Map surprise in decades (>= 0) monotonically into [0, 1): ``s / (s + scale)``.
    ``scale`` is the surprise that maps to 0.5. Order is kept, so thresholds swept over
    either give the same detections."""
    surprise = np.maximum(np.asarray(surprise, dtype=np.float64), 0.0)
    return surprise / (surprise + scale)


class TailSurprise:
    """Online calibration of raw scores to surprise in decades against the last ``window`` scores.

    Each raw score ``s`` is compared with the reference (the last ``window``
    finite raw scores *before* it): with ``s_q`` the reference's
    ``tail_quantile`` (q), below ``s_q`` the surprise is ``-log10(1 - F(s))``
    for the mid-rank empirical CDF F (at most ``-log10(1 - q)``), from ``s_q``
    on it is ``-log10((1 - q) * exp(-(s - s_q) / beta))`` with ``beta`` the mean
    excess of the reference above ``s_q``. A score far beyond anything seen
    therefore keeps growing in surprise instead of saturating at "the largest
    so far", and a detector whose ordinary scores are heavy-tailed gets a large
    ``beta`` and a lower surprise for the same raw value. Until ``warmup``
    scores are in the reference, the surprise is 0. Then the score is added.

    Cost: O(window) per score for the sorted insert (a memmove) and
    O(window x (1 - q)) for the tail mean; about 1 us per score at the defaults.

    Examples
    --------
    >>> import numpy as np
    >>> calibrator = TailSurprise(window=1000, tail_quantile=0.98, warmup=100)
    >>> rng = np.random.default_rng(0)
    >>> surprise = calibrator.process(np.append(rng.normal(size=1000), [2.0, 8.0]))
    >>> float(surprise[:100].max()), bool(surprise[-2] < 2 < 6 < surprise[-1])
    (0.0, True)
    """

    def __init__(self, window: int = 4000, tail_quantile: float = 0.98, warmup: int = 100) -> None:
        check_positive("window", window, integer=True)
        check_positive("warmup", warmup, integer=True, upper=window)
        if not 0.0 < tail_quantile < 1.0:
            raise ValueError(f"tail_quantile must be in (0, 1), got {tail_quantile!r}")
        self.window = int(window)
        self.tail_quantile = float(tail_quantile)
        self.warmup = int(warmup)
        self.reset()

    def reset(self) -> None:
        self.sorted_ = np.zeros(self.window)
        self.ring_ = np.zeros(self.window)
        self.position_ = np.zeros(2, dtype=np.int64)  # (size, next ring slot)

    def process(self, raw: np.ndarray, learn: bool = True) -> np.ndarray:
        """Surprise of each raw score against the scores before it; adds each score after it is used."""
        raw = np.ascontiguousarray(raw, dtype=np.float64).ravel()
        return _tail_surprise(raw, self.sorted_, self.ring_, self.position_, self.tail_quantile, self.warmup, learn)

    def state_dict(self) -> dict[str, np.ndarray]:
        return {"sorted": self.sorted_.copy(), "ring": self.ring_.copy(), "position": self.position_.copy()}

    def load_state_dict(self, state: dict[str, np.ndarray]) -> None:
        if np.asarray(state["sorted"]).shape != (self.window,):
            raise ValueError(f"state holds a window of {np.asarray(state['sorted']).shape}, expected ({self.window},)")
        self.sorted_ = np.array(state["sorted"], dtype=np.float64)
        self.ring_ = np.array(state["ring"], dtype=np.float64)
        self.position_ = np.array(state["position"], dtype=np.int64)


@njit(cache=True)
def _tail_surprise(raw, ordered, ring, position, q, warmup, learn):
    n = raw.size
    capacity = ordered.size
    out = np.zeros(n)
    size = position[0]
    slot = position[1]
    log10 = math.log(10.0)
    for i in range(n):
        r = raw[i]
        if not math.isfinite(r):
            out[i] = 300.0 if r > 0 else 0.0  # NaN and -inf: no evidence; +inf: the cap
            continue
        if size >= warmup:
            where = (size - 1) * q
            below = int(where)
            above = min(below + 1, size - 1)
            s_q = ordered[below] + (where - below) * (ordered[above] - ordered[below])
            if r < s_q:
                left = np.searchsorted(ordered[:size], r, side="left")
                right = np.searchsorted(ordered[:size], r, side="right")
                cdf = min((left + right) / (2.0 * size), q)
                out[i] = -math.log10(1.0 - cdf)
            else:
                start = np.searchsorted(ordered[:size], s_q, side="right")
                excess = 0.0
                for j in range(start, size):
                    excess += ordered[j] - s_q
                beta = excess / (size - start) if size > start else 0.0
                beta = max(beta, 1e-9 * max(abs(s_q), 1.0))
                out[i] = -math.log10(1.0 - q) + (r - s_q) / beta / log10
        if not learn:
            continue
        if size == capacity:  # drop the oldest score from the sorted reference
            oldest = ring[slot]
            j = np.searchsorted(ordered[:size], oldest, side="left")
            for m in range(j, size - 1):  # in place: no temporary per row
                ordered[m] = ordered[m + 1]
            size -= 1
        k = np.searchsorted(ordered[:size], r, side="left")
        for m in range(size, k, -1):
            ordered[m] = ordered[m - 1]
        ordered[k] = r
        size += 1
        ring[slot] = r
        slot = (slot + 1) % capacity
    if learn:
        position[0] = size
        position[1] = slot
    return out


class AnomalyLikelihood:
    """Numenta's anomaly likelihood, online: how improbable is a run of scores this high?

    The raw scores are averaged over the last ``short_window`` rows; a Gaussian
    is fitted to those averages over the last ``history`` rows (mean and
    standard deviation, floored at ``min_std``); the output is the surprise of
    the current average, ``-log10`` of its upper Gaussian tail probability
    (0 when it is below the mean). Numenta reports ``1 - tail`` (the
    "likelihood") and thresholds it near 0.99999, i.e. a surprise of 5 decades.
    It needs no assumption on the raw scores' scale, reacts to *sustained*
    rises rather than single spikes, and forgets old regimes after ``history``
    rows. It is blind to anomalies that lower the raw score, and the Gaussian
    understates heavy tails, so bursts of ordinary noise can look improbable.
    0 during the first ``warmup`` rows.

    Examples
    --------
    >>> import numpy as np
    >>> likelihood = AnomalyLikelihood(history=500, short_window=5, warmup=50)
    >>> raw = np.abs(np.random.default_rng(0).normal(size=600))
    >>> raw[550:555] = 6.0
    >>> surprise = likelihood.process(raw)
    >>> int(surprise.argmax()) in range(550, 556), bool(surprise[:540].max() < surprise.max())
    (True, True)

    Reference: Ahmad, S., Lavin, A., Purdy, S. and Agha, Z. (2017). "Unsupervised
    real-time anomaly detection for streaming data". *Neurocomputing* 262.
    """

    def __init__(self, history: int = 2000, short_window: int = 10, warmup: int = 100, min_std: float = 1e-3) -> None:
        check_positive("history", history, integer=True)
        check_positive("short_window", short_window, integer=True, upper=history)
        check_positive("warmup", warmup, integer=True, upper=history)
        check_positive("min_std", min_std)
        self.history = int(history)
        self.short_window = int(short_window)
        self.warmup = int(warmup)
        self.min_std = float(min_std)
        self.reset()

    def reset(self) -> None:
        self.recent_raw_ = np.zeros(self.short_window)
        self.averages_ = np.zeros(self.history)
        self.sums_ = np.zeros(3)  # running sum of recent raw, of averages, of squared averages
        self.position_ = np.zeros(4, dtype=np.int64)  # raw count, raw slot, averages count, averages slot

    def process(self, raw: np.ndarray, learn: bool = True) -> np.ndarray:
        """Surprise (decades) of each row's short average; learns each row after it is scored."""
        raw = np.ascontiguousarray(raw, dtype=np.float64).ravel()
        if not learn:
            state = self.state_dict()
            out = _likelihood(raw, self.recent_raw_, self.averages_, self.sums_, self.position_, self.warmup, self.min_std)
            self.load_state_dict(state)
            return out
        return _likelihood(raw, self.recent_raw_, self.averages_, self.sums_, self.position_, self.warmup, self.min_std)

    def state_dict(self) -> dict[str, np.ndarray]:
        return {"recent_raw": self.recent_raw_.copy(), "averages": self.averages_.copy(), "sums": self.sums_.copy(), "position": self.position_.copy()}

    def load_state_dict(self, state: dict[str, np.ndarray]) -> None:
        self.recent_raw_ = np.array(state["recent_raw"], dtype=np.float64)
        self.averages_ = np.array(state["averages"], dtype=np.float64)
        self.sums_ = np.array(state["sums"], dtype=np.float64)
        self.position_ = np.array(state["position"], dtype=np.int64)


@njit(cache=True)
def _likelihood(raw, recent, averages, sums, position, warmup, min_std):
    n = raw.size
    out = np.zeros(n)
    short = recent.size
    history = averages.size
    for i in range(n):
        r = raw[i]
        if math.isnan(r):
            continue
        # the short average includes the current row (as Numenta's does)
        if position[0] == short:
            sums[0] -= recent[position[1]]
        else:
            position[0] += 1
        recent[position[1]] = r
        sums[0] += r
        position[1] = (position[1] + 1) % short
        average = sums[0] / position[0]
        count = position[2]
        if count >= warmup:
            mean = sums[1] / count
            std = max(math.sqrt(max(sums[2] / count - mean * mean, 0.0)), min_std)
            z = (average - mean) / std
            if z > 0:
                tail = 0.5 * math.erfc(z / math.sqrt(2.0))
                out[i] = -math.log10(max(tail, 1e-300))
        if count == history:
            old = averages[position[3]]
            sums[1] -= old
            sums[2] -= old * old
        else:
            position[2] += 1
        averages[position[3]] = average
        sums[1] += average
        sums[2] += average * average
        position[3] = (position[3] + 1) % history
    return out


class AlarmSuppressor:
    """Damps the echoes of an alarm: ``out = max(s - gamma * envelope, 0)``.

    ``envelope`` is the largest recent surprise, decaying by half every
    ``halflife`` rows; a row only scores high when it is clearly above what
    just fired. The first row of a burst passes unchanged (the envelope was low),
    the rows after it are cut down unless they climb higher, and the damping
    fades out after a few half-lives, so a *new* event is seen again. Unlike a
    hard "mute for N rows after a threshold", it needs no threshold of its own,
    so the threshold chosen downstream still means the same thing.

    Examples
    --------
    >>> import numpy as np
    >>> AlarmSuppressor(halflife=10, gamma=0.5).process(np.array([0.0, 5.0, 5.0, 4.0, 0.0, 9.0])).round(2)
    array([0.  , 5.  , 2.5 , 1.5 , 0.  , 6.82])
    """

    def __init__(self, halflife: float = 100.0, gamma: float = 0.5) -> None:
        check_positive("halflife", halflife)
        if not 0.0 <= gamma <= 1.0:
            raise ValueError(f"gamma must be in [0, 1], got {gamma!r}")
        self.halflife = float(halflife)
        self.gamma = float(gamma)
        self.reset()

    def reset(self) -> None:
        self.envelope_ = np.zeros(1)

    def process(self, surprise: np.ndarray, learn: bool = True) -> np.ndarray:
        surprise = np.ascontiguousarray(surprise, dtype=np.float64).ravel()
        envelope = self.envelope_ if learn else self.envelope_.copy()
        return _suppress(surprise, envelope, 0.5 ** (1.0 / self.halflife), self.gamma)

    def state_dict(self) -> dict[str, np.ndarray]:
        return {"envelope": self.envelope_.copy()}

    def load_state_dict(self, state: dict[str, np.ndarray]) -> None:
        self.envelope_ = np.array(state["envelope"], dtype=np.float64).reshape(1)


@njit(cache=True)
def _suppress(surprise, envelope, decay, gamma):
    out = np.zeros(surprise.size)
    e = envelope[0]
    for i in range(surprise.size):
        s = surprise[i]
        if math.isnan(s):
            out[i] = s
            continue
        out[i] = max(s - gamma * e, 0.0)
        e = max(e * decay, s)
    envelope[0] = e
    return out
