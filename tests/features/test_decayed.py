import math

import numpy as np
import pytest
from hypothesis import given, settings

from tocsin.features.decayed import DecayedStats

from .reference import RefDecayed
from .streams import Interner, check_operator, cuts, make_batch, streams

ALL = ["zscore", "ratio", "mean", "std"]


@pytest.mark.parametrize("by", ["entity", "global", "merchant_id"])
@pytest.mark.parametrize("half_life", [30.0, 86_400.0])
@settings(max_examples=40, deadline=None)
@given(events=streams(), sizes=cuts)
def test_matches_reference_whatever_the_cuts(by, half_life, events, sizes):
    check_operator(
        lambda: DecayedStats("amount", half_life, ALL, by=by),
        lambda: RefDecayed("amount", half_life, ALL, by),
        events,
        sizes,
    )


def _run(amounts, times=None, **kwargs):
    times = times if times is not None else [60.0 * i for i in range(len(amounts))]
    events = [{"key": "a", "time": t, "amount": x, "merchant_id": "m", "city": "x"} for t, x in zip(times, amounts)]
    op, batch = DecayedStats("amount", **kwargs), make_batch(events)
    return op, batch, op.transform_update(batch, Interner().keys(batch))


def test_a_spike_yields_a_large_zscore():
    amounts = [40.0, 55.0, 38.0, 61.0, 47.0, 52.0, 44.0, 4200.0]
    op, batch, out = _run(amounts, half_life=86_400.0, outputs=ALL, this="this card", possessive="this card's")
    z = out.columns["amount_zscore_1d"]
    assert z[-1] > 100 and np.all(np.abs(z[:-1]) < 3)
    assert out.columns["amount_ratio_1d"][-1] == pytest.approx(4200.0 / np.mean(amounts[:-1]), rel=1e-3)
    assert out.context["amount_mean_1d"][-1] == pytest.approx(np.mean(amounts[:-1]), rel=1e-3)
    assert out.context["amount_std_1d"][-1] == pytest.approx(np.std(amounts[:-1]), rel=1e-2)
    assert op.describe("amount_zscore_1d", 7, batch, out) == "amount 4,200 vs this card's usual 32.7–63.5"
    assert op.describe("amount_ratio_1d", 0, batch, out) == "amount 40, first seen for this card"


def test_zscore_needs_two_prior_weight_and_std_floor():
    # a key that always pays 40: std 0, the 0.1*|mean| floor keeps 44 at z = 1
    op, batch, out = _run([40.0, 40.0, 40.0, 44.0], times=[0.0, 0.0, 0.0, 0.0])
    assert out.columns["amount_zscore_1d"].tolist() == [0.0, 0.0, 0.0, pytest.approx(1.0)]
    assert out.columns["amount_ratio_1d"].tolist() == [1.0, 1.0, 1.0, pytest.approx(1.1)]


def test_decay_halves_the_weight_each_half_life():
    op, batch, out = _run([10.0, 10.0, 10.0], times=[0.0, 30.0, 60.0], half_life=30.0)
    assert out.context["amount_weight_30s"].tolist() == [0.0, 0.5, 0.75]
    assert op.key_state(0)["amount_weight_30s"] == 1.75


def test_history_forgotten_when_decay_underflows():
    op, batch, out = _run([10.0, 1e6, 5.0], times=[0.0, 1e6, 1e6 + 1], half_life=1.0)
    assert out.columns["amount_ratio_1s"].tolist() == [1.0, 1.0, 1.0]
    assert out.context["amount_mean_1s"].tolist() == [0.0, 0.0, 1e6 * 2 ** 0]
    assert all(math.isfinite(v) for col in out.context.values() for v in col)


def test_unknown_output_is_refused():
    with pytest.raises(ValueError, match="unknown outputs"):
        DecayedStats("amount", outputs=["median"])
