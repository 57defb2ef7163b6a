"""VUS-PR: the volume under the range-based precision-recall surface of a time-series anomaly score.

Paparrizos, Boniol, Palpanas, Tsay, Elmore and Franklin, "Volume Under the Surface: a new accuracy
evaluation measure for time-series anomaly detection", PVLDB 15(11), 2022.

Point-wise AUC-PR treats each reading as an independent sample, so a detector that fires a few
readings early or late is punished as if it had missed; point-adjusted measures go the other way and
credit a whole anomaly range to a single hit inside it, so a score that flags one reading per range
(or a random score, given long enough ranges) looks perfect. VUS-PR sits between them:

* **Buffered labels.** Each labelled range ``[s, e]`` gets a buffer of ``ℓ // 2`` readings on either
  side whose label decays as ``sqrt(1 - d / ℓ)`` with the distance ``d`` to the range (labels add up
  where buffers meet, capped at 1). A score that rises just before an anomaly or decays just after it
  earns partial credit.
* **Range-based precision and recall** at each threshold: TP is the buffered label mass of the
  flagged readings; recall is TP over ``(P + N_ℓ) / 2`` (``P`` the labelled readings, ``N_ℓ``
  the labels of the range plus those of its flagged buffer readings), capped at 1, times the
  *existence ratio* (the share of buffered ranges with at least one flagged reading), so hitting
  many ranges once counts for less than covering them; precision is TP over the flagged readings.
* **Volume.** The area under the range-PR curve (the average-precision sum ``Σ (R_j - R_{j-1}) P_j``
  over descending thresholds) is averaged over every buffer length ``ℓ = 0, 1, …, L``, so no single
  tolerance has to be chosen.

A perfect score gives 1; a score independent of the labels gives about the (buffered) label rate;
a score flagging one reading per range scores low although its point-adjusted F1 is 1.

This follows the authors' reference implementation (``RangeAUC_volume_opt`` in their ``vus``
package, version 0.0.6) line by line in its definitions, and matches it to 1e-12 with
``thresholds=250`` (its 250 thresholds at evenly spaced ranks of the sorted scores). It is written
here rather than taken from PyPI because that package requires TensorFlow, tsfresh, arch, stumpy and
more for one metric (TSB-AD 1.5, the benchmark that carries the same code, pins NumPy < 2 and pulls
PyTorch and transformers), and loops in Python over thresholds and ranges: it is slow on the millions of
readings of a backtest (this one takes about 1 s for 2.3M readings and 11 buffer lengths). Two
differences:

* ``thresholds=None`` (the default) uses every distinct score as a threshold, an exact curve. With
  250 thresholds a long stream with rare anomalies (8 days of 200 hosts: 2.3M readings, 0.3 % of
  them labelled) gets only a couple of thresholds in the range that matters.
* ``groups``: several series, one after the other (a backtest's entities, each in time order);
  buffers and ranges never cross from one series into the next, and precision and recall pool all
  series (a micro average). Without ``groups`` the input is one series, as in the paper.

>>> import numpy as np
>>> y = np.zeros(40); y[10:20] = 1            # one anomaly, 10 readings long
>>> vus_pr(y, y, max_buffer=4)
1.0
>>> one = np.zeros(40); one[15] = 1           # flags one reading of it: point-adjusted F1 = 1
>>> round(vus_pr(y, one, max_buffer=4), 3)
0.353
"""

from __future__ import annotations

import numpy as np

__all__ = ["buffered_labels", "range_pr_auc", "vus_pr"]


def _series_bounds(n: int, groups: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """For each position, the first and last position of its series."""
    if groups is None or n == 0:
        return np.zeros(n, dtype=np.int64), np.full(n, n - 1, dtype=np.int64)
    groups = np.asarray(groups)
    if len(groups) != n:
        raise ValueError(f"groups has {len(groups)} entries for {n} readings")
    starts = np.concatenate([[0], np.flatnonzero(groups[1:] != groups[:-1]) + 1])
    ends = np.concatenate([starts[1:] - 1, [n - 1]])
    series = np.repeat(np.arange(len(starts)), np.diff(np.concatenate([starts, [n]])))
    return starts[series], ends[series]


def _ranges(labels: np.ndarray, lo: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """First and last position of each run of positive labels (a run ends where its series does)."""
    positive = labels > 0
    new_series = np.zeros(len(labels), dtype=bool)
    new_series[lo] = True  # the first position of each series
    previous = np.concatenate([[False], positive[:-1]])
    starts = np.flatnonzero(positive & (~previous | new_series))
    following = np.concatenate([positive[1:], [False]])
    last_of_series = np.concatenate([new_series[1:], [True]])
    ends = np.flatnonzero(positive & (~following | last_of_series))
    return starts, ends


def buffered_labels(labels: np.ndarray, buffer: int, groups: np.ndarray | None = None) -> np.ndarray:
    """The labels with a buffer of ``buffer // 2`` readings on each side of every labelled range,
    decaying as ``sqrt(1 - d / buffer)`` at distance ``d`` (summed where buffers meet, capped at 1).

    >>> buffered_labels(np.array([0, 0, 0, 1, 0, 0, 0]), 4).round(3).tolist()
    [0.0, 0.707, 0.866, 1.0, 0.866, 0.707, 0.0]
    """
    labels = (np.asarray(labels) > 0)
    n = len(labels)
    lo, hi = _series_bounds(n, groups)
    starts, ends = _ranges(labels, lo)
    return _extend(labels.astype(np.float64), starts, ends, lo, hi, int(buffer))


def _extend(labels: np.ndarray, starts: np.ndarray, ends: np.ndarray, lo: np.ndarray, hi: np.ndarray, buffer: int) -> np.ndarray:
    out = labels.copy()
    for d in range(1, buffer // 2 + 1):
        weight = np.sqrt(1.0 - d / buffer)
        after = ends + d
        after = after[after <= hi[ends]]
        np.add.at(out, after, weight)
        before = starts - d
        before = before[before >= lo[starts]]
        np.add.at(out, before, weight)
    return np.minimum(out, 1.0)


def _merged(starts: np.ndarray, ends: np.ndarray, lo: np.ndarray, hi: np.ndarray, half: int) -> tuple[np.ndarray, np.ndarray]:
    """The buffered ranges, merged where two buffers of one series meet (as the reference does)."""
    if not len(starts):
        return starts, ends
    same_series = lo[starts[1:]] == lo[ends[:-1]]
    separate = ~same_series | (ends[:-1] + half < starts[1:] - half)
    first = np.concatenate([[True], separate])
    last = np.concatenate([separate, [True]])
    return np.maximum(starts[first] - half, lo[starts[first]]), np.minimum(ends[last] + half, hi[ends[last]])


def _curves(labels: np.ndarray, scores: np.ndarray, buffers: range, groups: np.ndarray | None,
            thresholds: int | None) -> list[float]:
    """The range-based AUC-PR at each buffer length of ``buffers``."""
    n = len(labels)
    lo, hi = _series_bounds(n, groups)
    starts, ends = _ranges(labels, lo)
    positives = float(labels.sum())
    order = np.argsort(-scores, kind="stable")
    ascending = scores[order][::-1]
    if thresholds is None:
        cuts = np.unique(scores)[::-1]
    else:
        cuts = scores[order][np.linspace(0, n - 1, int(thresholds)).astype(np.int64)]
    flagged = n - np.searchsorted(ascending, cuts, side="left")  # readings scoring >= each threshold
    hits_in_ranges = np.cumsum(labels[order])[flagged - 1]
    padded = np.append(scores, -np.inf)
    results = []
    for buffer in buffers:
        soft = _extend(labels, starts, ends, lo, hi, buffer)
        tp = np.cumsum(soft[order])[flagged - 1]
        a, b = _merged(starts, ends, lo, hi, buffer // 2)
        bounds = np.empty(2 * len(a), dtype=np.int64)
        bounds[0::2], bounds[1::2] = a, b + 1
        best = np.sort(np.maximum.reduceat(padded, bounds)[0::2])  # each buffered range's highest score
        existence = (len(best) - np.searchsorted(best, cuts, side="left")) / len(best)
        labelled = positives + (tp - hits_in_ranges)  # the ranges plus their flagged buffer readings
        recall = np.minimum(tp / ((positives + labelled) / 2.0), 1.0) * existence
        precision = tp / flagged
        results.append(float(np.dot(np.diff(recall, prepend=0.0), precision)))
    return results


def _prepare(labels: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    labels = (np.asarray(labels) > 0).astype(np.float64)
    scores = np.asarray(scores, dtype=np.float64)
    if labels.shape != scores.shape or labels.ndim != 1:
        raise ValueError(f"labels {labels.shape} and scores {scores.shape} must be 1-d and of one length")
    if not labels.any():
        return None
    return labels, np.where(np.isnan(scores), -np.inf, scores)  # no score: flagged last


def range_pr_auc(labels: np.ndarray, scores: np.ndarray, buffer: int, groups: np.ndarray | None = None,
                 thresholds: int | None = None) -> float | None:
    """The range-based AUC-PR at one buffer length (a slice of the VUS-PR volume); None without positives."""
    prepared = _prepare(labels, scores)
    if prepared is None:
        return None
    return _curves(*prepared, range(int(buffer), int(buffer) + 1), groups, thresholds)[0]


def vus_pr(labels: np.ndarray, scores: np.ndarray, max_buffer: int, groups: np.ndarray | None = None,
           thresholds: int | None = None) -> float | None:
    """VUS-PR: the range-based AUC-PR averaged over the buffer lengths ``0, 1, …, max_buffer``
    (readings). ``groups``: the series of each reading when several series are laid end to end (each
    contiguous and in time order). ``thresholds``: None for every distinct score, or a count spread
    over the ranks of the sorted scores (250 in the paper's code). None when no reading is labelled."""
    if int(max_buffer) < 0:
        raise ValueError(f"max_buffer must be >= 0, got {max_buffer}")
    prepared = _prepare(labels, scores)
    if prepared is None:
        return None
    return float(np.mean(_curves(*prepared, range(int(max_buffer) + 1), groups, thresholds)))
