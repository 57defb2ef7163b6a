"""Rules beside the model: a rule hit is an anomaly by definition, with the rule's severity and text, whatever the
calibrated score (a rule that fired on every impossible-travel login was once calibrated down under the threshold),
from the first event; a rule naming a feature that does not exist fails at load."""

import numpy as np
import pytest

from tocsin.engine.pipeline import Pipeline
from tocsin.spec import SpecError, parse_spec

from .test_key_as_category import SPEC, logins

RULES = [{"name": "credential_stuffing", "when": "ip.user_distinct > 20 and ip.count_10m > 20", "severity": "critical"}]


def test_a_rule_hit_is_an_anomaly_with_its_severity_and_text_even_while_the_model_warms_up():
    spec = parse_spec({**SPEC, "rules": RULES, "detector": {**SPEC["detector"], "warmup_events": 1_000, "train_window": 1_000}})
    scored = Pipeline(spec).process_records(logins(), source="api")
    assert not Pipeline(spec).is_warm and np.isnan(scored.score[:200]).all(), "the model is still warming up"
    flagged = scored.anomaly_rows
    assert scored.events.ids[flagged].tolist() == [f"s{i}" for i in range(21, 50)]
    assert all(scored.severity_name(r) == "critical" and scored.score[r] >= spec.severity.critical for r in flagged)
    record = scored.anomaly_records("robust_zscore")[0]
    assert record["explanation"][0] == {"feature": "rule:credential_stuffing", "value": 1.0, "contribution": 1.0,
                                        "text": "rule credential_stuffing: ip.user_distinct > 20 and ip.count_10m > 20"}
    assert np.isfinite(record["raw_score"])


def test_a_rule_is_not_calibrated_away_when_the_model_ranks_its_events_low():
    # the model learns login volume per IP while busy office NATs log in more often than the stuffing IP will try
    busy = [{"id": f"n{i}", "user": f"staff{i % 3}", "ip": f"198.51.100.{i % 4}", "ts": 1_767_571_200.0 + i / 2, "success": True}
            for i in range(400)]
    rows = sorted(logins() + busy, key=lambda r: r["ts"])
    model = {**SPEC["detector"], "features": ["ip.count_10m"], "warmup_events": 600, "train_window": 600}
    plain = Pipeline(parse_spec({**SPEC, "detector": model})).process_records(rows, source="api")
    hybrid = Pipeline(parse_spec({**SPEC, "detector": model, "rules": RULES})).process_records(rows, source="api")
    stuffing = np.isin(hybrid.events.ids, [f"s{i}" for i in range(21, 50)])
    assert not plain.is_anomaly[stuffing].any(), "the model alone calls none of them an anomaly"
    assert hybrid.is_anomaly[stuffing].all() and (hybrid.severity[stuffing] == 2).all()
    np.testing.assert_array_equal(hybrid.is_anomaly[~stuffing], plain.is_anomaly[~stuffing])
    np.testing.assert_array_equal(hybrid.raw_score[~stuffing], plain.raw_score[~stuffing])


def test_a_rule_over_a_feature_that_does_not_exist_fails_at_load_with_the_choices():
    with pytest.raises(SpecError, match=r"rules.0.when names \['ip.failed_mean_10m'\], which no feature produces; choose from"):
        Pipeline(parse_spec({**SPEC, "rules": [{"name": "x", "when": "ip.failed_mean_10m > 0.5"}]}))
    with pytest.raises(SpecError, match=r"rules.0.when: rule 'ip.count_10m > \"many\"'"):
        Pipeline(parse_spec({**SPEC, "rules": [{"name": "x", "when": 'ip.count_10m > "many"'}]}))


def test_impossible_travel_is_a_critical_anomaly_from_a_rule_over_travel_speed():
    """Eight logins an hour apart alternate between Paris and Singapore among ordinary ones from home: each of them is
    flagged critical by the rule, with the distance and speed in its explanation."""
    spec = parse_spec({
        "name": "logins", "source": {"kind": "file", "path": "x.jsonl"},
        "schema": {"id_field": "id", "key_field": "user", "numeric": ["lat", "lon"]},
        "features": [{"kind": "travel", "lat_field": "lat", "lon_field": "lon"}, {"kind": "recency"}],
        "detector": {"kind": "robust_zscore", "features": ["seconds_since_last"], "warmup_events": 100, "train_window": 100,
                     "refit_every": None},
        "rules": [{"name": "impossible_travel", "when": "travel_speed_kmh > 1000", "severity": "critical"}],
    })
    home, far = (48.8566, 2.3522), (1.3521, 103.8198)
    rows = [{"id": f"h{i}", "user": f"u{i % 10}", "ts": 1_767_571_200.0 + 60 * i, "lat": home[0], "lon": home[1]} for i in range(300)]
    rows += [{"id": f"t{i}", "user": "u0", "ts": 1_767_571_200.0 + 20_000 + 3_600 * i, "lat": (far if i % 2 == 0 else home)[0],
              "lon": (far if i % 2 == 0 else home)[1]} for i in range(8)]
    scored = Pipeline(spec).process_records(rows, source="api")
    flagged = set(scored.events.ids[scored.anomaly_rows].tolist())
    assert {f"t{i}" for i in range(8)} <= flagged
    record = next(r for r in scored.anomaly_records("robust_zscore") if r["event_id"] == "t3")
    assert record["severity"] == "critical" and record["explanation"][0]["text"] == "rule impossible_travel: travel_speed_kmh > 1000"
