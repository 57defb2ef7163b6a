"""KNN: distance to the k-th neighbour after scaling, planted outliers, persistence."""

import numpy as np
import pytest

from tocsin.detectors import DETECTORS, Detector, NotFittedError
from tocsin.detectors.knn import KNN


def test_registered():
    assert DETECTORS["knn"] is KNN


def test_planted_outlier_off_a_correlated_band_ranks_first():
    rng = np.random.default_rng(0)
    t = rng.normal(size=2_000)
    X = np.column_stack([t, t + rng.normal(scale=0.05, size=2_000)])
    X[77] = [1.0, -1.0]  # each value ordinary, the pair impossible
    detector = KNN(n_neighbors=10).fit(X)
    scores = detector.score_samples(X)
    assert scores.argmax() == 77
    assert detector.explain(X[[77]]).min() > 0.5


def test_score_is_the_kth_distance_in_scaled_units():
    X = np.array([[0.0], [1.0], [2.0], [3.0], [10.0]])
    detector = KNN(n_neighbors=2, scaling="none").fit(X)
    np.testing.assert_allclose(detector.score_samples([[0.0], [10.0]]), [1.0, 7.0])
    mean = KNN(n_neighbors=2, method="mean", scaling="none").fit(X)
    np.testing.assert_allclose(mean.score_samples([[10.0]]), [(0.0 + 7.0) / 2])


def test_robust_scaling_matches_robust_zscore():
    from tocsin.detectors import RobustZScore

    rng = np.random.default_rng(1)
    X = rng.normal(loc=5.0, scale=[1.0, 30.0], size=(1_000, 2))
    detector = KNN().fit(X)
    reference = RobustZScore().fit(X)
    np.testing.assert_allclose(detector.center_, reference.median_)
    np.testing.assert_allclose(detector.scale_, reference.scale_)


def test_save_load_gives_identical_scores(tmp_path):
    rng = np.random.default_rng(2)
    X = rng.normal(size=(600, 3))
    detector = KNN(n_neighbors=5, max_samples=400, random_state=0).fit(X)
    detector.save(tmp_path / "knn.npz")
    loaded = Detector.load(tmp_path / "knn.npz")
    np.testing.assert_array_equal(loaded.score_samples(X), detector.score_samples(X))
    np.testing.assert_array_equal(loaded.explain(X[:5]), detector.explain(X[:5]))


def test_not_fitted_and_bad_params():
    with pytest.raises(NotFittedError):
        KNN().score_samples(np.zeros((1, 2)))
    for params, message in (({"n_neighbors": 0}, "n_neighbors"), ({"method": "median"}, "method"), ({"scaling": "minmax"}, "scaling")):
        with pytest.raises(ValueError, match=message):
            KNN(**params).fit(np.zeros((3, 1)))


def test_blockwise_brute_force_agrees_with_the_kd_tree():
    from sklearn.neighbors import NearestNeighbors

    rng = np.random.default_rng(0)
    X = rng.normal(size=(3000, 4))
    detector = KNN(n_neighbors=10).fit(X)
    assert detector._brute_force()
    exact = NearestNeighbors(n_neighbors=10).fit(detector.reference_).kneighbors(detector._scaled(X[:200]))[0]
    # scores use float32 distances: equal to about 1e-4 relative
    np.testing.assert_allclose(detector.score_samples(X[:200]), exact[:, -1], rtol=1e-3)
    np.testing.assert_allclose(KNN(n_neighbors=10, method="mean").fit(X).score_samples(X[:200]), exact.mean(axis=1), rtol=1e-3)
    distances, indices = detector._neighbours(detector._scaled(X[:200]))
    np.testing.assert_allclose(distances, exact, rtol=1e-6, atol=1e-6)


def test_a_sampled_reference_bounds_the_work_per_row():
    X = np.random.default_rng(1).normal(size=(20_000, 3))
    detector = KNN(n_neighbors=5, max_samples=500, random_state=0).fit(X)
    assert detector.reference_.shape == (500, 3)
    assert np.isfinite(detector.score_samples(X)).all()


def test_subsets_are_independent_and_the_score_is_their_mean():
    X = np.random.default_rng(3).normal(size=(5_000, 3))
    detector = KNN(n_neighbors=7, max_samples=300, n_estimators=4, random_state=0).fit(X)
    bags = detector._bags()
    assert detector.reference_.shape == (1_200, 3) and len(bags) == 4
    assert not np.array_equal(bags[0], bags[1])
    for bag in bags:  # each subset is distinct rows of X
        assert len(np.unique(bag, axis=0)) == 300
    Z = detector._scaled(X[:50])
    each = []
    for bag in bags:
        distances = np.sqrt(((Z[:, None, :] - bag[None, :, :]) ** 2).sum(axis=2))
        each.append(np.sort(distances, axis=1)[:, 6])
    np.testing.assert_allclose(detector.score_samples(X[:50]), np.mean(each, axis=0), rtol=1e-3)
    # one subset is the plain sampled kNN
    single = KNN(n_neighbors=7, max_samples=300, n_estimators=1, random_state=0).fit(X)
    plain = KNN(n_neighbors=7, max_samples=300, random_state=0).fit(X)
    np.testing.assert_array_equal(single.score_samples(X[:50]), plain.score_samples(X[:50]))


def test_subsets_on_a_small_table_each_hold_every_row_and_the_kd_tree_path_agrees():
    X = np.random.default_rng(4).normal(size=(100, 2))
    detector = KNN(n_neighbors=5, max_samples=1_000, n_estimators=3, random_state=0).fit(X)
    assert detector.reference_.shape == (300, 2)
    np.testing.assert_allclose(detector.score_samples(X), KNN(n_neighbors=5).fit(X).score_samples(X), rtol=1e-3)
    big = np.random.default_rng(5).normal(size=(20_000, 3))
    tree = KNN(n_neighbors=5, max_samples=9_000, n_estimators=2, random_state=0).fit(big)
    assert not tree._brute_force()
    distances, indices = tree._neighbours(tree._scaled(big[:20]))
    assert distances.shape == indices.shape == (20, 10)
    expected = (distances[:, 4] + distances[:, 9]) / 2
    np.testing.assert_allclose(tree.score_samples(big[:20]), expected)


def test_subsets_need_max_samples_and_survive_save_load(tmp_path):
    with pytest.raises(ValueError, match="n_estimators"):
        KNN(n_estimators=2).fit(np.zeros((3, 1)))
    with pytest.raises(ValueError, match="n_estimators"):
        KNN(n_estimators=0, max_samples=2).fit(np.zeros((3, 1)))
    X = np.random.default_rng(6).normal(size=(600, 3))
    detector = KNN(n_neighbors=5, max_samples=100, n_estimators=3, random_state=1).fit(X)
    detector.save(tmp_path / "bagged.npz")
    loaded = Detector.load(tmp_path / "bagged.npz")
    np.testing.assert_array_equal(loaded.score_samples(X), detector.score_samples(X))
    np.testing.assert_array_equal(loaded.explain(X[:5]), detector.explain(X[:5]))


def test_many_blocks_scored_on_threads_agree_with_exact_neighbours():
    from sklearn.neighbors import NearestNeighbors

    rng = np.random.default_rng(7)
    X = rng.normal(size=(12_000, 20))
    detector = KNN(n_neighbors=15, max_samples=4_000, random_state=0).fit(X)
    assert X.shape[0] > 4 * (4_000_000 // 4_000)  # several blocks, so several threads
    exact = NearestNeighbors(n_neighbors=15).fit(detector.reference_).kneighbors(detector._scaled(X))[0]
    np.testing.assert_allclose(detector.score_samples(X), exact[:, -1], rtol=1e-3)
    mean = KNN(n_neighbors=15, method="mean", max_samples=4_000, random_state=0).fit(X)
    np.testing.assert_allclose(mean.score_samples(X), exact.mean(axis=1), rtol=1e-3)
