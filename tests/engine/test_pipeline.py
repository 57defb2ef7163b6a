"""The Pipeline: warm-up, scores, decisions, explanations, state round trip."""

import numpy as np
import pytest

from tocsin.detectors import DETECTORS, row_pipeline_kinds
from tocsin.engine.pipeline import Pipeline
from tocsin.simulate import TransactionSimulator
from tocsin.spec import SpecError, parse_spec

from .conftest import small_spec_dict


def stream(spec, n):
    return TransactionSimulator.from_spec(spec.source).generate(n)


def run(pipeline, events, size=1_000):
    return [pipeline.process(events.take(slice(i, i + size))) for i in range(0, len(events), size)]


def test_warmup_then_scores(small_spec):
    pipeline = Pipeline(small_spec)
    outputs = run(pipeline, stream(small_spec, 8_000))
    first, last = outputs[0], outputs[-1]
    assert not first.scored.any() and np.isnan(first.score).all() and not first.is_anomaly.any()
    assert last.scored.all()
    assert ((last.score >= 0) & (last.score <= 1)).all()
    assert pipeline.is_warm
    assert sum(int(o.scored.sum()) for o in outputs) == 8_000 - small_spec.detector.warmup_events


def test_anomalies_carry_severity_and_explanations(small_spec):
    pipeline = Pipeline(small_spec)
    outputs = run(pipeline, stream(small_spec, 10_000))
    flagged = [(o, r) for o in outputs for r in o.anomaly_rows.tolist()]
    assert flagged, "the simulated fraud should produce anomalies"
    for out, row in flagged:
        assert out.score[row] >= small_spec.threshold.value
        assert out.severity_name(row) in ("info", "warning", "critical")
        explanation = out.explanations[row]
        assert 1 <= len(explanation) <= 3
        assert all(item["text"] and item["feature"] in pipeline.feature_names for item in explanation)
    record = flagged[0][0].anomaly_records("isolation_forest")[0]
    assert record["fields"]["tx_id"] == record["event_id"] if "tx_id" in record["fields"] else record["fields"]["id"] == record["event_id"]
    assert 0 <= record["score_100"] <= 100


def test_fraud_scores_higher_than_legit(small_spec):
    pipeline = Pipeline(small_spec)
    outputs = run(pipeline, stream(small_spec, 15_000))
    scores = np.concatenate([o.score[o.scored] for o in outputs])
    labels = np.concatenate([o.events.labels[o.scored] for o in outputs])
    assert labels.sum() > 20
    assert np.median(scores[labels == 1]) > np.quantile(scores[labels == 0], 0.9)


def test_state_round_trip_continues_identically(small_spec):
    events = stream(small_spec, 6_000)
    whole = Pipeline(small_spec)
    expected = run(whole, events)
    first = Pipeline(small_spec)
    run(first, events.take(slice(0, 3_000)))
    resumed = Pipeline(small_spec)
    resumed.load_state_dict({k: np.array(v) for k, v in first.state_dict().items()})
    got = run(resumed, events.take(slice(3_000, None)))
    np.testing.assert_array_equal(np.concatenate([o.score for o in got]), np.concatenate([o.score for o in expected[3:]]))


def test_state_dict_is_a_snapshot_that_later_batches_do_not_change(small_spec):
    """The Kafka worker writes checkpoints in the background while it goes on scoring."""
    events = stream(small_spec, 8_000)
    pipeline = Pipeline(small_spec)
    run(pipeline, events.take(slice(0, 4_000)))
    snapshot = pipeline.state_dict()
    frozen = {k: v.copy() for k, v in snapshot.items()}
    run(pipeline, events.take(slice(4_000, None)))
    assert pipeline.state_dict()["pipeline/meta"] != snapshot["pipeline/meta"]
    for key, value in frozen.items():
        np.testing.assert_array_equal(snapshot[key], value, err_msg=key)


def test_state_round_trip_during_warmup(small_spec):
    events = stream(small_spec, 4_000)
    whole = Pipeline(small_spec)
    expected = run(whole, events)
    first = Pipeline(small_spec)
    run(first, events.take(slice(0, 1_000)))
    resumed = Pipeline(small_spec)
    resumed.load_state_dict(first.state_dict())
    got = run(resumed, events.take(slice(1_000, None)))
    np.testing.assert_array_equal(np.concatenate([o.raw_score for o in got]), np.concatenate([o.raw_score for o in expected[1:]]))


def test_checkpoint_of_another_pipeline_is_refused(tmp_path, small_spec):
    state = Pipeline(small_spec).state_dict()
    data = small_spec_dict(tmp_path)
    data["features"] = data["features"][:2]
    data["detector"]["features"] = None
    with pytest.raises(ValueError, match="delete the checkpoint"):
        Pipeline(parse_spec(data)).load_state_dict(state)


def test_unknown_detector_feature_names_the_choices(tmp_path):
    data = small_spec_dict(tmp_path)
    data["detector"]["features"] = ["amount_zscore_7d", "nonsense"]
    with pytest.raises(SpecError, match="detector.features.*nonsense"):
        Pipeline(parse_spec(data))


def test_bad_detector_params_are_a_spec_error(tmp_path):
    data = small_spec_dict(tmp_path)
    data["detector"]["params"] = {"n_trees": 5}
    with pytest.raises(SpecError, match="detector.params"):
        Pipeline(parse_spec(data))


def test_records_with_bad_rows_go_to_dead_letters(small_spec):
    pipeline = Pipeline(small_spec)
    good = {"tx_id": "t1", "card_id": "c1", "ts": 1.0, "amount": 5.0, "merchant_id": "m", "merchant_category": "food",
            "city": "x", "channel": "pos"}
    scored = pipeline.process_records([good, {**good, "tx_id": "t2", "amount": "lots"}])
    assert scored.events.ids.tolist() == ["t1"]
    assert len(scored.dead_letters) == 1 and "amount" in scored.dead_letters[0].reason


def test_unknown_detector_kind_names_the_choices(tmp_path):
    data = small_spec_dict(tmp_path)
    data["detector"]["kind"] = "crystal_ball"
    with pytest.raises(SpecError, match="detector.kind 'crystal_ball'.*isolation_forest"):
        Pipeline(parse_spec(data))


def test_decisions_do_not_depend_on_batch_cuts(small_spec):
    """Calibration, threshold and refits move at fixed event counts, so any cutting gives the same result."""
    events = stream(small_spec, 12_000)
    expected = Pipeline(small_spec)
    reference = expected.process(events)
    rng = np.random.default_rng(5)
    cuts = np.sort(rng.choice(np.arange(1, len(events)), size=40, replace=False))
    pipeline = Pipeline(small_spec)
    parts = [pipeline.process(events.take(slice(a, b))) for a, b in zip(np.r_[0, cuts], np.r_[cuts, len(events)])]
    np.testing.assert_array_equal(np.concatenate([p.raw_score for p in parts]), reference.raw_score)
    np.testing.assert_array_equal(np.concatenate([p.score for p in parts]), reference.score)
    np.testing.assert_array_equal(np.concatenate([p.is_anomaly for p in parts]), reference.is_anomaly)
    assert pipeline.fits == expected.fits >= 2


@pytest.mark.parametrize("kind", sorted(set(DETECTORS) - set(row_pipeline_kinds())))
def test_kinds_the_row_pipeline_cannot_drive_are_refused_at_construction(tmp_path, kind):
    data = small_spec_dict(tmp_path)
    data["detector"].update(kind=kind, params={})
    with pytest.raises(SpecError, match=rf"detector\.kind '{kind}' needs per-series timestamps.*use one of \[.*'isolation_forest'"):
        Pipeline(parse_spec(data))


def test_the_timestamp_detectors_are_the_ones_refused():
    assert {"seasonal", "seasonal_forecast", "timeseries"} <= set(DETECTORS) - set(row_pipeline_kinds())


@pytest.mark.parametrize(
    ("kind", "params", "message"),
    [
        ("isolation_forest", {"n_estimators": -1}, r"detector\.params\.n_estimators must be a positive int, got -1"),
        ("isolation_forest", {"n_trees": 5}, r"detector\.params\.n_trees is not a parameter of isolation_forest"),
        ("ewma", {"alpha": 7}, r"detector\.params\.alpha must be a positive number and at most 1\.0, got 7"),
        ("rules", {"rules": ["count_1m >"]}, r"detector\.params\.rules\[0\]: .*not a valid expression"),
        ("rules", {"rules": ["speed > 3"]}, r"detector\.params\.rules\[0\]: .*unknown column\(s\) \['speed'\]"),
    ],
)
def test_bad_detector_param_values_are_refused_at_construction(tmp_path, kind, params, message):
    data = small_spec_dict(tmp_path)
    data["detector"].update(kind=kind, params=params)
    with pytest.raises(SpecError, match=rf"^invalid pipeline spec: {message}"):
        Pipeline(parse_spec(data))


def test_rules_read_the_pipeline_feature_names(tmp_path):
    data = small_spec_dict(tmp_path)
    data["detector"].update(kind="rules", params={"rules": ["count_1m > 5 or abs(amount_zscore_30d) > 6"]})
    spec = parse_spec(data)
    pipeline = Pipeline(spec)
    assert pipeline.detector.features == pipeline.feature_names
    outputs = run(pipeline, stream(spec, 3_000))
    assert outputs[-1].scored.all() and np.isfinite(outputs[-1].raw_score).all()
