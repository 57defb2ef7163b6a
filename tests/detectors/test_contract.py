"""The detector contract, run over every registered detector (scikit-learn's ``check_estimator``).

Every kind in ``DETECTORS`` is built with its entry in ``CONTRACT_PARAMS`` (small
sizes so the module stays fast; a kind that cannot run on its defaults must have
one) and must refuse its entry in ``BAD_PARAMS`` without data. Timestamps are
passed only to kinds whose capabilities say they need them; what a capability
promises (online: batch-cut invariance; per_series: independent columns;
explains: rows x features >= 0) is checked where it is declared.
"""

import numpy as np
import pytest

from tocsin.detectors import (
    DETECTORS,
    Capabilities,
    Detector,
    NotFittedError,
    build_detector,
    check_detector_spec,
    row_pipeline_kinds,
)
from tocsin.spec import SpecError, load_spec

FEATURES = ["f0", "f1", "f2"]

#: Parameters each kind is checked with (like scikit-learn's ``_get_check_estimator_params``).
CONTRACT_PARAMS = {
    "autoencoder": {"hidden": [8], "epochs": 3, "batch_size": 64, "random_state": 0},
    "ensemble": {
        "members": [
            {"kind": "isolation_forest", "params": {"n_estimators": 20}},
            {"kind": "ecod", "params": {}},
            {"kind": "knn", "params": {"n_neighbors": 5}},
        ],
        "random_state": 0,
    },
    "half_space_trees": {"window_size": 50, "random_state": 0},
    "isolation_forest": {"n_estimators": 20, "random_state": 0},
    "knn": {"n_neighbors": 5},
    "lstm_forecaster": {"lookback": 8, "hidden": 8, "epochs": 1, "batch_size": 64, "random_state": 0},
    "rules": {"rules": ["f0 > 5 or f1 < -5", "abs(f0) + abs(f2) > 8"], "features": FEATURES},
}

#: A parameter each kind must refuse without data, and the value it must refuse.
BAD_PARAMS = {
    "auto_seasonal": ("alpha", 7),
    "max_surprise": ("top", 0),
    "autoencoder": ("epochs", 0),
    "ecod": ("max_samples", -5),
    "ensemble": ("combine", "median"),
    "ewma": ("alpha", 7),
    "half_space_trees": ("height", 0),
    "hbos": ("n_bins", 0),
    "isolation_forest": ("n_estimators", -1),
    "knn": ("n_neighbors", 0),
    "lstm_forecaster": ("lookback", 0),
    "robust_zscore": ("min_scale", -1.0),
    "rules": ("rules", ["f0 >"]),
    "seasonal": ("n_buckets", 0),
    "seasonal_forecast": ("gamma", 2.0),
    "timeseries": ("suppress_halflife", -1.0),
    "value_rarity": ("decay", 0.0),
}

KINDS = sorted(DETECTORS)
EXPLAINING = [kind for kind in KINDS if DETECTORS[kind].capabilities.explains]
ONLINE = [kind for kind in KINDS if DETECTORS[kind].capabilities.online]
PER_SERIES = [kind for kind in KINDS if DETECTORS[kind].capabilities.per_series]
HOUR = 3600.0
_rng = np.random.default_rng(0)
TRAIN = _rng.normal(size=(600, 3))
TRAIN_SECONDS = HOUR * np.arange(600)
#: inliers, then one row far out in every column
TEST = np.vstack([_rng.normal(size=(40, 3)), [[9.0, -9.0, 9.0]]])
TEST_SECONDS = HOUR * np.arange(600, 641)
STREAM = _rng.normal(size=(300, 3))
STREAM_SECONDS = HOUR * np.arange(641, 941)


def make(kind: str, **overrides) -> Detector:
    return DETECTORS[kind](**{**CONTRACT_PARAMS.get(kind, {}), **overrides})


def times(detector: Detector, seconds: np.ndarray) -> dict:
    """``timestamps=`` for the kinds that need them, nothing for the others."""
    return {"timestamps": seconds} if detector.capabilities.needs_timestamps else {}


def fitted(kind: str) -> Detector:
    detector = make(kind)
    return detector.fit(TRAIN, **times(detector, TRAIN_SECONDS))


def test_the_parameter_tables_name_registered_kinds_only():
    assert set(CONTRACT_PARAMS) <= set(DETECTORS) and set(BAD_PARAMS) <= set(DETECTORS)


@pytest.mark.parametrize("kind", KINDS)
def test_kind_declares_capabilities_and_has_contract_parameters(kind):
    cls = DETECTORS[kind]
    assert isinstance(vars(cls).get("capabilities"), Capabilities), f"{cls.__name__} must declare its own capabilities"
    assert kind in BAD_PARAMS, f"add a value {kind} must refuse to BAD_PARAMS"
    try:
        cls().check_params(FEATURES)
    except ValueError as error:
        assert kind in CONTRACT_PARAMS, f"{kind} cannot run on its defaults ({error}): add it to CONTRACT_PARAMS"
    cls.from_params(CONTRACT_PARAMS.get(kind, {}), FEATURES)


@pytest.mark.parametrize("kind", KINDS)
def test_not_fitted_before_fit(kind):
    detector = make(kind)
    assert not detector.is_fitted
    with pytest.raises(NotFittedError):
        detector.score_samples(TEST, **times(detector, TEST_SECONDS))
    with pytest.raises(NotFittedError):
        detector.explain(TEST, **times(detector, TEST_SECONDS))
    assert fitted(kind).is_fitted


@pytest.mark.parametrize("kind", KINDS)
def test_scores_are_finite_one_per_row_and_higher_is_more_anomalous(kind):
    detector = fitted(kind)
    scores = detector.score_samples(TEST, **times(detector, TEST_SECONDS))
    assert scores.shape == (len(TEST),) and np.isfinite(scores).all()
    assert scores[-1] > np.median(scores[:-1]), "the row far out in every column must score above the inliers' median"


@pytest.mark.parametrize("kind", EXPLAINING)
def test_explain_is_rows_by_features_and_not_negative(kind):
    detector = fitted(kind)
    contributions = detector.explain(TEST, **times(detector, TEST_SECONDS))
    assert contributions.shape == TEST.shape
    assert np.isfinite(contributions).all() and (contributions >= 0).all()


@pytest.mark.parametrize("kind", KINDS)
def test_save_load_and_state_dict_give_bit_identical_scores(kind, tmp_path):
    detector = fitted(kind)
    detector.save(tmp_path / "model.npz")
    restored = make(kind)
    restored.load_state_dict(detector.state_dict())
    stamps = times(detector, TEST_SECONDS)
    expected = detector.score_samples(TEST, **stamps)
    for copy in (Detector.load(tmp_path / "model.npz"), restored):
        assert type(copy) is type(detector)
        np.testing.assert_array_equal(copy.score_samples(TEST, **stamps), expected)
        np.testing.assert_array_equal(copy.explain(TEST, **stamps), detector.explain(TEST, **stamps))
    if detector.capabilities.online:  # the state is all there is: a restored detector streams on identically
        stamps = times(detector, STREAM_SECONDS)
        expected = detector.score_partial_fit(STREAM, **stamps)
        np.testing.assert_array_equal(restored.score_partial_fit(STREAM, **stamps), expected)


@pytest.mark.parametrize("kind", KINDS)
def test_check_params_refuses_a_bad_value_naming_the_parameter(kind):
    param, value = BAD_PARAMS[kind]
    bad = make(kind, **{param: value})
    with pytest.raises(ValueError, match=rf"^{param}\b"):
        bad.check_params(FEATURES)
    with pytest.raises(ValueError, match=rf"^{param}\b"):  # fit runs the same check
        bad.fit(TRAIN, **times(bad, TRAIN_SECONDS))
    if kind in row_pipeline_kinds():
        with pytest.raises(SpecError, match=rf"^detector\.params\.{param}\b"):
            build_detector(kind, {**CONTRACT_PARAMS.get(kind, {}), param: value}, FEATURES)


@pytest.mark.parametrize("kind", KINDS)
def test_build_detector_refuses_exactly_the_kinds_the_row_pipeline_cannot_drive(kind):
    capabilities = DETECTORS[kind].capabilities
    if capabilities.needs_timestamps or capabilities.needs_labels:
        assert kind not in row_pipeline_kinds()
        with pytest.raises(SpecError, match=rf"^detector\.kind '{kind}' needs .*; use one of \[.*'isolation_forest'"):
            build_detector(kind, CONTRACT_PARAMS.get(kind, {}), FEATURES)
    else:
        assert kind in row_pipeline_kinds()
        assert isinstance(build_detector(kind, CONTRACT_PARAMS.get(kind, {}), FEATURES), DETECTORS[kind])


@pytest.mark.parametrize(
    ("kind", "params", "message"),
    [
        ("seasonal", {}, r"^detector\.kind 'seasonal' needs per-series timestamps"),
        ("isolation_forest", {"n_estimators": -1}, r"^detector\.params\.n_estimators must be a positive int, got -1$"),
        ("rules", {"rules": ["speed > 3"]}, r"^detector\.params\.rules\[0\]: .*unknown column\(s\) \['speed'\]"),
    ],
)
def test_check_detector_spec_refuses_at_load_without_a_pipeline(kind, params, message):
    spec = load_spec("examples/transactions.yaml")
    assert isinstance(check_detector_spec(spec), DETECTORS[spec.detector.kind])
    bad = spec.model_copy(update={"detector": spec.detector.model_copy(update={"kind": kind, "params": params})})
    with pytest.raises(SpecError, match=message):
        check_detector_spec(bad)


def test_an_ensemble_refuses_members_that_need_more_than_rows():
    needy = [kind for kind in KINDS if DETECTORS[kind].capabilities.missing_from_rows() is not None]
    assert needy
    for kind in needy:
        with pytest.raises(SpecError, match=rf"^detector\.params\.members\[0\]: '{kind}' needs "):
            build_detector("ensemble", {"members": [{"kind": kind, "params": {}}]}, FEATURES)


@pytest.mark.parametrize("kind", KINDS)
def test_needs_timestamps_is_truthful(kind):
    detector = make(kind)
    if detector.capabilities.needs_timestamps:
        with pytest.raises(ValueError, match="timestamps"):
            detector.fit(TRAIN)
    else:
        detector.fit(TRAIN)  # rows alone are enough


@pytest.mark.parametrize("kind", ONLINE)
def test_online_scores_do_not_depend_on_batch_cuts(kind):
    whole, cut = fitted(kind), fitted(kind)
    expected = whole.score_partial_fit(STREAM, **times(whole, STREAM_SECONDS))
    cuts = np.sort(np.random.default_rng(1).choice(np.arange(1, len(STREAM)), size=12, replace=False))
    parts = [
        cut.score_partial_fit(STREAM[a:b], **times(cut, STREAM_SECONDS[a:b]))
        for a, b in zip(np.r_[0, cuts], np.r_[cuts, len(STREAM)])
    ]
    np.testing.assert_array_equal(np.concatenate(parts), expected)
    assert cut.state_dict().keys() == whole.state_dict().keys()
    for name, value in whole.state_dict().items():
        np.testing.assert_array_equal(cut.state_dict()[name], value, err_msg=name)


@pytest.mark.parametrize("kind", PER_SERIES)
def test_per_series_columns_are_scored_independently(kind):
    detector = make(kind)
    together = detector.score_partial_fit(STREAM, **times(detector, STREAM_SECONDS))
    alone = [make(kind).score_partial_fit(STREAM[:, [j]], **times(detector, STREAM_SECONDS)) for j in range(STREAM.shape[1])]
    np.testing.assert_array_equal(together, np.fmax.reduce(np.stack(alone), axis=0))
