"""Tests for src/tocsin/features/navigation.py: the pace's regularity and the rarity of page-to-page steps."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings

from tocsin.features.navigation import (
    LEARN_AFTER,
    LEARN_BELOW,
    MIN_GAP,
    NO_SPREAD,
    Navigation,
)
from tocsin.spec import parse_spec

from .reference import key_of, prefix_of
from .streams import Interner, check_operator, cuts, make_batch, streams


class RefNavigation:
    """Plain-Python reference of :class:`Navigation`: one event at a time, dicts for state."""

    def __init__(self, field, span=10, max_gap=1_800.0, rare_below=2, min_known=5, by="entity"):
        self.field, self.span, self.max_gap, self.rare_below, self.min_known, self.by = field, span, max_gap, rare_below, min_known, by
        p = prefix_of(by)
        self.names = [f"{p}gap_log_std", f"{p}gaps", f"{p}{field}_rare_step_share", f"{p}{field}_known_steps"]
        self.keys: dict[str, dict] = {}
        self.steps: dict[tuple[str, str], int] = {}
        self.leaves: dict[str, int] = {}

    def step(self, event):
        k = key_of(event, self.by)
        value, t = event[self.field], event["time"]
        s = self.keys.get(k)
        if s is None:
            s = self.keys[k] = {"last": t, "value": value, "gaps": 0, "mean": 0.0, "var": 0.0, "steps": 0, "rare": 0.0}
        else:
            gap = max(0.0, t - s["last"])
            if gap <= self.max_gap:
                x = math.log(max(gap, MIN_GAP)) if gap > MIN_GAP else math.log(MIN_GAP)
                s["gaps"] += 1
                a = max(1.0 / s["gaps"], 1.0 / self.span)
                delta = x - s["mean"]
                s["mean"] += a * delta
                s["var"] = (1.0 - a) * (s["var"] + a * delta * delta)
                pair = (s["value"], value)
                learn = s["steps"] < LEARN_AFTER or s["rare"] < LEARN_BELOW
                if self.leaves.get(s["value"], 0) >= self.min_known:
                    rare = 1.0 if self.steps.get(pair, 0) < self.rare_below else 0.0
                    s["steps"] += 1
                    a = max(1.0 / s["steps"], 1.0 / self.span)
                    s["rare"] += a * (rare - s["rare"])
                if learn:
                    self.steps[pair] = self.steps.get(pair, 0) + 1
                    self.leaves[s["value"]] = self.leaves.get(s["value"], 0) + 1
            s["last"] = max(s["last"], t)
            s["value"] = value
        spread = math.sqrt(s["var"]) if s["gaps"] >= 2 else NO_SPREAD
        return [spread, float(s["gaps"]), s["rare"], float(s["steps"])]


@pytest.mark.parametrize("by, span, max_gap, rare_below, min_known", [
    ("entity", 10, 1_800.0, 2, 5), ("entity", 3, 60.0, 1, 0), ("global", 5, 300.0, 3, 2), ("city", 10, 1e9, 2, 1),
])
@settings(max_examples=40, deadline=None)
@given(events=streams(), sizes=cuts)
def test_matches_reference_whatever_the_cuts(by, span, max_gap, rare_below, min_known, events, sizes):
    check_operator(lambda: Navigation("merchant_id", span, max_gap, rare_below, min_known, by=by),
                   lambda: RefNavigation("merchant_id", span, max_gap, rare_below, min_known, by), events, sizes)


def _events(key: str, times: list[float], pages: list[str]) -> list[dict]:
    return [{"key": key, "time": t, "amount": 0.0, "merchant_id": p, "city": "x"} for t, p in zip(times, pages)]


def test_a_regular_script_has_a_tiny_spread_and_a_person_does_not():
    rng = np.random.default_rng(3)
    script = np.cumsum(5.0 * (1 + rng.uniform(-0.03, 0.03, size=30)))
    person = np.cumsum(np.exp(np.log(14.0) + 1.1 * rng.normal(size=30)))
    events = _events("bot", script.tolist(), ["/"] * 30) + _events("ann", person.tolist(), ["/"] * 30)
    events.sort(key=lambda e: e["time"])
    op = Navigation("merchant_id")
    batch = make_batch(events)
    out = op.transform_update(batch, Interner().keys(batch))
    last = {k: max(i for i, e in enumerate(events) if e["key"] == k) for k in ("bot", "ann")}
    assert out.columns["gap_log_std"][last["bot"]] < 0.05
    assert out.columns["gap_log_std"][last["ann"]] > 0.5
    assert out.columns["gaps"][last["bot"]] == 29


def test_steps_people_take_are_common_and_a_crawl_in_id_order_is_rare():
    # 30 people go home -> category -> product the same way; then a crawler walks products in id order
    events = []
    for i in range(30):
        events += _events(f"p{i}", [100.0 * i, 100.0 * i + 10, 100.0 * i + 20], ["/", "/c/shoes", f"/p/{i % 3}"])
    for i in range(3):  # every product page is left often enough to be judged
        events += _events(f"q{i}", [5_000.0 + 50 * i + j for j in range(12)], [f"/p/{i}", "/c/shoes"] * 6)
    crawl = [f"/p/{i % 3}" for i in range(20)]
    events += _events("crawler", [9_000.0 + 7 * j for j in range(20)], crawl)
    op = Navigation("merchant_id", rare_below=2, min_known=5)
    batch = make_batch(events)
    out = op.transform_update(batch, Interner().keys(batch))
    person = [i for i, e in enumerate(events) if e["key"] == "p29"]
    crawler = [i for i, e in enumerate(events) if e["key"] == "crawler"]
    assert out.columns["merchant_id_rare_step_share"][person[-1]] == 0.0
    # the crawler's steps p0 -> p1 -> p2 -> p0 repeat, but a mostly-rare key does not teach the graph: still rare
    assert out.columns["merchant_id_rare_step_share"][crawler[-1]] == 1.0
    assert out.columns["merchant_id_known_steps"][crawler[-1]] == 19
    assert "were taken by no one" in op.describe("merchant_id_rare_step_share", crawler[-1], batch, out)


def test_state_round_trips_and_a_long_gap_is_a_new_visit():
    events = _events("a", [0.0, 10.0, 20.0, 5_000.0, 5_010.0], ["/", "/c", "/p", "/", "/c"])
    op, interner = Navigation("merchant_id", max_gap=1_800.0), Interner()
    first = make_batch(events[:3])
    op.transform_update(first, interner.keys(first))
    restored = Navigation("merchant_id", max_gap=1_800.0)
    restored.load_state_dict(op.state_dict())
    rest = make_batch(events[3:])
    keys = interner.keys(rest)
    a, b = op.transform_update(rest, keys), restored.transform_update(rest, keys)
    assert all(a.columns[n].tolist() == b.columns[n].tolist() for n in op.names)
    assert a.columns["gaps"].tolist() == [2.0, 3.0]  # the 4,980 s gap is not a gap of the visit


def test_spec_kind_navigation_builds_the_operator():
    spec = parse_spec({
        "name": "nav", "source": {"kind": "file", "path": "x.jsonl"},
        "schema": {"key_field": "visitor_id", "categorical": ["page"]},
        "features": [{"kind": "navigation", "page_field": "page", "span": 8, "max_gap": "10m", "min_known": 3}],
    }, "test")
    from tocsin.features.featureset import FeatureSet

    features = FeatureSet.from_spec(spec)
    assert features.names == ["gap_log_std", "gaps", "page_rare_step_share", "page_known_steps"]
    assert "page" in features.categorical_fields
    (op,) = features.operators
    assert (op.span, op.max_gap, op.rare_below, op.min_known) == (8, 600.0, 2, 3)


@pytest.mark.parametrize("params", [dict(span=1), dict(max_gap=0), dict(rare_below=0), dict(min_known=-1)])
def test_bad_parameters_fail(params):
    with pytest.raises(ValueError):
        Navigation("merchant_id", **params)
