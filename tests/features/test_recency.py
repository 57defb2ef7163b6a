import pytest
from hypothesis import given, settings

from tocsin.features.recency import Recency, format_seconds

from .reference import RefRecency
from .streams import Interner, check_operator, cuts, make_batch, streams


@pytest.mark.parametrize("by", ["entity", "global", "merchant_id"])
@settings(max_examples=40, deadline=None)
@given(events=streams(), sizes=cuts)
def test_matches_reference_whatever_the_cuts(by, events, sizes):
    check_operator(lambda: Recency(3600.0, by=by), lambda: RefRecency(3600.0, by), events, sizes)


def test_first_event_gets_cap_late_event_zero():
    events = [{"key": "a", "time": t, "amount": 0.0, "merchant_id": "m", "city": "x"} for t in (10.0, 12.0, 11.0, 13.0, 1e5)]
    op = Recency(600.0, this="this card", possessive="this card's")
    batch = make_batch(events)
    out = op.transform_update(batch, Interner().keys(batch))
    assert out.columns["seconds_since_last"].tolist() == [600.0, 2.0, 0.0, 1.0, 600.0]
    assert op.describe("seconds_since_last", 1, batch, out) == "2s since this card's previous event"
    assert op.describe("seconds_since_last", 0, batch, out) == "no event for this card in the previous 10m"
    assert op.key_state(0) == {"last_time": 1e5}


def test_format_seconds():
    assert [format_seconds(s) for s in (0.25, 59.0, 61.0, 86_400.0)] == ["0.25s", "59s", "1.02m", "1d"]
