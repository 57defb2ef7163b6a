"""Decoding: one pass to columns; every bad record becomes a dead letter with its reason and code."""

import json
import math

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tocsin.decode import DEAD_LETTER_CODES, RAW_FIELD, DeadLetter, Decoder
from tocsin.spec import SchemaSpec

SCHEMA = SchemaSpec(
    id_field="tx_id", key_field="card_id", time_field="ts",
    numeric=["amount"], categorical=["merchant_id"], label_field="is_fraud", max_event_bytes=300,
)


def line(i, **overrides):
    record = {"tx_id": f"t{i}", "card_id": "c1", "ts": 1000.0 + i, "amount": 10.0 + i, "merchant_id": "m1", "is_fraud": 0}
    record.update(overrides)
    return json.dumps(record).encode()


def decode(path, decoder, records, positions=None):
    """``records`` (dicts) through one of the three inputs: JSON lines, dicts (HTTP) or an Arrow table."""
    if path == "lines":
        return decoder.decode_lines([json.dumps(r).encode() for r in records], positions)
    if path == "records":
        return decoder.decode_records(records, positions)
    return decoder.decode_table(pa.Table.from_pylist(records), positions)


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
    ("raw", "code", "reason"),
    [
        (b"{not json", "malformed", "malformed"),
        (line(1, amount="12"), "wrong_type", "field `amount`: expected a number, got `str`"),
        (line(1, amount="true"), "wrong_type", "field `amount`: expected a number, got `str`"),
        (line(1, card_id=True), "wrong_type", "field `card_id`: expected `int | str`, got `bool`"),
        (line(1, tx_id=False), "wrong_type", "field `tx_id`: expected `int | str`, got `bool`"),
        (line(1, ts=True), "wrong_type", "field `ts`: expected a number, got `bool`"),
        (line(1, merchant_id=1.5), "wrong_type", "field `merchant_id`: expected"),
        (line(1, ts=None), "missing_field", "field `ts`: expected a number, got `null`"),
        (line(1, card_id=""), "empty_value", "field `card_id` is empty"),
        (line(1, tx_id=""), "empty_value", "field `tx_id` is empty"),
        (line(1).replace(b"11.0", b"1e999"), "not_finite", "field `amount`: number out of range"),
        (b"", "malformed", "truncated"),
        (line(1) + b" " + line(2), "malformed", "trailing characters"),
        (b'{"tx_id": "t1", "card_id": "c1", "ts": 1, "merchant_id": "m"}', "missing_field", "missing required field `amount`"),
        (line(1, padding="x" * 400), "oversize", "over the 300-byte limit"),
        (b"[1, 2]", "malformed", "Expected `object`"),
        (b"7", "malformed", "Expected `object`"),
    ],
)
def test_bad_record_is_a_dead_letter_and_the_rest_goes_on(raw, code, reason):
    decoder = Decoder(SCHEMA, source="unit")
    batch, dead = decoder.decode_lines([line(0), raw, line(2)], positions=np.array([10, 11, 12]))
    assert batch.ids.tolist() == ["t0", "t2"]
    assert batch.positions.tolist() == [10, 12]
    assert len(dead) == 1
    # the raw record is kept up to the size limit (an oversize one is cut there)
    assert dead[0].position == 11 and dead[0].source == "unit" and dead[0].raw == raw[: SCHEMA.max_event_bytes]
    assert reason in dead[0].reason
    assert dead[0].code == code


def test_integers_beyond_float_range_are_dead_letters_not_a_failed_batch():
    """JSON integers are unbounded; one past 1.8e308 must not sink its whole batch."""
    decoder = Decoder(SCHEMA.model_copy(update={"max_event_bytes": 4096}))
    batch, dead = decoder.decode_lines([line(0), line(1, amount=10**400), line(2, ts=-(10**400))])
    assert batch.ids.tolist() == ["t0"]
    assert [(d.code, d.reason) for d in dead] == [
        ("not_finite", "field `amount` is NaN or infinite, expected a finite number"),
        ("not_finite", "field `ts` is not a valid time"),
    ]


def test_iso_time_rejects_booleans_and_bad_text():
    iso = Decoder(SCHEMA.model_copy(update={"time_format": "iso8601"}))
    _, dead = iso.decode_lines([line(0, ts=True), line(1, ts="yesterday")])
    assert [(d.code, d.reason) for d in dead] == [
        ("wrong_type", "field `ts`: expected `str`, got `bool`"), ("bad_time", "field `ts` is not a valid time"),
    ]


def test_dead_letter_code_is_from_the_vocabulary_and_not_in_the_row():
    letter = DeadLetter(source="s", position=1, reason="why", raw=b"x", code="oversize")
    assert letter.as_row() == {"source": "s", "position": 1, "reason": "why", "raw": b"x"}
    assert len(set(DEAD_LETTER_CODES)) == len(DEAD_LETTER_CODES)
    with pytest.raises(ValueError, match="not one of"):
        DeadLetter(source="s", position=1, reason="why", raw=b"x", code="amount was 12")


@pytest.mark.parametrize("path", ["lines", "records", "table"])
def test_booleans_are_numbers_and_categories(path):
    """Login events carry ``"success": true``: 1.0/0.0 in a numeric field, "true"/"false" as a category."""
    records = [{"tx_id": f"t{i}", "card_id": "c1", "ts": 1.0 + i, "amount": flag, "merchant_id": flag, "is_fraud": flag}
               for i, flag in enumerate([True, False])]
    batch, dead = decode(path, Decoder(SCHEMA), records)
    assert dead == []
    assert batch.numeric["amount"].tolist() == [1.0, 0.0]
    assert batch.categorical["merchant_id"].tolist() == ["true", "false"]
    assert batch.labels.tolist() == [1, 0]


def test_booleans_mixed_with_numbers_and_text_in_one_batch():
    batch, dead = Decoder(SCHEMA).decode_lines([line(0, amount=True), line(1, amount=2), line(2, merchant_id=7), line(3, merchant_id=False)])
    assert dead == []
    assert batch.numeric["amount"].tolist() == [1.0, 2.0, 12.0, 13.0]
    assert batch.categorical["merchant_id"].tolist() == ["m1", "m1", "7", "false"]


@pytest.mark.parametrize("field", ["tx_id", "card_id", "ts"])
@pytest.mark.parametrize("path", ["lines", "records", "table"])
def test_booleans_in_the_id_key_or_time_are_a_wrong_type(path, field):
    records = [{"tx_id": f"t{i}", "card_id": "c1", "ts": 1.0 + i, "amount": 1.0, "merchant_id": "m"} for i in range(2)]
    for record in records:
        record[field] = True
    batch, dead = decode(path, Decoder(SCHEMA), records)
    assert len(batch) == 0
    assert [d.code for d in dead] == ["wrong_type", "wrong_type"]
    assert all(d.reason.startswith(f"field `{field}`: expected") and d.reason.endswith("got `bool`") for d in dead)


NO_ID = SCHEMA.model_copy(update={"id_field": None})


@pytest.mark.parametrize("path", ["lines", "records", "table"])
def test_without_an_id_field_ids_come_from_source_and_position(path):
    records = [{"card_id": "c1", "ts": 1.0 + i, "amount": 1.0, "merchant_id": "m"} for i in range(3)]
    records[1]["card_id"] = ""  # a dead letter between two events keeps their positions
    decoder = Decoder(NO_ID, source="file:tx.jsonl")
    batch, dead = decode(path, decoder, records, positions=np.array([7, 8, 9]))
    assert batch.ids.tolist() == ["file:tx.jsonl:7", "file:tx.jsonl:9"]
    assert [(d.position, d.code) for d in dead] == [(8, "empty_value")]
    replay, _ = decode(path, Decoder(NO_ID, source="file:tx.jsonl"), records, positions=np.array([7, 8, 9]))
    assert replay.ids.tolist() == batch.ids.tolist()


def test_without_an_id_field_an_id_in_the_data_is_ignored():
    batch, dead = Decoder(NO_ID, source="s").decode_lines([line(0, tx_id=""), line(1, tx_id=True), line(2)])
    assert dead == [] and batch.ids.tolist() == ["s:0", "s:1", "s:2"]


def test_nan_in_python_dicts_is_a_dead_letter():
    records = [{"tx_id": "a", "card_id": "c", "ts": 1, "amount": math.nan, "merchant_id": "m"},
               {"tx_id": "b", "card_id": "c", "ts": 1, "amount": math.inf, "merchant_id": "m"},
               {"tx_id": "c", "card_id": "c", "ts": 1, "amount": 3, "merchant_id": "m"}]
    batch, dead = Decoder(SCHEMA).decode_records(records)
    assert batch.ids.tolist() == ["c"]
    assert [d.position for d in dead] == [0, 1]
    assert all("finite number" in d.reason and d.code == "not_finite" for d in dead)


def test_unserialisable_dict_is_a_dead_letter():
    records = [{"tx_id": "a", "card_id": "c", "ts": 1, "amount": object(), "merchant_id": "m"}]
    batch, dead = Decoder(SCHEMA).decode_records(records)
    assert len(batch) == 0 and dead[0].code == "not_serialisable" and "not JSON-serialisable" in dead[0].reason


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
    assert [(d.position, d.code, d.reason) for d in dead] == [
        (101, "not_finite", "field `amount` is NaN or infinite, expected a finite number"),
        (102, "missing_field", "missing required field `tx_id`"),
        (103, "empty_value", "field `card_id` is empty"),
    ]


def test_arrow_table_missing_column():
    table = pa.table({"tx_id": ["a"], "card_id": ["c"], "ts": [1.0], "merchant_id": ["m"]})
    batch, dead = Decoder(SCHEMA).decode_table(table)
    assert len(batch) == 0 and "missing required field `amount`" in dead[0].reason and dead[0].code == "missing_field"


def test_arrow_table_text_in_a_numeric_column_is_a_wrong_type():
    table = pa.table({"tx_id": ["a", "b"], "card_id": ["c", "c"], "ts": [1.0, 2.0], "amount": ["true", "2"], "merchant_id": ["m", "m"]})
    batch, dead = Decoder(SCHEMA).decode_table(table)
    assert batch.numeric["amount"].tolist() == [2.0]
    assert [(d.code, d.reason) for d in dead] == [("wrong_type", "field `amount` is not a number")]


def test_arrow_iso_time_that_is_not_a_time():
    iso = Decoder(SCHEMA.model_copy(update={"time_format": "iso8601"}))
    table = pa.table({"tx_id": ["a", "b"], "card_id": ["c", "c"], "ts": ["2026-01-01T00:00:01Z", "soon"], "amount": [1.0, 2.0], "merchant_id": ["m", "m"]})
    batch, dead = iso.decode_table(table)
    assert batch.times.tolist() == [1767225601.0]
    assert [(d.code, d.reason) for d in dead] == [("bad_time", "field `ts` is not an ISO-8601 time")]


ANY_VALUE = st.one_of(st.booleans(), st.integers(), st.floats(), st.text(max_size=3), st.none())


def _field(good):
    return st.one_of(good, good, good, ANY_VALUE)  # mostly good, so batches hold events and dead letters


RECORDS = st.fixed_dictionaries(
    {"tx_id": _field(st.text(max_size=4)), "card_id": _field(st.sampled_from(["c1", "c2", 3])),
     "ts": _field(st.floats(0, 2e9)), "amount": _field(st.one_of(st.booleans(), st.integers(), st.floats(-1e9, 1e9))),
     "merchant_id": _field(st.one_of(st.booleans(), st.sampled_from(["m1", "m2", 5])))},
    optional={"is_fraud": st.one_of(st.booleans(), st.sampled_from([0, 1]))},
)


def _category(value):
    return ("true" if value else "false") if isinstance(value, bool) else str(value)


def _is_valid(record, schema, path):
    """The rules, one record at a time: the oracle the batch decoder must agree with."""
    if path == "lines" and isinstance(record, dict) and any(isinstance(v, float) and not math.isfinite(v) for v in record.values()):
        return False  # json.dumps writes NaN/Infinity, which is not JSON

    def number(v, bools, limit=math.inf):
        if isinstance(v, bool) or not isinstance(v, int | float):
            return bools and isinstance(v, bool)
        try:
            return math.isfinite(float(v)) and abs(float(v)) <= limit
        except OverflowError:  # an integer past float range
            return False

    def text(v):  # an id or key: non-empty text or an integer, not a boolean
        return (isinstance(v, str) and v != "") or (isinstance(v, int) and not isinstance(v, bool))

    return (
        isinstance(record, dict) and "card_id" in record
        and (schema.id_field is None or text(record["tx_id"]))
        and text(record["card_id"])
        and number(record["ts"], bools=False)
        and number(record["amount"], bools=True, limit=schema.max_abs_value)
        and isinstance(record["merchant_id"], str | int)  # a boolean is an int here
    )


@settings(max_examples=80, deadline=None)
@given(
    st.lists(st.one_of(RECORDS, st.binary(max_size=40)), max_size=30),
    st.sampled_from([SCHEMA, NO_ID]),
    st.sampled_from(["lines", "records"]),
)
def test_nothing_is_lost(items, schema, path):
    """Every record comes out either as an event or as a dead letter, never both, never neither;
    exactly the valid ones are events (booleans included, as 1.0/0.0 and "true"/"false"), and
    without an id field ids follow positions."""
    schema = schema.model_copy(update={"max_event_bytes": 1 << 20})
    if path == "records":
        items = [item if isinstance(item, dict) else {"raw": item} for item in items]
        batch, dead = Decoder(schema, source="prop").decode_records(items)
    else:
        batch, dead = Decoder(schema, source="prop").decode_lines([i if isinstance(i, bytes) else json.dumps(i).encode() for i in items])
    assert len(batch) + len(dead) == len(items)
    assert sorted(batch.positions.tolist() + [d.position for d in dead]) == list(range(len(items)))
    assert {d.code for d in dead} <= set(DEAD_LETTER_CODES)
    assert batch.positions.tolist() == [i for i, item in enumerate(items) if _is_valid(item, schema, path)]
    events = [items[p] for p in batch.positions.tolist()]
    assert batch.numeric["amount"].tolist() == [float(e["amount"]) for e in events]
    assert batch.categorical["merchant_id"].tolist() == [_category(e["merchant_id"]) for e in events]
    if schema.id_field is None:
        assert batch.ids.tolist() == [f"prop:{p}" for p in batch.positions.tolist()]
    else:
        assert batch.ids.tolist() == [str(e["tx_id"]) for e in events]


VALID = st.fixed_dictionaries(
    {"tx_id": st.one_of(st.text(min_size=1, max_size=4), st.integers(0, 99)), "card_id": st.sampled_from(["c1", "c2", 3]),
     "ts": st.one_of(st.floats(0, 2e9), st.integers(0, 2_000_000_000)),
     "amount": st.one_of(st.booleans(), st.integers(-10**6, 10**6), st.floats(-1e9, 1e9)),
     "merchant_id": st.one_of(st.booleans(), st.sampled_from(["m1", "m2", 5]))},
    optional={"is_fraud": st.one_of(st.booleans(), st.sampled_from([0, 1, 2]), st.none())},
)


@settings(max_examples=120, deadline=None)
@given(st.lists(VALID, min_size=1, max_size=20))
def test_valid_batches_decode_alike_whether_their_values_fit_the_strict_struct_or_not(records) -> None:
    """Batches of plain values take the strict struct (no per-value type checks); a batch with an integer id,
    a boolean category or a null label takes the lenient one: both give the columns the rules say."""
    batch, dead = Decoder(SCHEMA, source="prop").decode_lines([json.dumps(r).encode() for r in records])
    assert dead == [] and len(batch) == len(records)
    assert batch.ids.tolist() == [str(r["tx_id"]) for r in records]
    assert batch.keys.tolist() == [str(r["card_id"]) for r in records]
    assert batch.times.tolist() == [float(r["ts"]) for r in records]
    assert batch.numeric["amount"].tolist() == [float(r["amount"]) for r in records]
    assert batch.categorical["merchant_id"].tolist() == [_category(r["merchant_id"]) for r in records]
    assert batch.labels.tolist() == [1 if r.get("is_fraud") else 0 for r in records]
    assert all(type(v) is str for v in [*batch.ids, *batch.keys, *batch.categorical["merchant_id"]])


def test_a_huge_number_is_a_dead_letter_not_a_poisoned_state():
    """amount=1e308 once passed as finite and turned a card's decayed statistics to NaN."""
    decoder = Decoder(SCHEMA, source="unit")
    huge = line(1).replace(b'"amount": 11.0', b'"amount": 1e308')
    assert huge != line(1)
    batch, dead = decoder.decode_lines([line(0), huge, line(2)])
    assert batch.ids.tolist() == ["t0", "t2"]
    assert [(d.code, d.position) for d in dead] == [("out_of_range", 1)]
    assert "schema.max_abs_value" in dead[0].reason


def test_a_line_holding_two_objects_or_half_of_one_is_malformed_whatever_the_batch():
    """Decoding a batch as one joined array once read `{a}, {b}` / `{..."x": [1` / `2]}` as three valid rows."""
    decoder = Decoder(SchemaSpec(key_field="card", numeric=["amount"]))
    lines = [b'{"id":"a","card":"c","ts":1,"amount":1}, {"id":"b","card":"c","ts":1,"amount":1}',
             b'{"id":"x","card":"c","ts":1,"amount":[1', b'2]}', b'{"id":"ok","card":"c","ts":2,"amount":3}']
    for cut in range(len(lines) + 1):
        parts = [part for part in (lines[:cut], lines[cut:]) if part]
        ids, codes = [], []
        for i, part in enumerate(parts):
            batch, dead = decoder.decode_lines(part, np.arange(len(part)) + (cut if i else 0))
            ids += batch.ids.tolist()
            codes += [(letter.position, letter.code) for letter in dead]
        assert ids == ["ok"] and sorted(codes) == [(0, "malformed"), (1, "wrong_type"), (2, "malformed")]


OPTIONAL = SchemaSpec(key_field="user", numeric=["amount", "discount"], categorical=["coupon"],
                      optional={"discount": 0, "coupon": "none"})


def test_an_optional_field_absent_or_null_takes_its_default_and_a_required_one_is_still_required():
    batch, dead = Decoder(OPTIONAL).decode_lines([
        b'{"id":"a","user":"u","ts":1,"amount":2}',
        b'{"id":"b","user":"u","ts":1,"amount":2,"discount":null,"coupon":null}',
        b'{"id":"c","user":"u","ts":1,"amount":2,"discount":5,"coupon":"X"}',
        b'{"id":"d","user":"u","ts":1,"discount":1}',
    ])
    assert batch.ids.tolist() == ["a", "b", "c"]
    assert batch.numeric["discount"].tolist() == [0.0, 0.0, 5.0] and batch.categorical["coupon"].tolist() == ["none", "none", "X"]
    assert [(letter.position, letter.code) for letter in dead] == [(3, "missing_field")] and "amount" in dead[0].reason


def test_an_optional_field_in_a_table_fills_its_nulls_and_a_missing_column():
    table = pa.table({"id": ["a", "b"], "user": ["u", "u"], "ts": [1.0, 2.0], "amount": [1.0, 2.0], "coupon": ["X", None]})
    batch, dead = Decoder(OPTIONAL).decode_table(table)
    assert not dead and batch.numeric["discount"].tolist() == [0.0, 0.0] and batch.categorical["coupon"].tolist() == ["X", "none"]


@pytest.mark.parametrize("optional, says", [({"discount": "zero"}, "is not a number"), ({"coupon": 3}, "is not text"),
                                            ({"user": "x"}, "key_field"), ({"nope": 1}, "not a declared field")])
def test_an_optional_field_must_be_declared_and_its_default_of_its_type(optional, says):
    with pytest.raises(ValueError, match=says):
        SchemaSpec(key_field="user", numeric=["amount", "discount"], categorical=["coupon"], optional=optional)
