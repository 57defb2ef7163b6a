"""Derived fields: `is_error: status >= 500` and `hour: hour_of_day(ts)` are numeric fields every later step reads;
a value that is not a number is a dead letter naming the field; a mistake fails at load with the choices."""

import numpy as np
import pytest

from tocsin.engine.pipeline import Pipeline
from tocsin.spec import SpecError, parse_spec

SPEC = {
    "name": "requests", "source": {"kind": "file", "path": "x.jsonl"},
    "schema": {"id_field": "id", "key_field": "service", "numeric": ["status", "bytes", "seconds"],
               "derived": {"is_error": "status >= 500", "hour": "hour_of_day(ts)", "rate": "bytes / seconds",
                           "big_error": "is_error and rate > 1000"}},
    "features": [{"kind": "decayed_stats", "field": "is_error", "half_life": "10m", "outputs": ["mean"]},
                 {"kind": "value", "field": "hour"}, {"kind": "value", "field": "big_error"}],
    "detector": {"kind": "robust_zscore", "warmup_events": 100, "train_window": 100, "refit_every": None},
}


def test_derived_fields_are_numeric_fields_for_everything_after_them():
    records = [{"id": f"r{i}", "service": "api", "ts": 1_767_571_200.0 + 900 * i, "status": 503 if i % 4 == 0 else 200,
                "bytes": 5_000.0, "seconds": 1.0 + (i % 2)} for i in range(200)]
    records[7]["seconds"] = 0.0  # 5,000 / 0: not a number for that event
    scored = Pipeline(parse_spec(SPEC)).process_records(records, source="api")
    (letter,) = scored.dead_letters
    assert letter.code == "not_finite" and "derived field `rate` = bytes / seconds" in letter.reason and letter.position == 7
    events = scored.events
    assert events.numeric["is_error"].tolist()[:5] == [1.0, 0.0, 0.0, 0.0, 1.0]
    assert events.numeric["hour"].tolist()[:5] == [0.0, 0.0, 0.0, 0.0, 1.0]
    np.testing.assert_array_equal(events.numeric["big_error"], (events.numeric["is_error"] == 1) & (events.numeric["rate"] > 1000))
    assert scored.features.column("hour").tolist()[:5] == [0.0, 0.0, 0.0, 0.0, 1.0]


@pytest.mark.parametrize("derived, message", [
    ({"is_error": "code >= 500"}, r"derived.is_error: \['code'\] are not numeric fields"),
    ({"status": "bytes * 2"}, r"derived: 'status' is already declared"),
    ({"is_error": "status >= '5xx'"}, r"derived.is_error: rule .* only numeric constants"),
    ({"a": "b + 1", "b": "status"}, r"derived.a: \['b'\] are not numeric fields .* or a derived field above it"),
])
def test_a_derived_field_mistake_fails_at_load(derived, message):
    with pytest.raises(SpecError, match=message):
        parse_spec({**SPEC, "schema": {**SPEC["schema"], "derived": derived}, "features": [{"kind": "value", "field": "status"}]})
