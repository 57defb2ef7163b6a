"""Alerts grouped by any declared field: credential stuffing from one IP against 50 users is one alert, keyed by the
IP, listing the users it touched (it used to be split into one alert per user name, none for the IP)."""

import pytest

from tocsin.engine.outputs import AlertGrouping
from tocsin.engine.pipeline import Pipeline
from tocsin.spec import SpecError, parse_spec

LOGINS = {
    "name": "logins", "source": {"kind": "file", "path": "logins.jsonl"},
    "schema": {"id_field": "id", "key_field": "user", "numeric": ["success"], "categorical": ["user", "ip"]},
    "features": [{"kind": "novelty", "field": "user", "by": "ip"}, {"kind": "window", "windows": ["10m"], "by": "ip"},
                 {"kind": "value", "field": "success"}],
    # the model watches only `success`, which every login has: it stays quiet here and the rule speaks
    "detector": {"kind": "robust_zscore", "features": ["success"], "warmup_events": 100, "train_window": 100, "refit_every": None},
    "rules": [{"name": "credential_stuffing", "when": "ip.user_distinct > 20 and ip.count_10m > 20", "severity": "critical"}],
}


def logins():
    rows = [{"id": f"a{i}", "user": f"u{i % 20}", "ip": f"10.0.0.{i % 20}", "ts": 1_767_571_200.0 + i, "success": True}
            for i in range(200)]
    return rows + [{"id": f"s{i}", "user": f"victim{i}", "ip": "203.0.113.9", "ts": 1_767_571_400.0 + i, "success": True}
                   for i in range(50)]


def alerts_of(spec):
    pipeline, grouping = Pipeline(spec), AlertGrouping(spec)
    scored = pipeline.process_records(logins(), source="api")
    changes = grouping.prepare(scored, pipeline.admission.watermark)  # BatchOutputs
    return {a["alert_key"]: (a, d) for a, d in zip(changes.changes.alerts, changes.changes.details)}, scored


def test_one_attack_from_one_ip_is_one_alert_naming_the_users_it_touched():
    per_user, _ = alerts_of(parse_spec(LOGINS))
    assert len(per_user) == 29, "by default one alert per user name"
    by_ip, scored = alerts_of(parse_spec({**LOGINS, "alerting": {"group_by": "ip"}}))
    ((alert, detail),) = by_ip.values()
    assert alert["entity"] == "203.0.113.9" and alert["count"] == 29 and alert["severity"] == "critical"
    assert detail["attributes"]["members"] == [f"victim{i}" for i in range(21, 50)]
    assert detail["attributes"]["member_count"] == 29
    assert {r["entity"] for r in scored.anomaly_records("rules")} == {f"victim{i}" for i in range(21, 50)}, \
        "the stored anomalies keep the user"


def test_group_by_must_be_a_category_that_viewers_may_see():
    with pytest.raises(SpecError, match=r"alerting.group_by: 'success' is not a categorical field"):
        parse_spec({**LOGINS, "alerting": {"group_by": "success"}})
    sensitive = {**LOGINS["schema"], "sensitive": ["ip"]}
    with pytest.raises(SpecError, match=r"alerting.group_by: 'ip' is sensitive"):
        parse_spec({**LOGINS, "schema": sensitive, "alerting": {"group_by": "ip"}})
