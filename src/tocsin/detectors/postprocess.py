"""What happens to a streaming detector's raw scores afterwards, each step strictly online
(the detectors themselves build on :mod:`tocsin.detectors.streaming`):

   - :class:`TailSurprise` turns raw scores into *surprise* in decades,
     ``-log10 P(score >= s)``, against the detector's own recent scores
     (empirical below a high quantile, exponential tail above it, as
     :class:`~tocsin.detectors.calibration.ScoreCalibrator` does for batches);
   - :class:`ConformalTail` does the same per column with no warm-up knob: a
     surprise can never claim more than its reference supports (at most
     ``2 x log10(n + 1)`` decades after ``n`` scores), so short and young series
     are scored from their first rows without wild early alarms;
   - :class:`AnomalyLikelihood` is Numenta's anomaly likelihood: how
     improbable the short-term average of raw scores is under a Gaussian fitted
     to its longer history;
   - :class:`AlarmSuppressor` keeps the first alarm of a burst and damps the
     echoes that follow it (NAB counts every repeated alarm outside a window as
     a false positive); :class:`EchoDamper` does so with no strength to set.

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
def _sorted_drop(ordered, size, value):
    """Remove one ``value`` from the sorted ``ordered[:size]`` in place (no temporary); the new size."""
    at = np.searchsorted(ordered[:size], value, side="left")
    for m in range(at, size - 1):
        ordered[m] = ordered[m + 1]
    return size - 1


@njit(cache=True)
def _sorted_add(ordered, size, value):
    """Insert ``value`` into the sorted ``ordered[:size]`` in place; the new size."""
    at = np.searchsorted(ordered[:size], value, side="left")
    for m in range(size, at, -1):
        ordered[m] = ordered[m - 1]
    ordered[at] = value
    return size + 1


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
            size = _sorted_drop(ordered, size, ring[slot])
        size = _sorted_add(ordered, size, r)
        ring[slot] = r
        slot = (slot + 1) % capacity
    if learn:
        position[0] = size
        position[1] = slot
    return out


#: Share of the reference that forms the exponential tail (its top 2 %) ...
CONFORMAL_TAIL_SHARE = 0.02
#: ... but never fewer points than this: a tail scale from fewer is noise.
CONFORMAL_MIN_TAIL = 5


class ConformalTail:
    """Per-column online calibration of raw scores to surprise in decades, with no warm-up to tune.

    For each column, the reference is the last ``window`` finite raw scores of
    that column *before* the current row (``n`` of them). With ``k = max(5,
    0.02 n)`` tail points and ``s_k`` the largest reference score below them:

    - at or below ``s_k``: the conformal surprise ``-log10((m + 1) / (n + 1))``,
      ``m`` the reference scores above (ties count half): a rank, so any
      monotone change of the raw score's scale changes nothing;
    - above ``s_k``: ``-log10((k + 0.5) / (n + 1)) + (s - s_k) / beta / ln 10``,
      an exponential tail whose scale ``beta`` is the larger of the tail's mean
      excess and the bulk's ``(s_k - median) / ln(n / 2k)`` (a tail of a few
      tied points would otherwise make any excess astronomically surprising);
    - never more than ``2 x log10(n + 1)`` decades: ``n`` scores cannot support
      an extrapolation beyond a one-in-``(n + 1)^2`` event.

    That bound replaces a warm-up: a column with 10 scores can say at most 2
    decades, one with 4,000 up to 7.2, so short series and the first rows of a
    series are scored from the start, without the early wild alarms that make
    a fixed warm-up length a sharp knob (the previous calibration lost 20 NAB
    points when its warm-up went from 100 to 50 rows). Below 10 scores the
    surprise is 0. NaN and -inf raw scores are no evidence (surprise 0, not
    learned); +inf is the cap.

    **Cost**: O(window) per score (a sorted insert and removal, a memmove) and
    O(k) for the tail mean; ``2 x window`` floats of state per column.

    Examples
    --------
    >>> import numpy as np
    >>> calibrator = ConformalTail(window=1000)
    >>> rng = np.random.default_rng(0)
    >>> raw = np.append(rng.normal(size=1000), [2.0, 8.0])[:, None]
    >>> surprise = calibrator.process(raw)[:, 0]
    >>> float(surprise[:10].max()), round(float(surprise[10:40].max()), 2), bool(surprise[-2] < 2 < 5 < surprise[-1])
    (0.0, 1.32, True)
    """

    def __init__(self, window: int = 4000) -> None:
        check_positive("window", window, integer=True)
        if window < 4 * CONFORMAL_MIN_TAIL:
            raise ValueError(f"window must be at least {4 * CONFORMAL_MIN_TAIL}, got {window!r}")
        self.window = int(window)
        self.n_columns_: int | None = None

    def reset(self, n_columns: int) -> None:
        self.sorted_ = np.zeros((n_columns, self.window))
        self.ring_ = np.zeros((n_columns, self.window))
        self.position_ = np.zeros((2, n_columns), dtype=np.int64)  # (size, next ring slot) per column
        self.n_columns_ = n_columns

    def process(self, raw: np.ndarray, learn: bool = True) -> np.ndarray:
        """Surprise (rows x columns) of each raw score against its column's scores before it."""
        raw = np.ascontiguousarray(raw, dtype=np.float64)
        if raw.ndim == 1:
            raw = raw.reshape(-1, 1)
        if self.n_columns_ is None:
            self.reset(raw.shape[1])
        if learn:
            return _conformal(raw, self.sorted_, self.ring_, self.position_, True)
        return _conformal(raw, self.sorted_.copy(), self.ring_.copy(), self.position_.copy(), False)

    def state_dict(self) -> dict[str, np.ndarray]:
        return {"sorted": self.sorted_.copy(), "ring": self.ring_.copy(), "position": self.position_.copy()}

    def load_state_dict(self, state: dict[str, np.ndarray]) -> None:
        ordered = np.array(state["sorted"], dtype=np.float64)
        if ordered.ndim != 2 or ordered.shape[1] != self.window:
            raise ValueError(f"state holds a window of {ordered.shape}, expected (columns, {self.window})")
        self.sorted_ = ordered
        self.ring_ = np.array(state["ring"], dtype=np.float64)
        self.position_ = np.array(state["position"], dtype=np.int64)
        self.n_columns_ = ordered.shape[0]


@njit(cache=True)
def _conformal(raw, ordered, ring, position, learn):
    n, d = raw.shape
    capacity = ordered.shape[1]
    out = np.zeros((n, d))
    log10 = math.log(10.0)
    for j in range(d):
        column = ordered[j]
        size = position[0, j]
        slot = position[1, j]
        for i in range(n):
            r = raw[i, j]
            if math.isnan(r) or r == -np.inf:
                continue
            if size >= 2 * CONFORMAL_MIN_TAIL:
                cap = 2.0 * math.log10(size + 1.0)
                if r == np.inf:
                    out[i, j] = cap
                    continue
                k = min(max(CONFORMAL_MIN_TAIL, int(CONFORMAL_TAIL_SHARE * size)), size - 1)
                s_k = column[size - k - 1]
                if r <= s_k:
                    left = np.searchsorted(column[:size], r, side="left")
                    right = np.searchsorted(column[:size], r, side="right")
                    above = size - (left + right) / 2.0
                    out[i, j] = -math.log10((above + 1.0) / (size + 1.0))
                else:
                    excess = 0.0
                    for m in range(size - k, size):
                        excess += column[m] - s_k
                    beta = excess / k
                    if size > 4 * k:
                        beta = max(beta, (s_k - column[size // 2]) / math.log(size / (2.0 * k)))
                    beta = max(beta, 1e-9 * max(abs(s_k), 1.0))
                    out[i, j] = min(-math.log10((k + 0.5) / (size + 1.0)) + (r - s_k) / beta / log10, cap)
            elif r == np.inf:
                continue
            if not learn or r == np.inf:
                continue
            if size == capacity:  # drop the oldest score from the sorted reference
                size = _sorted_drop(column, size, ring[j, slot])
            size = _sorted_add(column, size, r)
            ring[j, slot] = r
            slot = (slot + 1) % capacity
        if learn:
            position[0, j] = size
            position[1, j] = slot
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


class EchoDamper:
    """Damps the echoes of an alarm by the share of its surprise that is new: ``out = s^2 / (s + envelope)``.

    ``envelope`` is the largest recent surprise, decaying by half every
    ``halflife`` rows (as in :class:`AlarmSuppressor`). ``s / (s + envelope)``
    is the share of the evidence at hand that the recent alarm does not already
    account for; the surprise is weighted by it. So the first row of a burst
    passes unchanged (envelope 0), an echo as large as the alarm keeps half,
    a smaller echo much less (``s^2 / envelope``), and a row far above
    the envelope keeps nearly all of its excess (``~ s - envelope``). Unlike
    ``AlarmSuppressor`` there is no strength ``gamma`` to choose: the damping
    follows from the envelope alone, and it fades out after a few half-lives,
    so a new event is seen again.

    Examples
    --------
    >>> import numpy as np
    >>> EchoDamper(halflife=10).process(np.array([0.0, 5.0, 5.0, 4.0, 0.0, 9.0])).round(2)
    array([0.  , 5.  , 2.5 , 1.78, 0.  , 6.07])
    """

    def __init__(self, halflife: float = 100.0) -> None:
        check_positive("halflife", halflife)
        self.halflife = float(halflife)
        self.reset()

    def reset(self) -> None:
        self.envelope_ = np.zeros(1)

    def process(self, surprise: np.ndarray, learn: bool = True) -> np.ndarray:
        surprise = np.ascontiguousarray(surprise, dtype=np.float64).ravel()
        envelope = self.envelope_ if learn else self.envelope_.copy()
        return _damp_echoes(surprise, envelope, 0.5 ** (1.0 / self.halflife))

    def state_dict(self) -> dict[str, np.ndarray]:
        return {"envelope": self.envelope_.copy()}

    def load_state_dict(self, state: dict[str, np.ndarray]) -> None:
        self.envelope_ = np.array(state["envelope"], dtype=np.float64).reshape(1)


@njit(cache=True)
def _damp_echoes(surprise, envelope, decay):
    out = np.zeros(surprise.size)
    e = envelope[0]
    for i in range(surprise.size):
        s = surprise[i]
        if math.isnan(s):
            out[i] = s
            continue
        out[i] = s * s / (s + e) if s > 0.0 else 0.0
        e = max(e * decay, s)
    envelope[0] = e
    return out
