import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from tocsin.features.keys import KeyIndex, encode_strings

words = st.one_of(st.sampled_from(["", "a", "b", "ab", "ba", "card_1", "é", "日本", "\ud800", "a\x00"]), st.text(max_size=6))


@settings(max_examples=150, deadline=None)
@given(batches=st.lists(st.lists(words, max_size=30), max_size=6))
def test_ids_match_a_dict_in_order_of_first_sight(batches):
    index, expected = KeyIndex(), {}
    for batch in batches:
        got = index.ids(np.array(batch, dtype=object))
        assert got.dtype == np.int64
        assert got.tolist() == [expected.setdefault(v, len(expected)) for v in batch]
    assert index.values() == list(expected) and len(index) == len(expected)
    for value, i in expected.items():
        assert index.lookup(value) == i
    assert index.lookup("never-interned-key") is None


def test_grows_past_many_keys_and_round_trips():
    index = KeyIndex()
    keys = np.array([f"k{i}" for i in range(5000)], dtype=object)
    rng = np.random.default_rng(0)
    for _ in range(6):
        chunk = keys[rng.integers(5000, size=3000)]
        index.ids(chunk)
    restored = KeyIndex()
    restored.load_state_dict(index.state_dict())
    assert restored.values() == index.values()
    probe = keys[rng.integers(5000, size=1000)]
    assert restored.ids(probe).tolist() == index.ids(probe).tolist()


def test_non_strings_are_interned_by_their_text():
    index = KeyIndex()
    assert index.ids(np.array([1, "1", 2.5], dtype=object)).tolist() == [0, 0, 1]
    assert index.values() == ["1", "2.5"]


@settings(max_examples=100, deadline=None)
@given(first=st.lists(words, max_size=40), later=st.lists(st.lists(words, max_size=200), max_size=4))
def test_a_snapshot_is_unchanged_by_later_keys_and_restores_exactly(first, later):
    # The snapshot holds views of the arena, not copies: keys added after it (and the growth
    # they cause) must not reach it.
    index = KeyIndex()
    index.ids(np.array(first, dtype=object))
    snapshot = index.state_dict()
    frozen = {name: array.copy() for name, array in snapshot.items()}
    for batch in later:
        index.ids(np.array(batch + [f"new-{i}" for i in range(300)], dtype=object))
    assert all(np.array_equal(snapshot[name], frozen[name]) for name in frozen)
    restored = KeyIndex()
    restored.load_state_dict(snapshot)
    assert restored.values() == list(dict.fromkeys(first))


def test_loads_the_earlier_string_array_format():
    restored = KeyIndex()
    restored.load_state_dict({"values": np.array(["b", "a", "日本"], dtype=np.str_)})
    assert restored.values() == ["b", "a", "日本"]
    assert restored.ids(np.array(["a", "c"], dtype=object)).tolist() == [1, 3]


@given(st.lists(st.one_of(st.text(max_size=6), st.sampled_from(["", "\x00", "a\x00b", "\x00\x00"])), max_size=30))
def test_encoded_strings_are_each_string_and_its_hash_whatever_it_holds(values):
    """Rows are found by the NUL between them; a string holding a NUL (or an empty one) must not shift them."""
    strings, points, starts, lengths, hashes = encode_strings(np.array(values, dtype=object))
    assert strings == values
    assert [points[a : a + n].tobytes().decode("utf-32-le") for a, n in zip(starts.tolist(), lengths.tolist())] == values
    alone = [encode_strings([v])[4][0] for v in values]  # a string's hash does not depend on its neighbours
    assert hashes.tolist() == alone
