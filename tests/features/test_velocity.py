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


@pytest.mark.parametrize("by", ["entity", "city"])
@settings(max_examples=40, deadline=None)
@given(events=streams(), sizes=cuts)
def test_burst_ratio_matches_reference_whatever_the_cuts(by, events, sizes):
    check_operator(
        lambda: Velocity(60.0, by=by, baseline=3600.0), lambda: RefVelocity(60.0, by, 3600.0), events, sizes
    )


def test_burst_ratio_sees_a_burst_against_the_usual_rate():
    # one event an hour for a day, then 20 in two minutes
    events = [{"key": "m", "time": 3600.0 * i, "amount": 0.0, "merchant_id": "m", "city": "x"} for i in range(24)]
    events += [{"key": "m", "time": 86400.0 + 6.0 * i, "amount": 0.0, "merchant_id": "m", "city": "x"} for i in range(20)]
    op = Velocity(600.0, baseline=86400.0, this="this merchant")
    batch = make_batch(events)
    out = op.transform_update(batch, Interner().keys(batch))
    ratio = out.columns["velocity_ratio_10m_1d"]
    assert ratio[23] < 2 and ratio[-1] > 10
    assert op.describe("velocity_ratio_10m_1d", 43, batch, out).endswith("the usual rate of events for this merchant")


def test_steady_rate_converges_to_the_rate():
    # 12 events per minute for an hour, half-life 10m
    events = [{"key": "a", "time": 5.0 * i, "amount": 0.0, "merchant_id": "m", "city": "x"} for i in range(720)]
    op = Velocity(600.0, this="this card")
    batch = make_batch(events)
    out = op.transform_update(batch, Interner().keys(batch))
    assert out.columns["velocity_per_min_10m"][-1] == pytest.approx(12.0, rel=0.02)
    assert op.describe("velocity_per_min_10m", 719, batch, out).endswith("events/min recently for this card")
