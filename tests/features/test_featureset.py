
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.state_helpers import through_npz
from tocsin.features.featureset import FeatureSet
from tocsin.spec import parse_spec

from .reference import from_feature_spec, run
from .streams import cuts, make_batch, split, streams

SCHEMA = {"key_field": "card_id", "numeric": ["amount"], "categorical": ["merchant_id", "city"]}

TRANSACTIONS = [
    {"kind": "window", "field": "amount", "windows": ["1m", "1h"]},
    {"kind": "decayed_stats", "field": "amount", "half_life": "1d"},
    {"kind": "recency"},
    {"kind": "velocity", "half_life": "10m"},
    {"kind": "novelty", "field": "merchant_id"},
    {"kind": "novelty", "field": "city"},
    {"kind": "value", "field": "amount", "log": True},
]

# every operator with every kind of key, at time scales the random streams reach
MIXED = [
    {"kind": "window", "field": "amount", "windows": ["10s", "1m"]},
    {"kind": "window", "windows": ["30s"], "by": "global"},
    {"kind": "decayed_stats", "field": "amount", "half_life": "30s", "outputs": ["zscore", "ratio", "mean", "std"]},
    {"kind": "decayed_stats", "field": "amount", "half_life": "1h", "by": "city", "outputs": ["zscore", "mean"]},
    {"kind": "recency", "cap": "1h"},
    {"kind": "recency", "by": "merchant_id"},
    {"kind": "velocity", "half_life": "1m"},
    {"kind": "velocity", "half_life": "1m", "by": "global"},
    {"kind": "velocity", "half_life": "1m", "baseline": "1h", "by": "merchant_id"},
    {"kind": "novelty", "field": "merchant_id"},
    {"kind": "novelty", "field": "city", "by": "merchant_id"},
    {"kind": "value", "field": "amount"},
    {"kind": "value", "field": "amount", "log": True},
    {"kind": "series", "field": "amount", "shift_after": "1m", "slot": "5m", "trend": True, "stuck": True},
    {"kind": "travel", "lat_field": "amount", "lon_field": "amount", "min_seconds": "5s"},
    {"kind": "travel", "lat_field": "amount", "lon_field": "amount", "by": "city"},
    {"kind": "series", "field": "amount", "by": "merchant_id", "metric_field": "city", "season": "weekly", "prior_weight": 0,
     "sustained": 3},
    {"kind": "series", "field": "amount", "by": "global", "season": "none", "shift_after": "1s", "clip_z": 1, "min_spread": 50},
]


def make_spec(features):
    return parse_spec({"name": "t", "source": {"kind": "file", "path": "x.jsonl"}, "schema": SCHEMA, "features": features})


def run_set(features, events, sizes, state_at=None):
    """X of a fresh FeatureSet over ``events`` cut into ``sizes``; with ``state_at``,
    the state is saved through np.savez after that many chunks and loaded into a new set."""
    spec = make_spec(features)
    feature_set = FeatureSet.from_spec(spec)
    parts = []
    for i, chunk in enumerate(split(events, sizes)):
        if i == state_at:
            feature_set = through_npz(feature_set.state_dict(), FeatureSet.from_spec(spec))
        frame = feature_set.transform_update(make_batch(chunk))
        assert frame.X.flags.c_contiguous and frame.X.dtype == np.float64 and np.isfinite(frame.X).all()
        assert frame.names == feature_set.names
        parts.append(frame.X)
    return np.concatenate(parts)


@settings(max_examples=60, deadline=None)
@given(events=streams(), sizes=cuts)
def test_matches_reference_whatever_the_cuts(events, sizes):
    spec = make_spec(MIXED)
    names, rows = run([from_feature_spec(f) for f in spec.features], events)
    assert FeatureSet.from_spec(spec).names == names
    got = run_set(MIXED, events, sizes)
    expected = np.array(rows, dtype=np.float64).reshape(len(events), len(names))
    np.testing.assert_allclose(got, expected, rtol=1e-9, atol=1e-9)
    np.testing.assert_array_equal(got, run_set(MIXED, events, []))


@settings(max_examples=40, deadline=None)
@given(events=streams(), sizes=cuts, state_at=st.integers(0, 8))
def test_state_round_trip_resumes_exactly(events, sizes, state_at):
    np.testing.assert_array_equal(run_set(MIXED, events, sizes, state_at=state_at), run_set(MIXED, events, sizes))


def test_transaction_names():
    assert FeatureSet.from_spec(make_spec(TRANSACTIONS)).names == [
        "count_1m", "amount_sum_1m", "count_1h", "amount_sum_1h",
        "amount_zscore_1d", "amount_ratio_1d",
        "seconds_since_last",
        "velocity_per_min_10m",
        "merchant_id_novel", "merchant_id_seen_count", "merchant_id_distinct", "merchant_id_share",
        "city_novel", "city_seen_count", "city_distinct", "city_share",
        "log_amount",
    ]  # fmt: skip


def _transactions_frame():
    amounts = [40.0, 55.0, 38.0, 61.0, 47.0, 4200.0]
    events = [
        {"key": "card1", "time": 1000.0 + 10 * i, "amount": x, "merchant_id": "M1" if i < 5 else "M123", "city": "x"}
        for i, x in enumerate(amounts)
    ]
    feature_set = FeatureSet.from_spec(make_spec(TRANSACTIONS))
    return feature_set, feature_set.transform_update(make_batch(events))


def test_describe_and_context():
    feature_set, frame = _transactions_frame()
    assert frame.describe("amount_zscore_1d", 5).startswith("amount 4,200 vs this card's usual ")
    assert frame.describe("merchant_id_novel", 5) == "merchant_id M123 never seen before for this card"
    assert frame.describe("count_1m", 5) == "5 events in the last 1m for this card"
    assert frame.describe("seconds_since_last", 5) == "10s since this card's previous event"
    assert frame.describe("log_amount", 5) == "amount 4,200"
    assert set(frame.context) == {"amount_mean_1d", "amount_std_1d", "amount_weight_1d"}
    assert frame.column("count_1m").tolist() == [0, 1, 2, 3, 4, 5]
    with pytest.raises(KeyError, match="no feature"):
        frame.describe("nope", 0)


def test_entity_state():
    feature_set, frame = _transactions_frame()
    state = feature_set.entity_state("card1")
    assert state["count_1m"] == 6 and state["amount_sum_1h"] == pytest.approx(4441.0)
    assert state["last_time"] == 1050.0 and state["merchant_id_distinct"] == 2
    assert state["amount_mean_1d"] == pytest.approx(4441.0 / 6, rel=1e-3) and state["amount_std_1d"] > 1000
    assert state["velocity_per_min_10m"] > 0
    assert feature_set.entity_state("card2") == {}


def test_global_and_categorical_keys_are_named_in_sentences():
    spec = make_spec([{"kind": "window", "windows": ["1m"], "by": "global"}, {"kind": "recency", "by": "merchant_id"}])
    feature_set = FeatureSet.from_spec(spec)
    events = [{"key": k, "time": float(t), "amount": 1.0, "merchant_id": "M1", "city": "x"} for t, k in enumerate("abc")]
    frame = feature_set.transform_update(make_batch(events))
    assert frame.names == ["global.count_1m", "merchant_id.seconds_since_last"]
    assert frame.describe("global.count_1m", 2) == "2 events in the last 1m for all keys"
    assert frame.describe("merchant_id.seconds_since_last", 2) == "1s since this merchant's previous event"


def test_non_finite_values_are_refused_before_any_state_changes():
    feature_set = FeatureSet.from_spec(make_spec(TRANSACTIONS))
    batch = make_batch([{"key": "a", "time": 0.0, "amount": float("nan"), "merchant_id": "m", "city": "x"}])
    with pytest.raises(ValueError, match="'amount' has NaN"):
        feature_set.transform_update(batch)
    assert feature_set.entity_state("a") == {}


def test_empty_batch():
    feature_set = FeatureSet.from_spec(make_spec(TRANSACTIONS))
    frame = feature_set.transform_update(make_batch([]))
    assert frame.X.shape == (0, len(feature_set.names))


def test_repeated_features_are_refused():
    with pytest.raises(ValueError, match="produced twice"):
        FeatureSet.from_spec(make_spec([{"kind": "recency"}, {"kind": "recency", "cap": "1d"}]))


def test_state_of_another_spec_is_refused():
    state = FeatureSet.from_spec(make_spec(TRANSACTIONS)).state_dict()
    with pytest.raises(ValueError, match="saved for features"):
        FeatureSet.from_spec(make_spec(MIXED)).load_state_dict(state)
