"""Tests for src/tocsin/alerting/budget.py and its use by the manager: at most N alerts a day,
spread over the day by a rising cut-off that is visible on the alert and in metrics."""

from __future__ import annotations

from collections import Counter

import numpy as np
from prometheus_client import CollectorRegistry, generate_latest

from tocsin.alerting.budget import DAY, AlertBudget
from tocsin.spec.alerting import AlertingSpec
from tocsin.alerting.manager import AlertManager
from tocsin.alerting.metrics import register_alert_metrics

from tests.alerting.helpers import T0, anomaly


def noisy_days(days: int = 3, per_day: int = 600, seed: int = 0) -> list[dict]:
    """Candidates on distinct cards, evenly over each day, scores in the warning tail [0.999, 1)."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(days * per_day):
        t = T0 + i * DAY / per_day
        score = 1.0 - 0.001 * rng.random() ** 2
        out.append(anomaly(i, f"card{i}", t, score=score, severity="critical" if score >= 0.9999 else "warning"))
    return out


def test_a_noisy_stream_stays_within_50_alerts_a_day_spread_over_the_day() -> None:
    manager = AlertManager(AlertingSpec.model_validate({"budget": {"per_day": 50, "adapt_every": "15m"}}), "tx")
    rows = {}
    events = noisy_days()
    for start in range(0, len(events), 100):
        changes = manager.observe(events[start:start + 100], watermark=events[start + 99]["event_time"])
        rows.update({r["alert_key"]: r for r in changes.alerts})
    per_day = Counter(int(r["event_time"] // DAY) for r in rows.values())
    assert all(n <= 50 for n in per_day.values()) and sum(per_day.values()) >= 100, per_day
    assert manager.budget.cutoff > 0.999  # raised above the warning cut-off it started from
    last_day = [r["event_time"] for r in rows.values() if int(r["event_time"] // DAY) == max(per_day)]
    # adaptive, not just a hard cap: the last day's alerts are not all in its first hours
    assert max(last_day) - min(last_day) > DAY / 2
    cutoffs = {g.budget_cutoff for gs in manager.groups.values() for g in gs if g.is_alert}
    assert cutoffs and all(c is not None and c >= 0.999 for c in cutoffs)


def test_without_a_budget_every_candidate_opens_and_the_cutoff_is_none() -> None:
    manager = AlertManager(AlertingSpec(), "tx")
    changes = manager.observe(noisy_days(days=1, per_day=100), watermark=T0 + DAY)
    assert len(changes.alerts) == 100
    assert all(d["budget_cutoff"] is None for d in changes.details)


def test_the_cutoff_relaxes_back_to_the_base_after_a_burst_day() -> None:
    budget = AlertBudget(per_day=10, base_cutoff=0.99, adapt_every=900)
    for k in range(30):
        budget.admit(T0 + k, 0.999999)
    assert budget.opened_today == 10 and budget.cutoff > 0.99999  # a day's budget spent in 30 s
    for quarter in range(4 * 24, 4 * 36):  # the next day is quiet: a candidate every 15 minutes, none good enough
        budget.admit(T0 + quarter * 900, 0.5)
    assert budget.cutoff == 0.99


def test_budget_state_round_trips() -> None:
    budget = AlertBudget(per_day=5, base_cutoff=0.99)
    for k in range(9):
        budget.admit(T0 + k * 60, 0.9999)
    copy = AlertBudget(per_day=5, base_cutoff=0.99)
    copy.load_state_dict(budget.state_dict())
    assert copy.state_dict() == budget.state_dict()
    assert [copy.admit(T0 + 3600 + k, 0.99999) for k in range(3)] == [budget.admit(T0 + 3600 + k, 0.99999) for k in range(3)]


def test_the_cutoff_is_a_prometheus_gauge() -> None:
    manager = AlertManager(AlertingSpec.model_validate({"budget": {"per_day": 5}}), "tx")
    registry = CollectorRegistry()
    register_alert_metrics(registry, "tx", lambda: manager, pending_deliveries=lambda: 3)
    manager.observe(noisy_days(days=1, per_day=200), watermark=T0 + DAY)
    text = generate_latest(registry).decode()
    line = next(l for l in text.splitlines() if l.startswith('tocsin_alert_budget_cutoff{pipeline="tx"}'))
    assert float(line.split()[-1]) == manager.budget.cutoff > 0.999
    assert 'tocsin_alerts_opened_today{pipeline="tx"} 5.0' in text
    assert 'tocsin_alert_deliveries_pending{pipeline="tx"} 3.0' in text
