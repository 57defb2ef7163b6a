"""Tests for src/tocsin/checkpoint/state.py."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from tocsin.checkpoint.state import flatten_state, unflatten_state

keys = st.text(min_size=1, max_size=8).filter(lambda k: "/" not in k)
dtypes = st.one_of(
    hnp.boolean_dtypes(),
    hnp.integer_dtypes(),
    hnp.unsigned_integer_dtypes(),
    hnp.floating_dtypes(),
    hnp.complex_number_dtypes(),
    hnp.unicode_string_dtypes(max_len=4),
    hnp.byte_string_dtypes(max_len=4),
)
arrays = hnp.arrays(dtypes, hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=4))
scalars = st.one_of(
    st.booleans(),
    st.integers(-(2**63), 2**63 - 1),
    st.floats(allow_nan=True),
    st.text(max_size=5).filter(lambda s: not s.endswith("\x00")),
    st.binary(max_size=5).filter(lambda b: not b.endswith(b"\x00")),
)
nested_states = st.recursive(
    st.dictionaries(keys, st.one_of(arrays, scalars), max_size=4),
    lambda children: st.dictionaries(keys, st.one_of(children, arrays, scalars), max_size=4),
    max_leaves=12,
)


def assert_same_array(a: np.ndarray, b: np.ndarray) -> None:
    assert isinstance(b, np.ndarray)
    assert a.dtype == b.dtype and a.shape == b.shape
    assert a.tobytes() == b.tobytes()  # exact, NaN payloads and -0.0 included


def assert_same_state(expected, actual) -> None:
    if isinstance(expected, dict):
        assert isinstance(actual, dict) and expected.keys() == actual.keys()
        for key in expected:
            assert_same_state(expected[key], actual[key])
    else:
        assert_same_array(np.asarray(expected), actual)


def test_flatten_example():
    count = np.arange(3, dtype=np.int64)
    flat = flatten_state({"features": {"velocity": {"count": count, "n": 3}}, "name": "iforest", "empty": {}})
    assert set(flat) == {"features/velocity/count", "features/velocity/n", "name", "empty/"}
    assert flat["features/velocity/count"] is count  # no copy
    assert flat["features/velocity/n"].shape == ()
    assert flat["name"].dtype.type is np.str_ and flat["name"][()] == "iforest"
    assert unflatten_state(flat)["empty"] == {}


def test_empty_state():
    assert flatten_state({}) == {}
    assert unflatten_state({}) == {}


@pytest.mark.parametrize(
    ("state", "error"),
    [
        ({"a/b": 1}, ValueError),
        ({"": 1}, ValueError),
        ({1: 1}, ValueError),
        ({"a": [1, 2]}, TypeError),
        ({"a": None}, TypeError),
        ({"a": np.array([object()])}, TypeError),
        ({"a": {"b": "x\x00"}}, ValueError),
    ],
)
def test_refuses_what_cannot_round_trip(state, error):
    with pytest.raises(error):
        flatten_state(state)


def test_unflatten_refuses_conflicting_paths():
    with pytest.raises(ValueError, match="both a leaf and a dict"):
        unflatten_state({"a": np.zeros(1), "a/b": np.zeros(1)})
    with pytest.raises(ValueError, match="empty path component"):
        unflatten_state({"a//b": np.zeros(1)})


@settings(max_examples=150, deadline=None)
@given(nested_states)
def test_round_trip(state):
    flat = flatten_state(state)
    assert all("//" not in key for key in flat)
    assert_same_state(state, unflatten_state(flat))
    # and the other way round: flat -> nested -> flat is the identity
    again = flatten_state(unflatten_state(flat))
    assert flat.keys() == again.keys()
    for key in flat:
        assert_same_array(flat[key], again[key])
