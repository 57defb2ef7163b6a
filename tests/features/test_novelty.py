import numpy as np
import pytest
from hypothesis import given, settings

from tocsin.features.novelty import Novelty

from .reference import RefNovelty
from .streams import Interner, check_operator, cuts, make_batch, streams


@pytest.mark.parametrize("by, field", [("entity", "merchant_id"), ("global", "city"), ("merchant_id", "city")])
@settings(max_examples=40, deadline=None)
@given(events=streams(), sizes=cuts)
def test_matches_reference_whatever_the_cuts(by, field, events, sizes):
    check_operator(lambda: Novelty(field, by=by), lambda: RefNovelty(field, by), events, sizes)


def test_new_merchant_is_novel_once_then_not():
    merchants = ["m1", "m1", "m2", "m2", "m1", "m2"]
    events = [{"key": "a", "time": float(i), "amount": 0.0, "merchant_id": m, "city": "x"} for i, m in enumerate(merchants)]
    op = Novelty("merchant_id", this="this card")
    batch = make_batch(events)
    out = op.transform_update(batch, Interner().keys(batch))
    assert out.columns["merchant_id_novel"].tolist() == [1, 0, 1, 0, 0, 0]
    assert out.columns["merchant_id_seen_count"].tolist() == [0, 1, 0, 1, 2, 2]
    assert out.columns["merchant_id_distinct"].tolist() == [0, 1, 1, 2, 2, 2]
    assert op.describe("merchant_id_novel", 2, batch, out) == "merchant_id m2 never seen before for this card"
    assert op.describe("merchant_id_novel", 1, batch, out) == "merchant_id m1 seen once before for this card"
    assert op.describe("merchant_id_distinct", 4, batch, out) == "this card had 2 distinct merchant_id values before"


def test_table_grows_and_rehashes_without_losing_counts():
    rng = np.random.default_rng(1)
    events = [
        {"key": f"k{rng.integers(300)}", "time": float(i), "amount": 0.0, "merchant_id": f"m{rng.integers(40)}", "city": "x"}
        for i in range(6000)
    ]
    check_operator(lambda: Novelty("merchant_id"), lambda: RefNovelty("merchant_id"), events, [700] * 8)
    op, interner = Novelty("merchant_id"), Interner()
    for start in range(0, 6000, 700):
        batch = make_batch(events[start : start + 700])
        op.transform_update(batch, interner.keys(batch))
    state = op.state_dict()
    size = len(state["table_keys"])
    assert size > 1024 and size & (size - 1) == 0 and 2 * state["used"][0] <= size
    assert state["used"][0] == np.count_nonzero(state["table_keys"] >= 0) == state["distinct"].sum()
