"""Drift: has the data moved away from what the model learned? PSI and KS of each feature and the score.

When a model is fitted (or installed from the registry) it keeps a *reference*:
per scored feature and for the raw score, nine cut points at the deciles of its
training rows and the share of training rows in each of the ten bins. As
events are scored, a :class:`DriftMonitor` keeps the same ten shares over the
recent rows (counts decayed with a half-life of ``drift.half_life`` rows, so
"recent" has a fixed size however the stream is cut) and measures the distance:

- **PSI** (population stability index) ``Σ (live − ref) · ln(live / ref)``: the
  usual reading is < 0.1 stable, 0.1–0.25 moving, > 0.25 shifted;
- **KS**: the largest gap between the two cumulative shares.

Both are Prometheus gauges. Features whose distribution moves as entity
histories lengthen even in a steady stream (novelty, distinct counts, shares of a
whole history: ``FeatureOperator.grows_with_history``) are watched but raise no
alert. Any other column *shifted* — its PSI above ``drift.psi_alert``
and its recent median at least three deciles of the reference away from the
reference's median — becomes a "model drift" anomaly of the entity ``model``
(explained by that column), grouped into an alert and routed like any other.
The median condition is there because a statistic that only *sharpens* as
entity histories grow (a card's share of purchases in its home city piles up at
1.0) has a large PSI against a reference of shorter histories without having
moved: measured on a million simulated transactions, such a feature reached PSI
2.2 with its median in place, while quadrupled amounts moved the amount
features' medians five deciles at PSI 0.4–1.4.

Good at: cheap (one searchsorted per column per batch), batch-cut invariant (the
decay is per row), robust to features with many ties (bins that collapse are
merged). Fails at: shifts that keep every marginal distribution (a change in how
features co-vary); a reference from too few rows.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from tocsin.spec import DriftSpec

BINS = 10
_EPS = 1e-4
#: how many reference deciles the recent median must move for a drift alert (see the module docstring)
MEDIAN_DECILES = 3


class DriftMonitor:
    """Reference shares from the training rows, decayed live shares, PSI and KS per column (see the module)."""

    def __init__(self, spec: DriftSpec, names: list[str], quiet: frozenset[str] = frozenset()) -> None:
        self.spec = spec
        #: columns watched (distances, gauges) that raise no alert: they move as histories grow
        self.quiet = quiet
        #: the columns watched: the scored features, then the raw score
        self.names = [*names, "score"]
        self.edges = np.zeros((0, BINS - 1))
        self.reference = np.zeros((0, BINS))
        self.counts = np.zeros((len(self.names), BINS))
        self._decay = 0.5 ** (1.0 / spec.half_life)

    @property
    def ready(self) -> bool:
        return len(self.edges) == len(self.names)

    def set_reference(self, X: np.ndarray, scores: np.ndarray) -> None:
        """The training rows ``X`` and their raw ``scores`` become the reference; the live window restarts."""
        columns = np.column_stack([X, scores]) if len(X) else np.zeros((0, len(self.names)))
        self.edges = np.quantile(columns, np.linspace(0.1, 0.9, BINS - 1), axis=0).T.copy() if len(columns) else self.edges
        self.reference = np.stack([self._shares_of(j, columns[:, j]) for j in range(columns.shape[1])]) if len(columns) else self.reference
        self.counts = np.zeros((len(self.names), BINS))

    def _bins(self, j: int, values: np.ndarray) -> np.ndarray:
        return np.searchsorted(self.edges[j], values, side="right")

    def _shares_of(self, j: int, values: np.ndarray) -> np.ndarray:
        counts = np.bincount(self._bins(j, values), minlength=BINS).astype(np.float64)
        return counts / max(1.0, counts.sum())

    def observe(self, X: np.ndarray, scores: np.ndarray) -> None:
        """Fold scored rows (in stream order) into the live shares."""
        if not self.ready or not len(X):
            return
        n = len(X)
        # a row i of n is decayed decay^(n-1-i): the same result as folding the rows one by one
        weights = self._decay ** np.arange(n - 1, -1, -1, dtype=np.float64)
        self.counts *= self._decay ** n
        _fold_rows(np.asarray(X, dtype=np.float64), np.asarray(scores, dtype=np.float64), self.edges, weights, self.counts)

    def distances(self) -> dict[str, tuple[float, float]]:
        """Per column (PSI, KS) of the live shares against the reference; {} until there are enough rows."""
        if not self.ready:
            return {}
        totals = self.counts.sum(axis=1)
        out: dict[str, tuple[float, float]] = {}
        for j, name in enumerate(self.names):
            if totals[j] < self.spec.min_rows:
                continue
            live, ref = self.counts[j] / totals[j], self.reference[j]
            present = (live > 0) | (ref > 0)  # bins no row fell in on either side say nothing
            live_p, ref_p = np.maximum(live[present], _EPS), np.maximum(ref[present], _EPS)
            psi = float(np.sum((live_p - ref_p) * np.log(live_p / ref_p)))
            ks = float(np.max(np.abs(np.cumsum(live) - np.cumsum(ref))))
            out[name] = (psi, ks)
        return out

    def drifted(self) -> list[tuple[str, float]]:
        """The shifted columns: PSI above ``drift.psi_alert`` and the recent median three or more
        deciles of the reference away from the reference's median; worst first."""
        found = []
        for name, (psi, _ks) in self.distances().items():
            if psi <= self.spec.psi_alert or name in self.quiet:
                continue
            j = self.names.index(name)
            live = self.counts[j] / self.counts[j].sum()
            # bins are cut at the reference's deciles: a bin is a decile of the reference
            moved = abs(int(np.searchsorted(np.cumsum(live), 0.5)) - int(np.searchsorted(np.cumsum(self.reference[j]), 0.5)))
            if moved >= MEDIAN_DECILES:
                found.append((name, psi))
        return sorted(found, key=lambda item: -item[1])

    def state_dict(self) -> dict[str, np.ndarray]:
        return {"edges": self.edges.copy(), "reference": self.reference.copy(), "counts": self.counts.copy()}

    def load_state_dict(self, state: dict[str, np.ndarray]) -> None:
        self.edges = np.array(state["edges"], dtype=np.float64).reshape(-1, BINS - 1)
        self.reference = np.array(state["reference"], dtype=np.float64).reshape(-1, BINS)
        self.counts = np.array(state["counts"], dtype=np.float64).reshape(-1, BINS)


@njit(cache=True, nogil=True)
def _fold_rows(X, scores, edges, weights, counts):  # pragma: no cover - compiled
    """Add each row's weight to its bin, per column (the features, then the score): what a weighted
    ``bincount`` of ``searchsorted(edges[j], column, side="right")`` adds, in the same order, so the sums
    are bit-identical; one pass with no per-column Python (it ran 2 numpy calls per column per segment).
    A row's bin is the number of (sorted) edges at or below its value, counted without a branch: a search
    that stops at the first edge above mispredicted most of its branches, values being spread over the bins."""
    n, m = X.shape
    added = np.zeros((m + 1, edges.shape[1] + 1))
    for j in range(m + 1):
        cuts = edges[j]
        for i in range(n):
            value = scores[i] if j == m else X[i, j]
            if value != value:  # NaN sorts after every edge
                b = cuts.size
            else:
                b = 0
                for k in range(cuts.size):
                    b += cuts[k] <= value
            added[j, b] += weights[i]
    for j in range(m + 1):
        for b in range(added.shape[1]):
            counts[j, b] += added[j, b]
