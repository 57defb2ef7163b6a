"""What a share or a quantile of few events is at least: readings that do not mistake a handful for a burst.

A share or a quantile read from a bucket of 6 events is coarse: one error in 6 requests is a share of 0.17,
the p95 of 5 latencies is their slowest. Series detectors learn a level and a spread per series and cannot
know how many events stood behind each reading, so the quiet minutes of a service flood them with such
values. The lower end of each reading's 95% interval carries that: it is low when few events stand
behind a high value and close to the value when many do. Good at: error shares, null shares, latency
quantiles of buckets whose event counts vary by orders of magnitude. Fails at: readings whose alarm is a
*fall* (a distinct share dropping with duplicates): bound those from above, or not at all.
"""

from __future__ import annotations

import numpy as np
from scipy.stats import binom

#: the lower_bound transform's z: the lower end of a two-sided 95% interval (the normal's 97.5% quantile)
LOWER_BOUND_Z = 1.959963984540054


def wilson_lower_bound(share: np.ndarray, n: np.ndarray, z: float = LOWER_BOUND_Z) -> np.ndarray:
    """The lower end of the Wilson score interval of a share of ``n`` events: what the share is at least, given
    how few events it rests on. One failure in 6 requests (0.17) is at least 0.03; 9 in 30 (0.30) at least 0.17.

    >>> wilson_lower_bound(np.array([1 / 6, 9 / 30, 0.0]), np.array([6, 30, 40])).round(3).tolist()
    [0.03, 0.167, 0.0]
    """
    n = np.asarray(n, dtype=np.float64)
    z2 = z * z
    centre = share + z2 / (2 * n)
    margin = z * np.sqrt(share * (1 - share) / n + z2 / (4 * n * n))
    return np.where(share > 0, np.maximum((centre - margin) / (1 + z2 / n), 0.0), 0.0)  # exactly 0 for no failure


def quantile_lower_rank(n: np.ndarray, q: float, confidence: float = 0.975) -> np.ndarray:
    """The 0-based rank, among ``n`` sorted values, of what their ``q`` quantile is at least (with ``confidence``):
    the largest order statistic below the quantile with that chance, since how many values fall below the
    quantile is Binomial(n, q). Distribution-free. Of 5 latencies the p95 is at least the second largest (one slow
    request does not make a slow minute); of 100, at least about the 90th.

    >>> quantile_lower_rank(np.array([1, 5, 20, 100]), 0.95).tolist()
    [0, 3, 16, 89]
    """
    return (np.maximum(binom.ppf(1 - confidence, n, q), 1) - 1).astype(np.int64)
