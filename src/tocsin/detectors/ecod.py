"""ECOD: anomalies sit in the tails of the per-feature empirical distributions."""

from __future__ import annotations

from collections.abc import Sequence

import math

import numpy as np
from numba import njit, prange

from tocsin.detectors.base import Capabilities, Detector, check_positive, check_random_state


def _as_2d_float(X: np.ndarray) -> np.ndarray:
    X = np.asarray(X, dtype=np.float64)
    if X.ndim != 2:
        raise ValueError(f"X must be 2-D (rows x features), got shape {X.shape}")
    return X


class ECOD(Detector):
    """Empirical-CDF outlier detection: how deep in its column's tails each value sits.

    ``fit`` keeps each column's sorted training values and the sign of its
    skewness. For a value ``x`` of column ``j`` the left tail probability is the
    share of training values ``<= x``, the right tail probability the share
    ``>= x``; ``-log`` of each is the value's surprise on that side. Per column
    the contribution is ``max(surprise on the skewed side, mean of both sides)``
    (both sides for a symmetric column), and the row's score is the sum over
    columns: a row far out in several tails scores highest. This is the ECOD
    rule as PyOD implements it; COPOD differs only in using skewness-corrected
    copula tails. Values beyond the training range get tail probability
    ``0.5 / n`` (slightly more surprising than the most extreme training value).
    ``explain`` returns every column's contribution, which sum to the score.

    **Good at**: extremes in one or several columns, with no parameters to tune,
    no distance or scale (it works on ranks, so units and skew do not matter),
    and explanations that point at the tail a value sits in. Deterministic.

    **Fails at**: anomalies made of ordinary values in an unusual combination
    (columns are scored independently, so correlation is invisible), values in
    the gap between two modes of a column (they are not in a tail), and many
    noisy columns, whose small surprises add up in every row.

    **Cost**: ``fit`` sorts each column, O(d x n log n), and keeps all n x d
    training values (``max_samples`` bounds that). Scoring is two binary
    searches per value, O(d log n) per row, compiled, rows in parallel.

    Parameters
    ----------
    max_samples
        Keep at most this many training rows (a random subset, drawn with
        ``random_state``) as the reference; ``None`` keeps all.
    random_state
        Seed of that subset (an int or None).

    Examples
    --------
    >>> import numpy as np
    >>> from tocsin.detectors.ecod import ECOD
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(1000, 3))
    >>> detector = ECOD().fit(X)
    >>> scores = detector.score_samples([[0.0, 0.0, 0.0], [0.0, 4.0, 0.0]])
    >>> bool(scores[1] > 3 * scores[0])
    True
    >>> int(detector.explain([[0.0, 4.0, 0.0]]).argmax())
    1

    References
    ----------
    Li, Z., Zhao, Y., Hu, X., Botta, N., Ionescu, C. and Chen, G. H. (2022).
    "ECOD: Unsupervised Outlier Detection Using Empirical Cumulative
    Distribution Functions". *IEEE TKDE*. Li, Z., Zhao, Y., Botta, N., Ionescu,
    C. and Hu, X. (2020). "COPOD: Copula-Based Outlier Detection". *IEEE ICDM*.
    """

    kind = "ecod"
    capabilities = Capabilities(explains=True)

    def __init__(self, max_samples: int | None = None, random_state: int | None = None) -> None:
        self.max_samples = max_samples
        self.random_state = random_state

    def check_params(self, feature_names: Sequence[str] | None = None) -> None:
        check_positive("max_samples", self.max_samples, integer=True, optional=True)
        check_random_state(self.random_state)

    def fit(self, X: np.ndarray) -> ECOD:
        from scipy.stats import skew

        self.check_params()
        X = _as_2d_float(X)
        if X.shape[0] == 0:
            raise ValueError("cannot fit on 0 rows")
        if self.max_samples is not None and X.shape[0] > self.max_samples:
            rng = np.random.default_rng(self.random_state)
            X = X[np.sort(rng.choice(X.shape[0], self.max_samples, replace=False))]
        with np.errstate(all="ignore"):
            skewness = np.nan_to_num(skew(X, axis=0, nan_policy="omit"))
        # NaN sorts last; it is kept out of the counts by searching only the finite prefix.
        self.sorted_ = np.sort(X, axis=0)
        self.n_valid_ = np.sum(~np.isnan(X), axis=0).astype(np.int64)
        self.skew_sign_ = np.sign(skewness).astype(np.int8)
        return self

    def _contributions(self, X: np.ndarray) -> np.ndarray:
        self._check_fitted()
        X = _as_2d_float(X)
        if X.shape[1] != self.sorted_.shape[1]:
            raise ValueError(f"X has {X.shape[1]} features, the detector was fitted on {self.sorted_.shape[1]}")
        return _tail_surprises(np.ascontiguousarray(X), self.sorted_, self.n_valid_, self.skew_sign_.astype(np.int64))

    def score_samples(self, X: np.ndarray) -> np.ndarray:
        """Sum over columns of the tail surprise; higher is more anomalous (missing values add 0)."""
        return self._contributions(X).sum(axis=1)

    def explain(self, X: np.ndarray) -> np.ndarray:
        """Each column's tail surprise (they sum to the score)."""
        return self._contributions(X)

    def state_dict(self) -> dict[str, np.ndarray]:
        self._check_fitted()
        return {"sorted": self.sorted_.copy(), "n_valid": self.n_valid_.copy(), "skew_sign": self.skew_sign_.copy()}

    def load_state_dict(self, state: dict[str, np.ndarray]) -> None:
        sorted_values = np.asarray(state["sorted"], dtype=np.float64)
        n_valid = np.asarray(state["n_valid"], dtype=np.int64)
        skew_sign = np.asarray(state["skew_sign"], dtype=np.int8)
        if sorted_values.ndim != 2 or n_valid.shape != (sorted_values.shape[1],) or skew_sign.shape != n_valid.shape:
            raise ValueError("ECOD state is corrupt: sorted must be rows x features, n_valid and skew_sign one per feature")
        if n_valid.min(initial=0) < 0 or n_valid.max(initial=0) > sorted_values.shape[0]:
            raise ValueError("ECOD state is corrupt: n_valid out of range")
        self.sorted_, self.n_valid_, self.skew_sign_ = sorted_values.copy(), n_valid.copy(), skew_sign.copy()


@njit(parallel=True, cache=True)
def _tail_surprises(X, sorted_values, n_valid, skew_sign):
    """Per value: the ECOD contribution of its column (two binary searches in the sorted training
    values), rows in parallel; NaN contributes 0."""
    n, d = X.shape
    out = np.zeros((n, d))
    for i in prange(n):
        for j in range(d):
            m = n_valid[j]
            x = X[i, j]
            if m == 0 or math.isnan(x):
                continue
            # at_or_below = number of training values <= x; below = number < x
            lo, hi = 0, m
            while lo < hi:
                mid = (lo + hi) >> 1
                if sorted_values[mid, j] <= x:
                    lo = mid + 1
                else:
                    hi = mid
            at_or_below = lo
            # values < x: the same count unless x itself is among the training values (a tie),
            # which one comparison rules out for most values of a continuous column
            if at_or_below == 0 or sorted_values[at_or_below - 1, j] < x:
                lo = at_or_below
            else:
                lo, hi = 0, at_or_below
                while lo < hi:
                    mid = (lo + hi) >> 1
                    if sorted_values[mid, j] < x:
                        lo = mid + 1
                    else:
                        hi = mid
            at_or_above = m - lo
            left = -math.log(max(at_or_below, 0.5) / m)
            right = -math.log(max(at_or_above, 0.5) / m)
            if skew_sign[j] > 0:
                skewed = right
            elif skew_sign[j] < 0:
                skewed = left
            else:
                skewed = left + right
            out[i, j] = max(skewed, 0.5 * (left + right))
    return out
