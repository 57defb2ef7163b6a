import pytest
from hypothesis import given, settings

from tocsin.features.windows import WindowCounter

from .reference import RefWindow
from .streams import Interner, check_operator, cuts, make_batch, run_operator, streams


@pytest.mark.parametrize("by", ["entity", "global", "city"])
@pytest.mark.parametrize("field", [None, "amount"])
@settings(max_examples=40, deadline=None)
@given(events=streams(), sizes=cuts)
def test_matches_reference_whatever_the_cuts(by, field, events, sizes):
    windows = [60.0, 10.0, 3600.0]
    check_operator(lambda: WindowCounter(windows, field=field, by=by), lambda: RefWindow(windows, field, by), events, sizes)


def test_count_1m_counts_a_burst():
    events = [{"key": "a", "time": 1000.0 + i, "amount": 1.0, "merchant_id": "m", "city": "x"} for i in range(7)]
    events.append({"key": "a", "time": 1100.0, "amount": 1.0, "merchant_id": "m", "city": "x"})
    counts = run_operator(lambda: WindowCounter([60.0], field="amount"), events, [3])[:, 0]
    assert counts.tolist() == [0, 1, 2, 3, 4, 5, 6, 0]


def test_event_exactly_one_window_ago_is_out():
    events = [{"key": "a", "time": t, "amount": 2.0, "merchant_id": "m", "city": "x"} for t in (0.0, 60.0, 119.5)]
    out = run_operator(lambda: WindowCounter([60.0], field="amount"), events, [])
    assert out.tolist() == [[0.0, 0.0], [0.0, 0.0], [1.0, 2.0]]


def test_node_pool_reuses_freed_nodes():
    op, interner = WindowCounter([10.0]), Interner()
    for start in range(0, 10_000, 100):
        events = [{"key": "ab"[i % 2], "time": float(start + i), "amount": 0.0, "merchant_id": "m", "city": "x"} for i in range(100)]
        batch = make_batch(events)
        op.transform_update(batch, interner.keys(batch))
    # at most ~10 live nodes per key plus one batch of headroom, not 10,000
    assert len(op.state_dict()["node_time"]) < 500


def test_state_dict_rejects_other_windows():
    with pytest.raises(ValueError, match="windows"):
        WindowCounter([60.0]).load_state_dict(WindowCounter([30.0]).state_dict())


def test_describe_sum():
    events = [{"key": "a", "time": float(t), "amount": 1500.0, "merchant_id": "m", "city": "x"} for t in range(3)]
    op, interner = WindowCounter([60.0], field="amount", this="this card"), Interner()
    batch = make_batch(events)
    out = op.transform_update(batch, interner.keys(batch))
    assert op.describe("amount_sum_1m", 2, batch, out) == "amount 3,000 in total over the last 1m for this card"
    assert op.describe("count_1m", 2, batch, out) == "2 events in the last 1m for this card"
    assert op.key_state(0) == {"count_1m": 3.0, "amount_sum_1m": 4500.0}
    assert op.key_state(5) == {}
