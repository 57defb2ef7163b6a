"""IsolationForest: agreement with scikit-learn, planted outliers, explanations, persistence."""

import warnings

import numpy as np
import pytest
from sklearn.ensemble import IsolationForest as SklearnIsolationForest

from tocsin.detectors import DETECTORS, Detector, IsolationForest, NotFittedError, RobustZScore


def _datasets():
    rng = np.random.default_rng(42)
    gaussian = rng.normal(size=(3_000, 6))
    constant_columns = np.column_stack(
        [rng.normal(size=2_000), np.full(2_000, 3.0), rng.exponential(size=2_000), np.zeros(2_000)]
    )
    wide_scales = rng.normal(size=(2_500, 5)) * np.array([1e-3, 1.0, 1e3, 1e6, 1e-6])
    discrete = rng.integers(0, 4, size=(1_500, 3)).astype(np.float64)  # many ties at thresholds
    with_nans = rng.normal(size=(2_000, 4))
    with_nans[rng.uniform(size=with_nans.shape) < 0.05] = np.nan
    return {
        "gaussian": gaussian,
        "constant_columns": constant_columns,
        "wide_scales": wide_scales,
        "discrete": discrete,
        "with_nans": with_nans,
    }


@pytest.mark.parametrize("name", list(_datasets()))
@pytest.mark.parametrize(
    "params",
    [
        {},
        {"max_features": 0.5, "n_estimators": 40},
        {"max_features": 2, "max_samples": 100, "n_estimators": 30},
        {"max_samples": 0.3, "n_estimators": 20},
    ],
    ids=["default", "max_features=0.5", "max_features=2", "max_samples=0.3"],
)
def test_scores_equal_minus_sklearn_score_samples(name, params):
    X = _datasets()[name]
    rng = np.random.default_rng(7)
    # new rows: in range, out of range, exactly on training values (threshold ties), missing
    queries = np.vstack([X[:300], X[:200] * 3 + 0.5, rng.normal(size=(200, X.shape[1])) * 10])
    queries[::17, 0] = np.nan
    detector = IsolationForest(random_state=11, **params).fit(X)
    reference = SklearnIsolationForest(random_state=11, **params).fit(X)
    np.testing.assert_allclose(detector.score_samples(queries), -reference.score_samples(queries), rtol=0, atol=1e-9)


def test_registered_and_doc_contract():
    assert DETECTORS["isolation_forest"] is IsolationForest
    assert {"isolation_forest", "robust_zscore"} <= set(DETECTORS)
    assert DETECTORS["robust_zscore"] is RobustZScore


def test_planted_outlier_ranks_first_and_explained_by_its_feature():
    rng = np.random.default_rng(3)
    X = rng.normal(size=(4_000, 4))
    detector = IsolationForest(random_state=0).fit(X)
    for feature in range(4):
        queries = rng.normal(size=(500, 4)) * 0.5  # inliers
        queries[123, feature] = 6.0
        scores = detector.score_samples(queries)
        assert scores.argmax() == 123
        attribution = detector.explain(queries[[123]])
        assert attribution.argmax() == feature
        assert attribution.sum() == pytest.approx(1.0)
        assert (attribution >= 0).all()


def test_scores_are_in_unit_interval_and_order_free():
    rng = np.random.default_rng(4)
    X = rng.normal(size=(1_000, 3))
    detector = IsolationForest(n_estimators=20, random_state=1).fit(X)
    scores = detector.score_samples(X)
    assert ((scores > 0) & (scores <= 1)).all()
    permutation = rng.permutation(len(X))
    np.testing.assert_array_equal(detector.score_samples(X[permutation]), scores[permutation])
    # blocks of rows are walked together; a single row must score the same alone
    one_by_one = np.concatenate([detector.score_samples(X[i : i + 1]) for i in range(300)])
    np.testing.assert_array_equal(one_by_one, scores[:300])


def test_constant_training_data():
    detector = IsolationForest(n_estimators=10, random_state=0).fit(np.ones((50, 2)))
    reference = SklearnIsolationForest(n_estimators=10, random_state=0).fit(np.ones((50, 2)))
    queries = np.array([[1.0, 1.0], [5.0, -5.0]])
    np.testing.assert_allclose(detector.score_samples(queries), -reference.score_samples(queries), atol=1e-12)
    np.testing.assert_array_equal(detector.explain(queries), 0.0)  # no splits: nothing to attribute


def test_single_training_row_matches_sklearn():
    X = np.array([[1.0, 2.0]])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        reference = SklearnIsolationForest(n_estimators=5, random_state=0).fit(X)
    detector = IsolationForest(n_estimators=5, random_state=0).fit(X)
    np.testing.assert_allclose(detector.score_samples(X), -reference.score_samples(X))


def test_not_fitted_raises():
    with pytest.raises(NotFittedError):
        IsolationForest().score_samples(np.zeros((1, 2)))
    with pytest.raises(NotFittedError):
        IsolationForest().explain(np.zeros((1, 2)))
    with pytest.raises(NotFittedError):
        IsolationForest().state_dict()


def test_rejects_bad_input():
    with pytest.raises(ValueError, match="random_state"):
        IsolationForest(random_state=np.random.RandomState(0)).fit(np.zeros((10, 2)))
    detector = IsolationForest(n_estimators=5, random_state=0).fit(np.random.default_rng(0).normal(size=(50, 2)))
    with pytest.raises(ValueError, match="features"):
        detector.score_samples(np.zeros((1, 3)))
    state = detector.state_dict()
    state["node_left"] = state["node_left"] + 10_000
    with pytest.raises(ValueError, match="corrupt"):
        IsolationForest().load_state_dict(state)


def test_save_load_gives_identical_scores_and_keeps_no_sklearn_object(tmp_path):
    rng = np.random.default_rng(5)
    X = rng.normal(size=(2_000, 5))
    detector = IsolationForest(n_estimators=30, max_features=0.6, random_state=9).fit(X)
    assert not any(type(value).__module__.startswith("sklearn") for value in vars(detector).values())
    path = tmp_path / "iforest.npz"
    detector.save(path)
    with np.load(path, allow_pickle=False) as data:  # plain arrays, no pickles
        assert "node_threshold" in data.files
    for loaded in (Detector.load(path), IsolationForest.load(path)):
        assert isinstance(loaded, IsolationForest)
        assert loaded.get_params() == detector.get_params()
        np.testing.assert_array_equal(loaded.score_samples(X), detector.score_samples(X))
        np.testing.assert_array_equal(loaded.explain(X[:5]), detector.explain(X[:5]))
    with pytest.raises(ValueError, match="holds a IsolationForest"):
        RobustZScore.load(path)


def test_compiled_trainer_grows_the_same_kind_of_forest():
    """Same algorithm, other random draws: scores agree in distribution, not bit for bit."""
    rng = np.random.default_rng(11)
    X = rng.normal(size=(20_000, 6))
    X[:20] += 5.0
    queries = np.vstack([rng.normal(size=(2_000, 6)), rng.normal(size=(20, 6)) + 5.0])
    reference = IsolationForest(random_state=0).fit(X).score_samples(queries)
    compiled = IsolationForest(random_state=0, trainer="compiled").fit(X)
    scores = compiled.score_samples(queries)
    assert abs(scores[:2_000].mean() - reference[:2_000].mean()) < 0.01
    assert np.corrcoef(scores, reference)[0, 1] > 0.95
    assert scores[2_000:].min() > np.quantile(scores[:2_000], 0.99)
    again = IsolationForest(random_state=0, trainer="compiled").fit(X).score_samples(queries)
    np.testing.assert_array_equal(scores, again)
    # every tree respects the depth limit and holds each subsampled row once
    assert compiled.tree_depth_.max() <= 8
    assert compiled.max_samples_ == 256


def test_compiled_trainer_survives_save_load_and_constant_columns(tmp_path):
    X = np.column_stack([np.random.default_rng(2).normal(size=1_000), np.ones(1_000)])
    detector = IsolationForest(n_estimators=20, random_state=1, trainer="compiled").fit(X)
    path = tmp_path / "iforest.npz"
    detector.save(path)
    loaded = IsolationForest.load(path)
    np.testing.assert_array_equal(loaded.score_samples(X), detector.score_samples(X))
    assert loaded.trainer == "compiled"


def test_unknown_trainer_is_refused():
    with pytest.raises(ValueError, match="trainer"):
        IsolationForest(trainer="gpu").fit(np.zeros((10, 2)))


@pytest.mark.parametrize("n_rows", [1, 255, 511, 512, 513, 1000, 4097])
def test_threaded_scoring_is_bit_identical_to_one_kernel_call(n_rows):
    """Rows shared out between cores are summed exactly as in one call, whatever the split."""
    from tocsin.detectors import _iforest_kernels as kernels

    rng = np.random.default_rng(n_rows)
    forest = IsolationForest(n_estimators=50, random_state=1, trainer="compiled").fit(rng.normal(size=(3000, 6)))
    X = np.ascontiguousarray(rng.normal(size=(n_rows, 6)).astype(np.float32))
    X[::7, 2] = np.nan
    args = (X, forest.tree_offset_, forest.tree_depth_, forest.node_feature_, forest.node_threshold_,
            forest.node_left_, forest.node_nan_right_, forest.node_path_length_)
    one_call = kernels.path_length_sums(*args, np.empty(n_rows))
    threaded = kernels.path_length_sums_threaded(*args, np.full(n_rows, -1.0))
    assert np.array_equal(one_call, threaded)
    assert (threaded > 0).all()


@pytest.mark.parametrize("rows, seed, expected", [(3000, 0, "58730c446bfa80e3"), (40, 3, "3c48875a42693bbd"),
                                                  (1, 5, "63770c1cf0862009")])
def test_the_compiled_trainers_forest_flattens_to_the_recorded_arrays(rows, seed, expected):
    """The flattened arrays of compiled forests, bit for bit, as recorded at d80faf8, where a test held them equal
    to the per-tree flattening scikit-learn forests went through before both trainers shared one."""
    import hashlib

    X = np.random.default_rng(seed).normal(size=(rows, 5)).astype(np.float32)
    X[:, 2] = 1.0  # a constant column: never split on
    forest = IsolationForest(n_estimators=30, random_state=seed, trainer="compiled").fit(X)
    digest = hashlib.sha256()
    for name in ("tree_offset_", "tree_depth_", *IsolationForest._NODE_ARRAYS):
        array = getattr(forest, name)
        digest.update(name.encode())
        digest.update(str(array.dtype).encode())
        digest.update(array.tobytes())
    digest.update(str((forest.max_samples_, forest.n_features_in_)).encode())
    assert digest.hexdigest()[:16] == expected
