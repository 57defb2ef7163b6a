"""Isolation Forest trained by scikit-learn, scored by a compiled kernel over flat arrays."""

from __future__ import annotations

import numbers
from collections.abc import Sequence

import numpy as np

from tocsin.detectors._iforest_kernels import (
    TREE_LEAF,
    forest_layout,
    grow_forest,
    path_attributions,
    path_length_sums_threaded,
)
from tocsin.detectors.base import Capabilities, Detector, check_positive, check_random_state


def average_path_length(n_samples: np.ndarray) -> np.ndarray:
    """c(n): the average path length of an unsuccessful search in a binary search
    tree of ``n`` points, i.e. the expected depth still needed to isolate a point in
    a leaf that holds ``n`` training samples. Same arithmetic as scikit-learn's
    ``_average_path_length`` so scores agree bit for bit."""
    n = np.asarray(n_samples, dtype=np.float64)
    out = np.zeros(n.shape)
    large = n > 2
    out[n == 2] = 1.0
    out[large] = 2.0 * (np.log(n[large] - 1.0) + np.euler_gamma) - 2.0 * (n[large] - 1.0) / n[large]
    return out


def _as_float32_rows(X: np.ndarray, n_features: int) -> np.ndarray:
    # scikit-learn traverses its trees on float32 input; casting the same way is
    # what makes every row land in the same leaf.
    X = np.ascontiguousarray(X, dtype=np.float32)
    if X.ndim != 2:
        raise ValueError(f"X must be 2-D (rows x features), got shape {X.shape}")
    if X.shape[1] != n_features:
        raise ValueError(f"X has {X.shape[1]} features, the detector was fitted on {n_features}")
    return X


class IsolationForest(Detector):
    """Isolation Forest: anomalies are the points that random splits isolate quickly.

    Each tree is grown on a small random subsample by splitting on a random
    feature at a random value between that feature's min and max, until every
    point is alone or the depth limit ``ceil(log2(max_samples))`` is reached. A
    point's path length is its depth in the tree plus c(n), the expected extra
    depth to separate the ``n`` training points left in its leaf. Rare, far-off
    points are cut off near the root, so a short mean path means an anomaly. The
    score is ``2 ** (-mean_path_length / c(max_samples_))`` in (0, 1]: about 0.5
    and below for ordinary rows, approaching 1 for clear anomalies. It equals
    ``-sklearn.ensemble.IsolationForest.score_samples`` to floating-point
    precision (bit-identical in practice).

    Training is scikit-learn's; then every tree is flattened into concatenated
    NumPy arrays (split feature, threshold, children, per-leaf path length) and
    the scikit-learn object is dropped. Scoring walks those arrays in a numba
    kernel (no Python per row, no joblib), and the fitted state is a handful of
    arrays that ``save`` and checkpoints write as ``.npz``.

    **Good at**: global outliers in moderate dimension (a few to a few dozen
    features) with no distributional assumption, mixed scales (splits are
    per-feature, so no scaling is needed), and cheap, bounded-cost scoring.

    **Fails at**: local anomalies next to a dense cluster (they are not isolated
    sooner than the cluster's edge), anomalies that differ only in the
    *relation* between features (axis-parallel splits see a diagonal band as a
    box: the "ghost" regions of Hariri et al.), and many irrelevant features,
    which dilute the splits that matter (lower ``max_features`` does not fix
    that). Clustered anomalies present in training ("masking") raise their own
    path lengths; keep ``max_samples`` small. It is a batch model: refit on
    recent data to follow drift.

    **Cost**: ``fit`` is O(n_estimators x max_samples x log max_samples).
    Scoring is O(n_estimators x log2(max_samples)) per row, independent of the
    training size: about 100 x 8 node visits with the defaults. State is
    about ``n_estimators x 2 x max_samples`` nodes of 29 bytes (about 1.5 MB).

    Parameters
    ----------
    n_estimators
        Number of trees. More trees lower the variance of the score.
    max_samples
        Rows drawn (without replacement) to grow each tree: ``"auto"`` is
        ``min(256, n_rows)``, an int is a count, a float a share of the rows.
    max_features
        Features drawn for each tree: an int count or a float share.
    random_state
        Seed (an int, or None for a fresh one). It is saved with the model, so
        it must be an int or None.
    trainer
        ``"sklearn"`` grows the trees with scikit-learn (scores then equal
        scikit-learn's bit for bit); ``"compiled"`` grows them with the same
        algorithm in a numba kernel, about 50-100x faster to fit (scikit-learn
        spends about a millisecond of set-up per tree), which is what makes
        frequent refits on a stream cheap. Same distribution of trees, other
        random draws. ``max_features < 1`` always uses scikit-learn.

    Examples
    --------
    >>> import numpy as np
    >>> from tocsin.detectors import IsolationForest
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(2000, 3))
    >>> detector = IsolationForest(n_estimators=50, random_state=0).fit(X)
    >>> detector.max_samples_, detector.tree_offset_.shape
    (256, (50,))
    >>> scores = detector.score_samples([[0.0, 0.0, 0.0], [0.0, 6.0, 0.0]])
    >>> bool(scores[0] < 0.5 < scores[1])
    True
    >>> int(detector.explain([[0.0, 6.0, 0.0]]).argmax())  # feature 1 isolated it
    1

    References
    ----------
    Liu, F. T., Ting, K. M. and Zhou, Z.-H. (2008). "Isolation Forest".
    *IEEE ICDM*, 413-422. Liu, F. T., Ting, K. M. and Zhou, Z.-H. (2012).
    "Isolation-based anomaly detection". *ACM TKDD* 6(1).
    """

    kind = "isolation_forest"
    capabilities = Capabilities(explains=True)

    def __init__(
        self,
        n_estimators: int = 100,
        max_samples: int | float | str = "auto",
        max_features: int | float = 1.0,
        random_state: int | None = None,
        trainer: str = "sklearn",
    ) -> None:
        self.n_estimators = n_estimators
        self.max_samples = max_samples
        self.max_features = max_features
        self.random_state = random_state
        self.trainer = trainer

    def check_params(self, feature_names: Sequence[str] | None = None) -> None:
        """The ranges scikit-learn accepts, checked without data (its own check runs only in ``fit``)."""
        check_positive("n_estimators", self.n_estimators, integer=True)
        if not (self.max_samples == "auto" or _is_count_or_share(self.max_samples)):
            raise ValueError(f"max_samples must be 'auto', a positive int or a float in (0, 1], got {self.max_samples!r}")
        if not _is_count_or_share(self.max_features):
            raise ValueError(f"max_features must be a positive int or a float in (0, 1], got {self.max_features!r}")
        check_random_state(self.random_state)
        if self.trainer not in ("sklearn", "compiled"):
            raise ValueError(f"trainer must be 'sklearn' or 'compiled', got {self.trainer!r}")

    def fit(self, X: np.ndarray) -> IsolationForest:
        self.check_params()
        X = np.asarray(X, dtype=np.float32)
        if X.ndim != 2 or X.shape[0] == 0:
            raise ValueError(f"X must be 2-D with at least one row, got shape {X.shape}")
        if self.trainer == "compiled" and self.max_features in (1.0, X.shape[1]):
            self._load_compiled_forest(X)
            return self
        # Imported here: scikit-learn takes ~1 s to import, which a compiled-trainer worker never pays.
        from sklearn.ensemble import IsolationForest as SklearnIsolationForest

        model = SklearnIsolationForest(
            n_estimators=self.n_estimators,
            max_samples=self.max_samples,
            max_features=self.max_features,
            random_state=None if self.random_state is None else int(self.random_state),
        ).fit(X)
        self._load_sklearn_model(model, n_features=X.shape[1])
        return self

    def _grow_compiled(self, X: np.ndarray) -> tuple:
        """Trees grown by the numba kernel, concatenated (see :func:`grow_forest`), and the subsample size."""
        n = X.shape[0]
        if self.max_samples == "auto":
            n_sub = min(256, n)
        elif isinstance(self.max_samples, float):
            n_sub = max(1, int(self.max_samples * n))
        else:
            n_sub = min(int(self.max_samples), n)
        max_depth = int(np.ceil(np.log2(max(n_sub, 2))))
        seed = np.random.SeedSequence(self.random_state).generate_state(1)[0] % (2**31)
        return *grow_forest(np.ascontiguousarray(X), int(self.n_estimators), n_sub, max_depth, int(seed)), n_sub

    def _load_compiled_forest(self, X: np.ndarray) -> None:
        """Grow trees with the numba kernel and flatten them (no NaN was seen in training: none goes right)."""
        starts, left, right, feature, threshold, n_samples, n_sub = self._grow_compiled(X)
        self._flatten(starts, left, right, np.where(left == TREE_LEAF, 0, feature), threshold, n_samples)
        self.max_samples_ = int(n_sub)
        self.n_features_in_ = int(X.shape[1])

    def _load_sklearn_model(self, model, n_features: int) -> None:
        """Flatten a fitted scikit-learn forest into this detector's arrays: its trees' arrays concatenated, then
        the same whole-forest flattening as the compiled trainer's."""
        # scikit-learn trains each tree on X[:, estimators_features_[t]] only when it
        # subsamples features; otherwise the tree saw X itself and its feature ids
        # are already column ids (estimators_features_ may then be a permutation
        # that must NOT be applied).
        subsampled = model._max_features != n_features
        path_lengths = getattr(model, "_decision_path_lengths", None)
        leaf_extra = getattr(model, "_average_path_length_per_tree", None)
        trees = [estimator.tree_ for estimator in model.estimators_]
        starts = np.zeros(len(trees) + 1, dtype=np.int64)
        np.cumsum([tree.node_count for tree in trees], out=starts[1:])
        features = []
        for t, tree in enumerate(trees):
            feature = np.where(tree.children_left == TREE_LEAF, 0, tree.feature).astype(np.int64)
            features.append(np.asarray(model.estimators_features_[t])[feature] if subsampled else feature)

        def joined(name: str) -> np.ndarray:
            return np.concatenate([getattr(tree, name) for tree in trees])

        left = joined("children_left").astype(np.int64)
        self._flatten(
            starts, left, joined("children_right").astype(np.int64), np.concatenate(features), joined("threshold"),
            joined("n_node_samples"), depth=None if path_lengths is None else np.concatenate(path_lengths),
            extra=None if leaf_extra is None else np.concatenate(leaf_extra),
            nan_right=(left != TREE_LEAF) & (joined("missing_go_to_left") == 0),
        )
        self.max_samples_ = int(model._max_samples)
        self.n_features_in_ = int(n_features)

    def _flatten(self, starts, left, right, feature, threshold, n_samples, *, depth=None, extra=None, nan_right=None) -> None:
        """Set the node and tree arrays (layout in :mod:`tocsin.detectors._iforest_kernels`) from all trees
        concatenated: tree ``t`` is nodes ``starts[t]:starts[t + 1]`` with tree-local child ids (a leaf's
        ``TREE_LEAF``), children after their parent. ``depth`` (the root 1) and ``extra`` (the c(n) of each
        leaf) as scikit-learn stored them, else computed; ``nan_right``: where a split sent missing values right.
        Whole-forest array operations and one layout kernel: a dozen numpy calls per tree cost ~5 ms a refit."""
        order, new_index, computed_depth, tree_depth = forest_layout(starts, left, right)
        if depth is None:
            depth = computed_depth
        else:
            tree_depth = (np.maximum.reduceat(depth, starts[:-1]) - 1).astype(np.int32)
        if extra is None:
            extra = average_path_length(n_samples)
        is_leaf = left == TREE_LEAF
        tree_of = np.repeat(starts[:-1], np.diff(starts))  # each node's tree's first global id
        left_global = np.where(is_leaf, np.arange(len(left)), left + tree_of)  # a leaf points to itself
        # scikit-learn adds `depth + extra - 1.0` per tree (its depths count the root as 1); the same
        # expression here keeps the sums bit-identical.
        path_length = np.where(is_leaf, depth + extra - 1.0, 0.0)
        # Bits of isolation a split achieves for the rows that reach a child: log2(samples at the parent /
        # samples at the child). Used by explain().
        samples = n_samples.astype(np.float64)
        isolation_bits = np.zeros(len(left))
        parents = np.flatnonzero(~is_leaf)
        for children in (left[parents] + tree_of[parents], right[parents] + tree_of[parents]):
            isolation_bits[children] = np.log2(samples[parents] / samples[children])
        arrays = {
            "node_feature_": feature[order],
            # leaves never go right (+inf, NaN "left"): see the kernel
            "node_threshold_": _round_down_to_float32(np.where(is_leaf, np.inf, threshold))[order],
            "node_left_": new_index[left_global[order]],
            "node_nan_right_": np.zeros(len(left), dtype=bool) if nan_right is None else nan_right[order],
            "node_path_length_": path_length[order],
            "node_isolation_bits_": isolation_bits[order],
        }
        self.tree_offset_ = starts[:-1].astype(np.uint32)
        self.tree_depth_ = tree_depth.astype(np.int32)
        for name, dtype in self._NODE_ARRAYS.items():
            setattr(self, name, arrays[name].astype(dtype))

    def _path_length_sums(self, X: np.ndarray) -> np.ndarray:
        out = np.empty(X.shape[0], dtype=np.float64)
        return path_length_sums_threaded(
            X,
            self.tree_offset_,
            self.tree_depth_,
            self.node_feature_,
            self.node_threshold_,
            self.node_left_,
            self.node_nan_right_,
            self.node_path_length_,
            out,
        )

    def _denominator(self) -> float:
        """n_trees x c(max_samples_), cached: it costs more than scoring one row."""
        key = (len(self.tree_offset_), self.max_samples_)
        cached = getattr(self, "_denominator_cache", None)
        if cached is None or cached[0] != key:
            cached = (key, float(key[0] * average_path_length([key[1]])[0]))
            self._denominator_cache = cached
        return cached[1]

    def score_samples(self, X: np.ndarray) -> np.ndarray:
        """``2 ** (-mean path length / c(max_samples_))``, in (0, 1]; higher is more anomalous."""
        self._check_fitted()
        X = _as_float32_rows(X, self.n_features_in_)
        sums = self._path_length_sums(X)
        denominator = self._denominator()
        if denominator == 0:  # one training row: scikit-learn sets the normalised depth to 1
            return np.full(X.shape[0], 0.5)
        return np.power(2.0, -(sums / denominator))

    def explain(self, X: np.ndarray) -> np.ndarray:
        """Share of the isolation work done by each feature (rows sum to 1).

        For each row and tree, every split on the row's path credits its feature
        with the bits of isolation it achieved for that row, ``log2(training
        samples at the split / samples in the child the row went to)``; credits are
        summed over trees and each row is normalised. A split that cuts an outlier
        off from 128 points to 1 earns 7 bits, an ordinary halving 1 bit, so the
        feature that actually isolated the row dominates.

        (Crediting each split by its depth alone, e.g. ``1 / (depth + 1)``, gives
        nearly the same vector for every row, because which feature is split near
        the root is random; it is not used for that reason.)

        Meant for the few flagged rows; it costs about as much as scoring them.
        A row whose every tree is a single leaf gets all zeros.
        """
        self._check_fitted()
        X = _as_float32_rows(X, self.n_features_in_)
        out = np.zeros((X.shape[0], self.n_features_in_), dtype=np.float64)
        return path_attributions(
            X,
            self.tree_offset_,
            self.node_feature_,
            self.node_threshold_,
            self.node_left_,
            self.node_nan_right_,
            self.node_isolation_bits_,
            out,
        )

    #: Per-node arrays of the flattened forest and their dtypes.
    _NODE_ARRAYS = {
        "node_feature_": np.uint32,
        "node_threshold_": np.float32,
        "node_left_": np.uint32,
        "node_nan_right_": np.bool_,
        "node_path_length_": np.float64,
        "node_isolation_bits_": np.float64,
    }
    _TREE_ARRAYS = {"tree_offset_": np.uint32, "tree_depth_": np.int32}

    def state_dict(self) -> dict[str, np.ndarray]:
        self._check_fitted()
        state = {name.rstrip("_"): getattr(self, name).copy() for name in {**self._TREE_ARRAYS, **self._NODE_ARRAYS}}
        state["max_samples"] = np.asarray(self.max_samples_, dtype=np.int64)
        state["n_features_in"] = np.asarray(self.n_features_in_, dtype=np.int64)
        return state

    def load_state_dict(self, state: dict[str, np.ndarray]) -> None:
        arrays = {
            name: np.ascontiguousarray(state[name.rstrip("_")], dtype=dtype)
            for name, dtype in {**self._TREE_ARRAYS, **self._NODE_ARRAYS}.items()
        }
        n_features = int(state["n_features_in"])
        _check_forest(arrays, n_features)
        for name, value in arrays.items():
            setattr(self, name, value)
        self.max_samples_ = int(state["max_samples"])
        self.n_features_in_ = n_features


def _is_count_or_share(value: object) -> bool:
    """A positive int (a count) or a float in (0, 1] (a share), as scikit-learn takes ``max_samples``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        return False
    return value >= 1 if isinstance(value, numbers.Integral) else 0 < value <= 1


def _round_down_to_float32(threshold: np.ndarray) -> np.ndarray:
    """The largest float32 <= each float64 threshold: for any float32 x,
    ``x > threshold`` iff ``x > result``, so float32 thresholds lose nothing."""
    with np.errstate(over="ignore"):
        result = threshold.astype(np.float32)
    too_high = result.astype(np.float64) > threshold
    result[too_high] = np.nextafter(result[too_high], np.float32(-np.inf))
    return result


def _check_forest(arrays: dict[str, np.ndarray], n_features: int) -> None:
    """Refuse state the kernels would read out of bounds with (they do not check)."""
    n_nodes = len(arrays["node_feature_"])
    if n_nodes == 0 or any(len(arrays[name]) != n_nodes for name in IsolationForest._NODE_ARRAYS):
        raise ValueError("isolation forest state is corrupt: node arrays are empty or differ in length")
    if len(arrays["tree_offset_"]) != len(arrays["tree_depth_"]) or len(arrays["tree_offset_"]) == 0:
        raise ValueError("isolation forest state is corrupt: tree arrays are empty or differ in length")
    left = arrays["node_left_"].astype(np.int64)
    internal = left != np.arange(n_nodes)
    # Breadth-first numbering puts children after their parent, which also rules out cycles.
    bad_children = internal.any() and (
        (left[internal] + 1).max() >= n_nodes or np.any(left[internal] <= np.flatnonzero(internal))
    )
    if left.min() < 0 or bad_children:
        raise ValueError("isolation forest state is corrupt: a child index is out of range")
    offsets, features = arrays["tree_offset_"], arrays["node_feature_"]
    if offsets.min() < 0 or offsets.max() >= n_nodes or features.min() < 0 or features.max() >= n_features:
        raise ValueError("isolation forest state is corrupt: a root or split feature is out of range")
    if arrays["tree_depth_"].min() < 0:
        raise ValueError("isolation forest state is corrupt: a negative tree depth")
