import pytest
from hypothesis import given, settings

from tocsin.features.velocity import Velocity

from .reference import RefVelocity
from .streams import Interner, check_operator, cuts, make_batch, streams


@pytest.mark.parametrize("by", ["entity", "global", "city"])
@pytest.mark.parametrize("half_life", [60.0, 600.0])
@settings(max_examples=40, deadline=None)
@given(events=streams(), sizes=cuts)
def test_matches_reference_whatever_the_cuts(by, half_life, events, sizes):
    check_operator(lambda: Velocity(half_life, by=by), lambda: RefVelocity(half_life, by), events, sizes)


def test_steady_rate_converges_to_the_rate():
    # 12 events per minute for an hour, half-life 10m
    events = [{"key": "a", "time": 5.0 * i, "amount": 0.0, "merchant_id": "m", "city": "x"} for i in range(720)]
    op = Velocity(600.0, this="this card")
    batch = make_batch(events)
    out = op.transform_update(batch, Interner().keys(batch))
    assert out.columns["velocity_per_min_10m"][-1] == pytest.approx(12.0, rel=0.02)
    assert op.describe("velocity_per_min_10m", 719, batch, out).endswith("events/min recently for this card")
