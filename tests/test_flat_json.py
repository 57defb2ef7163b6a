"""The compiled scanner (tocsin.flat_json) against msgspec: whatever it accepts decodes to the same batch,
bit for bit, and whatever it refuses goes the msgspec way, with the same dead letters."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import tocsin.decode
from tocsin.decode import Decoder
from tocsin.flat_json import FlatScanner
from tocsin.spec import SchemaSpec

SCHEMA = SchemaSpec(id_field="id", key_field="card", numeric=["amount"], categorical=["merchant", "card"],
                    label_field="is_fraud", max_abs_value=1e12)


def _decoders(schema: SchemaSpec = SCHEMA) -> tuple[Decoder, Decoder]:
    scanning = Decoder(schema, source="s")
    plain = Decoder(schema, source="s")
    plain._scanner = None
    return scanning, plain


def _same(lines: list[bytes], schema: SchemaSpec = SCHEMA) -> bool:
    """Decode ``lines`` with and without the scanner; assert the batches and dead letters are identical; return
    whether the scanner took the batch."""
    scanning, plain = _decoders(schema)
    took = scanning._scanner is not None and scanning._scanner.scan(lines) is not None
    (a, dead_a), (b, dead_b) = scanning.decode_lines(lines), plain.decode_lines(lines)
    assert [(d.position, d.code, d.reason, d.raw) for d in dead_a] == [(d.position, d.code, d.reason, d.raw) for d in dead_b]
    for name in ("ids", "keys", "positions", "labels"):
        x, y = getattr(a, name), getattr(b, name)
        assert (x is None) == (y is None), name
        if x is not None:
            assert x.dtype == y.dtype and x.tolist() == y.tolist(), name
    assert a.times.tobytes() == b.times.tobytes()  # bit for bit, -0.0 and all
    assert a.numeric.keys() == b.numeric.keys() and all(a.numeric[k].tobytes() == b.numeric[k].tobytes() for k in a.numeric)
    assert a.categorical.keys() == b.categorical.keys()
    assert all(a.categorical[k].tolist() == b.categorical[k].tolist() for k in a.categorical)
    assert a.extra["_raw"].tolist() == b.extra["_raw"].tolist()
    return took


def _line(id_="t1", card="c1", ts=1767225600.086, amount=12.5, merchant="m1", **more) -> bytes:
    record = {"id": id_, "card": card, "ts": ts, "amount": amount, "merchant": merchant, **more}
    return json.dumps({k: v for k, v in record.items() if v is not _ABSENT}, separators=(",", ":")).encode()


_ABSENT = object()


def test_plain_events_take_the_scanner_and_decode_as_msgspec_does():
    lines = [_line(f"t{i}", f"c{i % 7}", 1767225600 + i * 0.001, round(i * 1.37, 2), f"m{i % 3}", is_fraud=i % 2,
                   extra="ignored", nothing=None, flag=True, off=False, n=-3e-5) for i in range(500)]
    assert _same(lines)


@pytest.mark.parametrize("line", [
    _line(card=""),  # an empty key: the strict struct refuses, the lenient one dead-letters it
    _line(card=12),  # an integer key: converted by the lenient struct
    _line(amount="12"),  # text for a number
    _line(amount=True),  # a boolean measure
    _line(amount=None),
    _line(amount=_ABSENT),
    _line(merchant=_ABSENT),
    _line(is_fraud=1.0),  # a float label
    _line(is_fraud=True),
    _line(amount=2e13),  # beyond max_abs_value
    _line(merchant="caf\u00e9"),  # non-ASCII
    _line(merchant='say "hi"'),  # an escape
    _line(merchant="tab\there"),
    _line(extra={"nested": 1}),
    _line(extra=[1, 2]),
    _line(amount=12345678901234567890),  # more digits than the exact fast path takes
    _line(amount=1e-30),
    b'{"id":"t1","card":"c1","ts":1.5,"amount":01,"merchant":"m"}',  # not JSON: a leading zero
    b'{"id":"t1","card":"c1","ts":1.5,"amount":1.,"merchant":"m"}',
    b'{"id":"t1","card":"c1","ts":1.5,"amount":-,"merchant":"m"}',
    b'{"id":"t1","card":"c1","ts":1.5,"amount":1,"merchant":"m"',  # truncated
    b'{"id":"t1","card":"c1","ts":1.5,"amount":1,"merchant":"m"}{}',  # two objects
    b'{"id":"t1","card":"c1","ts":1.5,"amount":1,"merchant":"m","amount":2}',  # a declared field twice
    b'{"id":"t1","card":"c1","ts":1.5,"amount":1,"merchant":"m",}',
    b'{"id":"t1","card":"c1","ts":1.5,"amount":1,"merchant":"m","x":tru}',
    b'{"id":"t1","card":"c1","ts":1.5,"amount":1,"merchant":"m"}\n{"id":"t2"}',  # a line holding a newline
    b'  { "id" : "t1" , "card" : "c1" , "ts" : 1.5 , "amount" : 1 , "merchant" : "m" }  ',  # spaces: accepted
    b'{"id":"t1","card":"c1","ts":1.5,"amount":1,"merchant":"m"}\r',
    b'[1, 2]',
    b'',
    b'"text"',
])
def test_a_line_the_scanner_refuses_or_takes_decodes_as_msgspec_decodes_it(line):
    good = [_line(f"t{i}") for i in range(3)]
    _same(good + [line] + good)


def test_an_oversize_line_goes_the_msgspec_way():
    schema = SCHEMA.model_copy(update={"max_event_bytes": 120})
    lines = [_line("t1"), _line("t2", merchant="m" * 200)]
    assert not _same(lines, schema)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.floats(allow_nan=False, allow_infinity=False, min_value=-1e12, max_value=1e12), min_size=1, max_size=20))
def test_numbers_convert_exactly_or_not_at_all(values):
    lines = [_line(f"t{i}", amount=v, ts=abs(v)) for i, v in enumerate(values)]
    _same(lines)


_text = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=6)
_number_text = st.from_regex(r"-?(0|[1-9][0-9]{0,20})(\.[0-9]{1,20})?([eE][+-]?[0-9]{1,3})?", fullmatch=True)
_value = st.one_of(_text.map(json.dumps), _number_text, st.sampled_from(["true", "false", "null", "{}", "[]", '""']))


@settings(max_examples=400, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["id", "card", "ts", "amount", "merchant", "is_fraud", "other"]), _value,
                          st.sampled_from(["", " "])), max_size=8), st.integers(0, 3))
def test_generated_lines_decode_as_msgspec_decodes_them(pairs, copies):
    body = ",".join(f'{space}"{key}"{space}:{space}{value}' for key, value, space in pairs)
    line = ("{" + body + "}").encode()
    _same([_line("t0")] * copies + [line])


def test_a_schema_with_optional_fields_or_iso_times_has_no_scanner():
    assert tocsin.decode._scanner(SCHEMA.model_copy(update={"optional": {"amount": 0.0}})) is None
    assert tocsin.decode._scanner(SCHEMA.model_copy(update={"time_format": "iso8601"})) is None
    assert isinstance(tocsin.decode._scanner(SCHEMA), FlatScanner)


def test_the_scanners_encodings_are_what_the_interning_would_compute():
    from tocsin.features.keys import encode_strings

    scanning, _ = _decoders()
    batch, _ = scanning.decode_lines([_line(f"t{i}", card=f"card{i % 5}") for i in range(50)])
    known = batch.encoding(batch.keys)
    assert known is not None
    fresh = encode_strings(batch.keys)
    given_ = encode_strings(batch.keys, known)
    assert given_[0] == fresh[0] and np.array_equal(given_[4], fresh[4])
    assert batch.take(np.arange(10)).encoding(batch.keys) is None  # a taken batch's columns are other arrays
