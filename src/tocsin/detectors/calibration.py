"""Raw detector scores to a probability-like anomaly score in [0, 1].

Every detector has its own score scale (robust z in standard deviations,
Isolation Forest in (0, 1], ...). Calibrating each score against the same
detector's *recent* scores makes a calibrated 0.999 mean the same thing for
every detector: "higher than about 99.9% of what this detector has recently
seen", so thresholds and severities are shared across detectors and follow
drift in the score distribution.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from tocsin.spec import CalibrationSpec

#: Smallest tail scale, relative to the size of the tail cut-off: keeps the tail
#: defined (and monotone) when no reference score exceeds the cut-off.
_MIN_RELATIVE_BETA = 1e-12


class RingBuffer:
    """The last ``capacity`` values appended, oldest first on read (fixed memory)."""

    def __init__(self, capacity: int, dtype: type = np.float64) -> None:
        self.capacity = int(capacity)
        self._values = np.empty(self.capacity, dtype=dtype)
        self._size = 0  # filled slots
        self._next = 0  # slot the next value goes to

    def __len__(self) -> int:
        return self._size

    def clear(self) -> None:
        self._size, self._next = 0, 0

    def extend(self, values: np.ndarray) -> np.ndarray:
        """Append ``values``; returns the oldest values they pushed out (a copy)."""
        values = np.asarray(values, dtype=self._values.dtype).ravel()
        n_evicted = min(self._size, max(0, self._size + values.size - self.capacity))
        oldest = (self._next - self._size) % self.capacity if self.capacity else 0
        evicted = self._values[(oldest + np.arange(n_evicted)) % self.capacity]
        self._write(values)
        return evicted

    def _write(self, values: np.ndarray) -> None:
        if values.size >= self.capacity:
            self._values[:] = values[values.size - self.capacity :]
            self._size, self._next = self.capacity, 0
            return
        end = self._next + values.size
        if end <= self.capacity:
            self._values[self._next : end] = values
        else:
            split = self.capacity - self._next
            self._values[self._next :] = values[:split]
            self._values[: end - self.capacity] = values[split:]
        self._next = end % self.capacity
        self._size = min(self.capacity, self._size + values.size)

    def unordered(self) -> np.ndarray:
        """The held values in storage order (a view; for order-free statistics)."""
        return self._values[: self._size]

    def ordered(self) -> np.ndarray:
        """The held values, oldest first (a copy)."""
        if self._size < self.capacity:
            return self._values[: self._size].copy()
        return np.concatenate([self._values[self._next :], self._values[: self._next]])


class ScoreCalibrator:
    """Calibrates raw scores against a ring buffer of the last ``window`` raw scores.

    With the reference sorted and ``s_q`` its ``tail_quantile`` (q) quantile:

    - below ``s_q``: the mid-rank empirical CDF, ``(#ref < s + #ref == s / 2) / n``
      (capped at q), so ties get the middle of their rank range;
    - from ``s_q`` on: an exponential tail ``1 - (1 - q) * exp(-(s - s_q) / beta)``
      with ``beta`` the mean excess of reference scores above ``s_q`` (the
      maximum-likelihood exponential fit of the excesses, as in
      peaks-over-threshold), floored to a tiny positive value.

    The result is monotone non-decreasing in the raw score, equals q at ``s_q``
    (the empirical part below it reaches q to within one reference step, 1/n),
    and stays below 1 for finite scores until ``(1 - q) * exp(-(s - s_q) / beta)``
    underflows float64 (``s - s_q`` beyond roughly 33 ``beta`` for q = 0.98),
    so scores far beyond anything seen still rank above merely rare ones. The
    empirical part cannot distinguish scores above the largest reference score,
    which is why the tail is extrapolated.

    NaN raw scores calibrate to NaN; non-finite raw scores are not added to the
    reference.

    Cost: the sorted reference is cached; ``update`` patches it with one merge
    pass (O(window + batch)) instead of re-sorting, and ``transform`` is two
    binary searches per score. About 0.17 us per event for batches of 5,000
    against a 50,000-score window (0.5 us at batches of 500).

    Parameters
    ----------
    window
        Number of most recent raw scores kept as the reference.
    tail_quantile
        q: above this quantile of the reference the exponential tail is used.

    Examples
    --------
    >>> import numpy as np
    >>> calibrator = ScoreCalibrator(window=1000, tail_quantile=0.9)
    >>> calibrator.update(np.arange(1000.0))
    >>> calibrator.transform(np.array([-5.0, 250.0, 899.1, 950.0, 5000.0])).round(4)
    array([0.    , 0.2505, 0.9   , 0.9636, 1.    ])
    """

    def __init__(self, window: int = 50_000, tail_quantile: float = 0.98) -> None:
        if not (isinstance(window, (int, np.integer)) and window >= 1):
            raise ValueError(f"window must be a positive int, got {window!r}")
        if not (0.0 < tail_quantile < 1.0):
            raise ValueError(f"tail_quantile must be in (0, 1), got {tail_quantile!r}")
        self.window = int(window)
        self.tail_quantile = float(tail_quantile)
        self._buffer = RingBuffer(self.window)
        self._sorted: np.ndarray | None = None  # cache, reset by update()
        self._tail: tuple[float, float] = (0.0, 0.0)  # (s_q, beta) of the cached reference

    @classmethod
    def from_spec(cls, spec: CalibrationSpec) -> ScoreCalibrator:
        return cls(window=spec.window, tail_quantile=spec.tail_quantile)

    @property
    def n_reference(self) -> int:
        """Number of raw scores currently in the reference."""
        return len(self._buffer)

    def reference(self) -> np.ndarray:
        """The reference raw scores, oldest first (a copy)."""
        return self._buffer.ordered()

    def update(self, raw: np.ndarray) -> None:
        """Add a batch of raw scores to the reference, dropping the oldest beyond ``window``."""
        raw = np.asarray(raw, dtype=np.float64).ravel()
        raw = raw[np.isfinite(raw)]
        if raw.size == 0:
            return
        evicted = self._buffer.extend(raw)
        if self._sorted is None or raw.size > self.window // 8:
            self._sorted = None  # re-sorted on the next transform
            return
        # The engine updates after every batch: patching the sorted reference costs
        # O(window + batch log batch), a fraction of re-sorting (2 ms for 50k).
        self._sorted = _sorted_replace(self._sorted, np.sort(evicted), np.sort(raw))
        self._tail = self._fit_tail(self._sorted)

    def _reference_sorted(self) -> np.ndarray:
        if self._sorted is None:
            if len(self._buffer) == 0:
                raise ValueError(
                    "ScoreCalibrator has no reference scores yet; call update(raw_scores) "
                    "(e.g. with the detector's scores on its training data) before transform"
                )
            self._sorted = np.sort(self._buffer.unordered())
            self._tail = self._fit_tail(self._sorted)
        return self._sorted

    def _fit_tail(self, ordered: np.ndarray) -> tuple[float, float]:
        """(s_q, beta) of a sorted reference: the q-quantile (numpy's default, linear
        interpolation) and the mean excess above it."""
        position = (ordered.size - 1) * self.tail_quantile
        below = int(position)
        above = min(below + 1, ordered.size - 1)
        s_q = float(ordered[below] + (position - below) * (ordered[above] - ordered[below]))
        s_q = min(max(s_q, float(ordered[below])), float(ordered[above]))  # rounding guard
        excess = ordered[np.searchsorted(ordered, s_q, side="right") :] - s_q
        beta = float(excess.mean()) if excess.size else 0.0
        return s_q, max(beta, _MIN_RELATIVE_BETA * max(abs(s_q), 1.0))

    @property
    def tail_start(self) -> float:
        """s_q: the raw score where the exponential tail begins."""
        self._reference_sorted()
        return self._tail[0]

    @property
    def tail_scale(self) -> float:
        """beta: the mean excess over ``tail_start`` of the reference scores above it."""
        self._reference_sorted()
        return self._tail[1]

    def transform(self, raw: np.ndarray) -> np.ndarray:
        """Calibrated scores in [0, 1] (NaN stays NaN); does not change the reference."""
        ordered = self._reference_sorted()
        s_q, beta = self._tail
        q = self.tail_quantile
        raw = np.asarray(raw, dtype=np.float64)
        n = ordered.size
        ranks = _two_sided_ranks(ordered, np.ascontiguousarray(raw.ravel())).reshape(raw.shape)
        empirical = np.minimum(ranks / (2.0 * n), q)
        with np.errstate(over="ignore", invalid="ignore"):
            tail = 1.0 - (1.0 - q) * np.exp(-(raw - s_q) / beta)
        out = np.where(raw < s_q, empirical, tail)
        out[np.isnan(raw)] = np.nan
        return out

    def state_dict(self) -> dict[str, np.ndarray]:
        return {"reference": self.reference()}

    def load_state_dict(self, state: dict[str, np.ndarray]) -> None:
        """Restore a reference; one longer than ``window`` keeps its newest scores."""
        self._buffer.clear()
        self._sorted = None
        self.update(np.asarray(state["reference"], dtype=np.float64))



@njit(cache=True, nogil=True)
def _two_sided_ranks(ordered, queries):  # pragma: no cover - compiled
    """Per query, ``searchsorted(ordered, q, "left") + searchsorted(ordered, q, "right")`` (reference values
    below it, twice, plus those equal), exactly; 4x faster than the two numpy calls for 1,000 queries over
    50,000 values: the queries are visited in sorted order and each search gallops on from the last one's
    place, so the walk stays in cache. A NaN query gets a meaningless rank (its score is NaN anyway) and
    does not move the walk."""
    n = ordered.size
    out = np.empty(queries.size, dtype=np.float64)
    start = 0
    for i in np.argsort(queries, kind="mergesort"):
        value = queries[i]
        left = _gallop(ordered, value, start, n, False)
        right = _gallop(ordered, value, left, n, True)
        out[i] = left + right
        start = left
    return out


@njit(cache=True, nogil=True, inline="always")
def _gallop(ordered, value, start, n, inclusive):  # pragma: no cover - compiled
    """The first index at or after ``start`` whose value is above ``value`` (``inclusive``) or at or above it."""
    low, high, step = start, start, 1
    while high < n and (ordered[high] <= value if inclusive else ordered[high] < value):
        low = high + 1
        high = low + step
        step *= 2
    high = min(high, n)
    while low < high:
        middle = (low + high) // 2
        if ordered[middle] <= value if inclusive else ordered[middle] < value:
            low = middle + 1
        else:
            high = middle
    return low


@njit(cache=True, nogil=True)
def _sorted_replace(ordered, removed, added):
    """``ordered`` without one occurrence of each value of ``removed`` and with
    ``added`` merged in; all three sorted. One O(n + k) merge pass."""
    out = np.empty(ordered.size + added.size, dtype=np.float64)
    j = 0  # next value to remove
    k = 0  # next value to add
    o = 0
    for i in range(ordered.size):
        value = ordered[i]
        while j < removed.size and removed[j] < value:  # not present: nothing to remove
            j += 1
        if j < removed.size and removed[j] == value:
            j += 1
            continue
        while k < added.size and added[k] < value:
            out[o] = added[k]
            o += 1
            k += 1
        out[o] = value
        o += 1
    while k < added.size:
        out[o] = added[k]
        o += 1
        k += 1
    return out[:o]
