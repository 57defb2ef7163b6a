"""Random event streams and batch cuts for the property tests.

Few keys, times that mostly move forward (with ties, exact window boundaries,
long gaps that underflow decays) and sometimes step back (late events),
values including 0, -0.0 and negatives, categories from small alphabets.
"""

from __future__ import annotations

import numpy as np
from hypothesis import strategies as st

from tocsin.batch import EventBatch
from tocsin.features.base import BatchKeys
from tocsin.features.keys import KeyIndex

KEYS = ["a", "b", "c"]
MERCHANTS = ["m1", "m2", "m3", "m4"]
CITIES = ["x", "y"]
START = 1_700_000_000.0
STEPS = [0.0, 0.0, 0.0, 0.5, 1.0, 5.0, 10.0, 29.5, 30.0, 59.0, 60.0, 61.0, 300.0, 3600.0, 86_400.0, 1e6]
LATE = [0.0] * 8 + [0.5, 30.0, 100.0]
VALUES = st.one_of(
    st.sampled_from([0.0, -0.0, 1.0, -1.0, -250.5, 40.0, 40.0, 1e4]),
    st.floats(-1e4, 1e4, allow_nan=False, allow_infinity=False),
)


@st.composite
def streams(draw, max_size: int = 60) -> list[dict]:
    """A list of events: dicts with key, time, amount, merchant_id, city."""
    rows = draw(
        st.lists(
            st.tuples(st.sampled_from(KEYS), st.sampled_from(STEPS), st.sampled_from(LATE), VALUES,
                      st.sampled_from(MERCHANTS), st.sampled_from(CITIES)),
            max_size=max_size,
        )
    )  # fmt: skip
    clock = START
    events = []
    for key, step, back, amount, merchant, city in rows:
        clock += step
        events.append({"key": key, "time": clock - back, "amount": amount, "merchant_id": merchant, "city": city})
    return events


cuts = st.lists(st.integers(1, 25), max_size=8)


def split(events: list[dict], sizes: list[int]) -> list[list[dict]]:
    """``events`` in consecutive chunks of ``sizes``, the rest in a last chunk."""
    chunks, start = [], 0
    for size in sizes:
        if start >= len(events):
            break
        chunks.append(events[start : start + size])
        start += size
    if start < len(events) or not chunks:
        chunks.append(events[start:])
    return chunks


def make_batch(events: list[dict]) -> EventBatch:
    n = len(events)
    return EventBatch(
        ids=np.array([f"e{i}" for i in range(n)], dtype=object),
        keys=np.array([e["key"] for e in events], dtype=object),
        times=np.array([e["time"] for e in events], dtype=np.float64),
        numeric={"amount": np.array([e["amount"] for e in events], dtype=np.float64)},
        categorical={
            "merchant_id": np.array([e["merchant_id"] for e in events], dtype=object),
            "city": np.array([e["city"] for e in events], dtype=object),
        },
    )


class Interner:
    """BatchKeys for single operators, as a FeatureSet would intern them."""

    def __init__(self) -> None:
        self.entity = KeyIndex()
        self.fields = {"merchant_id": KeyIndex(), "city": KeyIndex()}

    def keys(self, batch: EventBatch) -> BatchKeys:
        values = {name: index.ids(batch.categorical[name]) for name, index in self.fields.items()}
        by = {"entity": self.entity.ids(batch.keys), "global": np.zeros(len(batch), dtype=np.int64), **values}
        return BatchKeys(by=by, values=values)


def run_operator(make_operator, events: list[dict], sizes: list[int]) -> np.ndarray:
    """Rows × names of a fresh operator fed ``events`` cut into ``sizes``."""
    operator, interner = make_operator(), Interner()
    parts = []
    for chunk in split(events, sizes):
        batch = make_batch(chunk)
        output = operator.transform_update(batch, interner.keys(batch))
        parts.append(np.column_stack([output.columns[name] for name in operator.names]))
    return np.concatenate(parts)


def check_operator(make_operator, make_reference, events: list[dict], sizes: list[int]) -> None:
    """The operator equals the reference, and is identical whether cut or not."""
    got = run_operator(make_operator, events, sizes)
    whole = run_operator(make_operator, events, [])
    reference = make_reference()
    assert make_operator().names == reference.names
    expected = np.array([reference.step(e) for e in events], dtype=np.float64).reshape(len(events), len(reference.names))
    np.testing.assert_allclose(got, expected, rtol=1e-9, atol=1e-9)
    np.testing.assert_array_equal(got, whole)


def series_batch(keys, times, values, metrics=None) -> EventBatch:
    """Readings of ``amount`` for series-model tests: ``keys`` one per reading, or one key (a str) for all;
    ``metrics`` the metric name of each (``merchant_id``, for long-format series)."""
    n = len(times)
    keys = [keys] * n if isinstance(keys, str) else keys
    return EventBatch(
        ids=np.arange(n).astype(str).astype(object), keys=np.asarray(keys, dtype=object), times=np.asarray(times, float),
        numeric={"amount": np.asarray(values, float)},
        categorical={"merchant_id": np.asarray(metrics if metrics is not None else ["m"] * n, dtype=object),
                     "city": np.asarray(["x"] * n, dtype=object)},
    )


def series_surprise(op, batch):
    """A series operator's output over ``batch`` and its first column (the surprise)."""
    out = op.transform_update(batch, Interner().keys(batch))
    return out, out.columns[op.names[0]]
