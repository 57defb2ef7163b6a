"""Ensemble: standardised members, combine modes, persistence."""

import numpy as np
import pytest

from tocsin.detectors import DETECTORS, Detector, NotFittedError
from tocsin.detectors.ensemble import DEFAULT_MEMBERS, Ensemble

SMALL = [
    {"kind": "isolation_forest", "params": {"n_estimators": 50}},
    {"kind": "ecod", "params": {}},
    {"kind": "knn", "params": {"n_neighbors": 10}},
]


def _data(seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(1_500, 4))
    X[42] = [3.0, -3.0, 3.0, 9.0]
    return X


def test_registered_and_default_members():
    assert DETECTORS["ensemble"] is Ensemble
    detector = Ensemble(random_state=0).fit(_data()[:300])
    assert [type(m).kind for m in detector.members_] == [spec["kind"] for spec in DEFAULT_MEMBERS]
    assert detector.members_[0].random_state == 0  # seed passed to members that take one


@pytest.mark.parametrize("combine", ["mean", "max", "rank"])
def test_planted_outlier_ranks_first(combine):
    X = _data()
    detector = Ensemble(members=SMALL, combine=combine, random_state=0).fit(X)
    scores = detector.score_samples(X)
    assert scores.argmax() == 42
    assert detector.explain(X[[42]]).argmax() == 3


def test_members_are_standardised_to_median_zero_unit_iqr():
    X = _data(1)
    detector = Ensemble(members=SMALL, random_state=0).fit(X)
    standardised = detector._standardised(X)
    np.testing.assert_allclose(np.median(standardised, axis=1), 0.0, atol=1e-9)
    iqr = np.subtract(*np.percentile(standardised, [75, 25], axis=1))
    np.testing.assert_allclose(iqr, 1.0, rtol=1e-9)
    rank = Ensemble(members=SMALL, combine="rank", random_state=0).fit(X).score_samples(X)
    assert 0.0 <= rank.min() and rank.max() <= 1.0


def test_save_load_gives_identical_scores(tmp_path):
    X = _data(2)
    members = SMALL + [{"kind": "half_space_trees", "params": {"n_trees": 5}}]
    detector = Ensemble(members=members, random_state=1).fit(X)
    detector.save(tmp_path / "ensemble.npz")
    loaded = Detector.load(tmp_path / "ensemble.npz")
    np.testing.assert_array_equal(loaded.score_samples(X), detector.score_samples(X))
    np.testing.assert_array_equal(loaded.explain(X[:3]), detector.explain(X[:3]))


def test_partial_fit_needs_online_members():
    X = _data(3)
    online = Ensemble(members=[{"kind": "half_space_trees", "params": {"random_state": 0}}]).fit(X[:1000])
    online.partial_fit(X[1000:])
    alone = DETECTORS["half_space_trees"](random_state=0).fit(X[:1000])
    alone.partial_fit(X[1000:])
    np.testing.assert_array_equal(online.members_[0].l_mass_, alone.l_mass_)
    with pytest.raises(TypeError, match="online"):
        Ensemble(members=SMALL, random_state=0).fit(X).partial_fit(X)


def test_not_fitted_and_bad_members():
    with pytest.raises(NotFittedError):
        Ensemble().score_samples(np.zeros((1, 2)))
    with pytest.raises(ValueError, match="unknown detector kind"):
        Ensemble(members=[{"kind": "nope"}]).fit(np.zeros((5, 1)))
    with pytest.raises(ValueError, match="combine"):
        Ensemble(combine="median").fit(np.zeros((5, 1)))
    with pytest.raises(ValueError, match="ensemble"):
        Ensemble(members=[{"kind": "ensemble"}]).fit(np.zeros((5, 1)))


def test_fit_score_samples_equals_fit_then_score_samples():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(800, 4))
    X[3] = 9.0
    for combine in ("mean", "max", "rank"):
        together = Ensemble(combine=combine, random_state=0).fit_score_samples(X)
        np.testing.assert_allclose(together, Ensemble(combine=combine, random_state=0).fit(X).score_samples(X))
