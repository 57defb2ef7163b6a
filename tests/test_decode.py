"""Decoding: one pass to columns; every bad record becomes a dead letter with its reason."""

import math

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tocsin.decode import RAW_FIELD, Decoder
from tocsin.spec import SchemaSpec

SCHEMA = SchemaSpec(
    id_field="tx_id", key_field="card_id", time_field="ts",
    numeric=["amount"], categorical=["merchant_id"], label_field="is_fraud", max_event_bytes=300,
)


def line(i, **overrides):
    record = {"tx_id": f"t{i}", "card_id": "c1", "ts": 1000.0 + i, "amount": 10.0 + i, "merchant_id": "m1", "is_fraud": 0}
    record.update(overrides)
    import json

    return json.dumps(record).encode()


def test_good_lines_become_columns():
    batch, dead = Decoder(SCHEMA).decode_lines([line(0), line(1, extra_field="kept")])
    assert dead == []
    assert batch.ids.tolist() == ["t0", "t1"]
    assert batch.numeric["amount"].dtype == np.float64
    assert batch.numeric["amount"].tolist() == [10.0, 11.0]
    assert batch.categorical["merchant_id"].tolist() == ["m1", "m1"]
    assert batch.labels.tolist() == [0, 0]
    assert b"extra_field" in batch.extra[RAW_FIELD][1]


def test_integer_ids_and_categories_become_text():
    batch, _ = Decoder(SCHEMA).decode_lines([line(0, tx_id=17, merchant_id=5)])
    assert batch.ids.tolist() == ["17"] and batch.categorical["merchant_id"].tolist() == ["5"]


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"{not json", "malformed"),
        (line(1, amount="12"), "field `amount`: expected a number, got `str`"),
        (line(1, ts=None), "field `ts`: expected a number, got `null`"),
        (line(1, card_id=""), "field `card_id` is empty"),
        (line(1).replace(b"11.0", b"1e999"), "field `amount`: number out of range"),
        (b"", "truncated"),
        (line(1) + b" " + line(2), "trailing characters"),
        (b'{"tx_id": "t1", "card_id": "c1", "ts": 1, "merchant_id": "m"}', "missing required field `amount`"),
        (line(1, padding="x" * 400), "over the 300-byte limit"),
        (b"[1, 2]", "Expected `object`"),
    ],
)
def test_bad_record_is_a_dead_letter_and_the_rest_goes_on(raw, reason):
    decoder = Decoder(SCHEMA, source="unit")
    batch, dead = decoder.decode_lines([line(0), raw, line(2)], positions=np.array([10, 11, 12]))
    assert batch.ids.tolist() == ["t0", "t2"]
    assert batch.positions.tolist() == [10, 12]
    assert len(dead) == 1
    assert dead[0].position == 11 and dead[0].source == "unit" and dead[0].raw == raw
    assert reason in dead[0].reason


def test_nan_in_python_dicts_is_a_dead_letter():
    records = [{"tx_id": "a", "card_id": "c", "ts": 1, "amount": math.nan, "merchant_id": "m"},
               {"tx_id": "b", "card_id": "c", "ts": 1, "amount": math.inf, "merchant_id": "m"},
               {"tx_id": "c", "card_id": "c", "ts": 1, "amount": 3, "merchant_id": "m"}]
    batch, dead = Decoder(SCHEMA).decode_records(records)
    assert batch.ids.tolist() == ["c"]
    assert [d.position for d in dead] == [0, 1]
    assert all("finite number" in d.reason for d in dead)


def test_epoch_ms_and_iso_times():
    ms = SCHEMA.model_copy(update={"time_format": "epoch_ms"})
    batch, _ = Decoder(ms).decode_lines([line(0, ts=1_700_000_000_500)])
    assert batch.times[0] == pytest.approx(1_700_000_000.5)
    iso = SCHEMA.model_copy(update={"time_format": "iso8601"})
    batch, dead = Decoder(iso).decode_lines([line(0, ts="2026-01-01T00:00:01Z"), line(1, ts="yesterday")])
    assert batch.times.tolist() == [1767225601.0]
    assert "not a valid time" in dead[0].reason


def test_arrow_table_path_validates_vectorised():
    table = pa.table({
        "tx_id": ["a", "b", None, "d"], "card_id": ["c", "c", "c", ""], "ts": [1.0, 2.0, 3.0, 4.0],
        "amount": [1.0, float("nan"), 3.0, 4.0], "merchant_id": [1, 2, 3, 4], "is_fraud": [0, 1, 0, 0],
    })
    batch, dead = Decoder(SCHEMA).decode_table(table, positions=np.arange(4) + 100)
    assert batch.ids.tolist() == ["a"]
    assert batch.categorical["merchant_id"].tolist() == ["1"]
    assert [(d.position, d.reason) for d in dead] == [
        (101, "field `amount` is NaN or infinite, expected a finite number"),
        (102, "missing required field `tx_id`"),
        (103, "field `card_id` is empty"),
    ]


def test_arrow_table_missing_column():
    table = pa.table({"tx_id": ["a"], "card_id": ["c"], "ts": [1.0], "merchant_id": ["m"]})
    batch, dead = Decoder(SCHEMA).decode_table(table)
    assert len(batch) == 0 and "missing required field `amount`" in dead[0].reason


@settings(max_examples=60, deadline=None)
@given(st.lists(st.one_of(
    st.builds(lambda i, a: line(i, amount=a), st.integers(0, 10**6), st.floats(-1e9, 1e9)),
    st.binary(max_size=40),
), max_size=30))
def test_nothing_is_lost(lines):
    """Every record comes out either as an event or as a dead letter, never both, never neither."""
    batch, dead = Decoder(SCHEMA).decode_lines(lines)
    assert len(batch) + len(dead) == len(lines)
    assert sorted(batch.positions.tolist() + [d.position for d in dead]) == list(range(len(lines)))
