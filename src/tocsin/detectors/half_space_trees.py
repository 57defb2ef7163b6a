"""Half-Space Trees: an online forest of random half-space splits that counts mass per window."""

from __future__ import annotations

import numbers
from collections.abc import Sequence

import numpy as np
from numba import njit

from tocsin.detectors.base import Capabilities, Detector, check_random_state

# Layout: every tree is a complete binary tree of ``height`` levels of splits,
# nodes numbered breadth first (children of i are 2i+1 and 2i+2), internal nodes
# first: ``split_feature``/``split_value`` are (n_trees, 2**height - 1), masses
# (n_trees, 2**(height+1) - 1). Inputs are scaled to [0, 1] by the fitted limits.


@njit(cache=True)
def _build_trees(n_trees, height, n_features, padding, seed, split_feature, split_value):
    np.random.seed(seed)
    n_internal = 2**height - 1
    lower = np.empty((n_internal, n_features))
    upper = np.empty((n_internal, n_features))
    weights = np.empty(n_features)
    for t in range(n_trees):
        lower[0, :] = 0.0
        upper[0, :] = 1.0
        for node in range(n_internal):
            # Pick a feature with probability proportional to its remaining width (as River does).
            total = 0.0
            for j in range(n_features):
                weights[j] = upper[node, j] - lower[node, j]
                total += weights[j]
            pick = np.random.random() * total
            feature = n_features - 1
            acc = 0.0
            for j in range(n_features):
                acc += weights[j]
                if pick < acc:
                    feature = j
                    break
            a = lower[node, feature]
            b = upper[node, feature]
            at = a + (b - a) * (padding + (1.0 - 2.0 * padding) * np.random.random())
            split_feature[t, node] = feature
            split_value[t, node] = at
            for child, is_left in ((2 * node + 1, True), (2 * node + 2, False)):
                if child < n_internal:
                    lower[child, :] = lower[node, :]
                    upper[child, :] = upper[node, :]
                    if is_left:
                        upper[child, feature] = at
                    else:
                        lower[child, feature] = at


@njit(cache=True)
def _learn(Z, split_feature, split_value, l_mass, r_mass, state):
    """Add each row's path to the latest-window masses; at the end of a window it becomes the reference.

    ``state`` = [rows seen in the current window, window size, 1 if no window has completed yet].
    """
    n_trees, n_internal = split_feature.shape
    window = state[1]
    for i in range(Z.shape[0]):
        for t in range(n_trees):
            node = 0
            r_mass[t, 0] += 1
            while node < n_internal:
                if Z[i, split_feature[t, node]] < split_value[t, node]:
                    node = 2 * node + 1
                else:
                    node = 2 * node + 2
                r_mass[t, node] += 1
        state[0] += 1
        if state[0] == window:
            l_mass[:, :] = r_mass
            r_mass[:, :] = 0
            state[0] = 0
            state[2] = 0


@njit(cache=True)
def _mass_scores(Z, split_feature, split_value, l_mass, size_limit, out):
    """River's score: sum over trees of l_mass(node) * 2**depth down the path, stopping below size_limit."""
    n_trees, n_internal = split_feature.shape
    for i in range(Z.shape[0]):
        total = 0.0
        for t in range(n_trees):
            node = 0
            depth = 0
            while True:
                mass = l_mass[t, node]
                total += mass * (1 << depth)
                if mass < size_limit or node >= n_internal:
                    break
                if Z[i, split_feature[t, node]] < split_value[t, node]:
                    node = 2 * node + 1
                else:
                    node = 2 * node + 2
                depth += 1
        out[i] = total
    return out


@njit(cache=True)
def _attributions(Z, split_feature, split_value, l_mass, size_limit, out):
    """Credit each split on the scored path with log2((mass above + 1) / (mass below + 1))."""
    n_trees, n_internal = split_feature.shape
    for i in range(Z.shape[0]):
        for t in range(n_trees):
            node = 0
            while node < n_internal and l_mass[t, node] >= size_limit:
                feature = split_feature[t, node]
                child = 2 * node + 1 if Z[i, feature] < split_value[t, node] else 2 * node + 2
                out[i, feature] += np.log2((l_mass[t, node] + 1.0) / (l_mass[t, child] + 1.0))
                node = child
    return out


class HalfSpaceTrees(Detector):
    """Half-Space Trees (HST): random half-space splits, scored by how little mass a row's region held.

    Each tree splits the feature space at random (a feature drawn in
    proportion to its remaining width, a cut point uniform within the padded
    range) down to ``height`` levels; the trees never change. What is learned
    is *mass*: how many rows of a window of ``window_size`` rows fell into each
    node. Two windows alternate: the latest window counts incoming rows, and
    when it is full it becomes the reference and counting starts again. A row
    is scored against the reference masses along its path: the sum of
    ``mass x 2**depth`` (stopping where mass drops below 10% of the window),
    mapped to ``1 - sum / max`` in [0, 1], so rows in empty regions score near
    1. The scores equal River's ``HalfSpaceTrees`` design; the loop runs in
    numba over dense arrays.

    ``fit`` learns the feature limits (per-column min and max of ``X``, so rows
    are scaled to [0, 1]; values beyond fall in the outermost cells), draws
    the trees and streams ``X`` through the windows in order. ``partial_fit``
    streams more rows with the same limits (on an unfitted detector it fits);
    any split of the same rows into ``partial_fit`` calls gives the same state.
    ``score_samples`` does not learn; ``score_partial_fit`` is River's
    ``score_one`` then ``learn_one`` for every row, with scores that do not
    depend on how a stream is cut into batches (capabilities: online).
    Before the first window has completed every score is 0. Missing values go
    to the right child.

    **Good at**: streams with drift (the model is only the last window's
    mass, so it forgets by design), constant memory and cost per row, and
    spread-out anomalies in a few to a few dozen features.

    **Fails at**: anomalies packed together in time (a burst longer than a
    small share of the window becomes the reference mass and masks itself),
    features that were not scaled sensibly (an outlier in the fitted range
    squeezes everything else into one cell; fit on representative data), and
    relations between features (cuts are axis-parallel). Scores are coarse
    with small windows.

    **Cost**: learning and scoring are O(n_trees x height) per row; memory is
    ``n_trees x 2**(height+1)`` pairs of counts (10 x 511 with the defaults).

    Parameters
    ----------
    n_trees
        Number of trees.
    height
        Levels of splits per tree.
    window_size
        Rows per mass window.
    padding
        Share of each node's range kept clear of cut points at both ends.
    random_state
        Seed of the tree structure (an int; None draws one).

    Examples
    --------
    >>> import numpy as np
    >>> from tocsin.detectors.half_space_trees import HalfSpaceTrees
    >>> rng = np.random.default_rng(0)
    >>> X = rng.uniform(0.4, 0.6, size=(2000, 2))
    >>> X[:2] = [[0.0, 0.0], [1.0, 1.0]]  # give the limits their range
    >>> detector = HalfSpaceTrees(n_trees=20, random_state=1).fit(X)
    >>> scores = detector.score_samples([[0.5, 0.5], [0.95, 0.05]])
    >>> scores.round(2)  # the middle of the mass, an empty corner
    array([0.53, 0.99])
    >>> detector.partial_fit(rng.uniform(0.4, 0.6, size=(600, 2))).window_position_  # 2,600 rows: 10 windows + 100
    100

    References
    ----------
    Tan, S. C., Ting, K. M. and Liu, T. F. (2011). "Fast anomaly detection for
    streaming data". *IJCAI*, 1511-1516. River's ``anomaly.HalfSpaceTrees``.
    """

    kind = "half_space_trees"
    capabilities = Capabilities(online=True, explains=True)

    def __init__(
        self,
        n_trees: int = 10,
        height: int = 8,
        window_size: int = 250,
        padding: float = 0.15,
        random_state: int | None = None,
    ) -> None:
        self.n_trees = n_trees
        self.height = height
        self.window_size = window_size
        self.padding = padding
        self.random_state = random_state

    def check_params(self, feature_names: Sequence[str] | None = None) -> None:
        for name, low, high in (("n_trees", 1, 10_000), ("height", 1, 24), ("window_size", 1, 2**30)):
            value = getattr(self, name)
            if isinstance(value, bool) or not (isinstance(value, (int, np.integer)) and low <= value <= high):
                raise ValueError(f"{name} must be an int in [{low}, {high}], got {value!r}")
        if isinstance(self.padding, bool) or not (isinstance(self.padding, numbers.Real) and 0.0 <= self.padding < 0.5):
            raise ValueError(f"padding must be a number in [0, 0.5), got {self.padding!r}")
        check_random_state(self.random_state)

    def fit(self, X: np.ndarray) -> HalfSpaceTrees:
        self.check_params()
        X = np.asarray(X, dtype=np.float64)
        if X.ndim != 2 or X.shape[0] == 0:
            raise ValueError(f"X must be 2-D with at least one row, got shape {X.shape}")
        with np.errstate(all="ignore"):
            low, high = np.nanmin(X, axis=0), np.nanmax(X, axis=0)
        low = np.nan_to_num(low)
        span = np.nan_to_num(high) - low
        self.lower_ = low
        self.span_ = np.where(span > 0, span, 1.0)
        n_features = X.shape[1]
        seed = int(np.random.default_rng(self.random_state).integers(2**31 - 1))
        self.split_feature_ = np.zeros((self.n_trees, 2**self.height - 1), dtype=np.int32)
        self.split_value_ = np.zeros((self.n_trees, 2**self.height - 1), dtype=np.float64)
        if n_features > 0:
            _build_trees(self.n_trees, self.height, n_features, float(self.padding), seed, self.split_feature_, self.split_value_)
        n_nodes = 2 ** (self.height + 1) - 1
        self.l_mass_ = np.zeros((self.n_trees, n_nodes), dtype=np.int64)
        self.r_mass_ = np.zeros((self.n_trees, n_nodes), dtype=np.int64)
        self._state = np.array([0, self.window_size, 1], dtype=np.int64)
        return self._learn(X)

    def partial_fit(self, X: np.ndarray) -> HalfSpaceTrees:
        """Stream ``X`` (in row order) through the mass windows; fits on an unfitted detector."""
        if not self.is_fitted:
            return self.fit(X)
        return self._learn(X)

    def _scaled(self, X: np.ndarray) -> np.ndarray:
        self._check_fitted()
        X = np.asarray(X, dtype=np.float64)
        if X.ndim != 2 or X.shape[1] != self.lower_.shape[0]:
            raise ValueError(f"X must be 2-D with {self.lower_.shape[0]} features, got shape {X.shape}")
        # NaN compares False with every cut, so it goes right, as documented.
        return np.ascontiguousarray((X - self.lower_) / self.span_)

    def _learn(self, X: np.ndarray) -> HalfSpaceTrees:
        _learn(self._scaled(X), self.split_feature_, self.split_value_, self.l_mass_, self.r_mass_, self._state)
        return self

    @property
    def window_position_(self) -> int:
        """Rows counted in the current (latest) window."""
        return int(self._state[0])

    def _size_limit(self) -> float:
        return 0.1 * self.window_size

    def score_samples(self, X: np.ndarray) -> np.ndarray:
        """``1 - mass score / maximum`` in [0, 1]; higher is more anomalous (0 before the first full window)."""
        return self._scores(self._scaled(X))

    def score_partial_fit(self, X: np.ndarray) -> np.ndarray:
        """The streaming step (River's ``score_one`` then ``learn_one``): each row is scored against
        the reference window, then learned. Identical to one row at a time, so the scores do not
        depend on where a stream is cut into batches. Needs a fitted detector: the feature limits
        come from the fit rows."""
        Z = self._scaled(X)
        out = np.empty(Z.shape[0])
        start = 0
        while start < Z.shape[0]:
            # the reference changes only when the latest window fills: rows up to there share it
            stop = min(Z.shape[0], start + int(self._state[1] - self._state[0]))
            out[start:stop] = self._scores(Z[start:stop])
            _learn(Z[start:stop], self.split_feature_, self.split_value_, self.l_mass_, self.r_mass_, self._state)
            start = stop
        return out

    def _scores(self, Z: np.ndarray) -> np.ndarray:
        if self._state[2]:
            return np.zeros(Z.shape[0])
        raw = _mass_scores(Z, self.split_feature_, self.split_value_, self.l_mass_, self._size_limit(), np.empty(Z.shape[0]))
        max_score = self.n_trees * self.window_size * (2 ** (self.height + 1) - 1)
        return 1.0 - raw / max_score

    def explain(self, X: np.ndarray) -> np.ndarray:
        """Per feature, the bits of mass drop its splits caused along the scored paths (rows sum to 1, or 0)."""
        Z = self._scaled(X)
        out = np.zeros(Z.shape)
        if not self._state[2]:
            _attributions(Z, self.split_feature_, self.split_value_, self.l_mass_, self._size_limit(), out)
        totals = out.sum(axis=1, keepdims=True)
        return np.divide(out, totals, out=np.zeros_like(out), where=totals > 0)

    def state_dict(self) -> dict[str, np.ndarray]:
        self._check_fitted()
        names = ("lower_", "span_", "split_feature_", "split_value_", "l_mass_", "r_mass_")
        state = {name.rstrip("_"): getattr(self, name).copy() for name in names}
        state["window_state"] = self._state.copy()
        return state

    def load_state_dict(self, state: dict[str, np.ndarray]) -> None:
        n_internal, n_nodes = 2**self.height - 1, 2 ** (self.height + 1) - 1
        split_feature = np.ascontiguousarray(state["split_feature"], dtype=np.int32)
        split_value = np.ascontiguousarray(state["split_value"], dtype=np.float64)
        l_mass = np.ascontiguousarray(state["l_mass"], dtype=np.int64)
        r_mass = np.ascontiguousarray(state["r_mass"], dtype=np.int64)
        lower = np.asarray(state["lower"], dtype=np.float64)
        span = np.asarray(state["span"], dtype=np.float64)
        window_state = np.asarray(state["window_state"], dtype=np.int64)
        if split_feature.shape != (self.n_trees, n_internal) or split_value.shape != split_feature.shape:
            raise ValueError("half-space trees state does not match n_trees and height")
        if l_mass.shape != (self.n_trees, n_nodes) or r_mass.shape != l_mass.shape:
            raise ValueError("half-space trees state is corrupt: mass arrays have the wrong shape")
        if lower.ndim != 1 or span.shape != lower.shape or window_state.shape != (3,):
            raise ValueError("half-space trees state is corrupt: limits or window state have the wrong shape")
        if split_feature.size and (split_feature.min() < 0 or split_feature.max() >= lower.shape[0]):
            raise ValueError("half-space trees state is corrupt: a split feature is out of range")
        self.lower_, self.span_ = lower.copy(), span.copy()
        self.split_feature_, self.split_value_ = split_feature.copy(), split_value.copy()
        self.l_mass_, self.r_mass_ = l_mass.copy(), r_mass.copy()
        self._state = window_state.copy()
