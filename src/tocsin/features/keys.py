"""Interning of string keys to dense integer ids, so per-key state lives in arrays.

With many distinct keys a Python dict lookup costs several cache misses per
string (its hash, the dict's index, its entry, the stored key to compare, the
id's int object) one after another, about 300 ns each at 100k keys. Instead a
batch's strings are joined and encoded once as UTF-32 (one tight pass), and a
compiled kernel looks the code points up in an open-addressing table whose
probes for the whole batch are started before any is needed, so the misses
overlap: about 3x faster at 100k keys, on par for a few hundred.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from tocsin.features.kernels import grow

_EMPTY = -1
_FNV_OFFSET = 0xCBF29CE484222325
_FNV_PRIME = 0x100000001B3


@njit(cache=True, nogil=True)
def _hash_rows(points, starts, lengths, hashes):
    """FNV-1a over each row's code points, then a splitmix64 finaliser."""
    for i in range(starts.shape[0]):
        h = np.uint64(_FNV_OFFSET)
        for j in range(starts[i], starts[i] + lengths[i]):
            h = (h ^ np.uint64(points[j])) * np.uint64(_FNV_PRIME)
        h = (h ^ (h >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        h = (h ^ (h >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        hashes[i] = h ^ (h >> np.uint64(31))


@njit(cache=True, nogil=True)
def _split_at_separators(points, starts, lengths):
    """Each row's start and length in code points joined with one NUL between rows (none inside a row)."""
    row, start = 0, 0
    for j in range(points.shape[0]):
        if points[j] == 0:
            starts[row] = start
            lengths[row] = j - start
            row += 1
            start = j + 1
    starts[row] = start
    lengths[row] = points.shape[0] - start


def encode_strings(values, known: tuple | None = None) -> tuple[list[str], np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The strings, their UTF-32 code points (one NUL between strings), each one's start and length, and
    their 64-bit hashes (FNV-1a + splitmix64: the same string, the same hash, in every process and run).

    The lengths come from the separators, found by a compiled pass: ``map(len, ...)`` over 5,000 strings
    cost half of this function. Only when a string holds a NUL itself are they counted one by one.
    ``known``: the ``(strings, code points, starts, lengths)`` the decoder already made
    (:meth:`tocsin.batch.EventBatch.encoding`; ASCII bytes are their own code points): only hashed."""
    if known is not None:
        strings, points, starts, lengths = known
        hashes = np.empty(len(starts), dtype=np.uint64)
        _hash_rows(points, starts, lengths, hashes)
        return strings, points, starts, lengths, hashes
    strings = values.tolist() if isinstance(values, np.ndarray) else list(values)
    try:
        joined = "\x00".join(strings)
    except TypeError:
        strings = [v if isinstance(v, str) else str(v) for v in strings]
        joined = "\x00".join(strings)
    n = len(strings)
    points = np.frombuffer(joined.encode("utf-32-le", "surrogatepass"), dtype=np.uint32)
    starts = np.empty(n, dtype=np.int64)
    lengths = np.empty(n, dtype=np.int64)
    if n and joined.count("\x00") == n - 1:
        _split_at_separators(points, starts, lengths)
    elif n:
        lengths = np.fromiter(map(len, strings), dtype=np.int64, count=n)
        starts[0] = 0
        np.cumsum(lengths[:-1] + 1, out=starts[1:])
    hashes = np.empty(n, dtype=np.uint64)
    _hash_rows(points, starts, lengths, hashes)
    return strings, points, starts, lengths, hashes


@njit(cache=True, nogil=True)
def _intern(points, starts, lengths, hashes, insert, table, id_hash, arena, offsets, n_ids, out):
    """Ids of the rows (``-1`` for unknown ones when not ``insert``); returns the new id
    count (and a number the first loop's loads feed, so they are not optimised away).

    ``table`` maps slots to ids (power-of-two size, load <= 1/2 after the
    call); id ``i``'s code points are ``arena[offsets[i]:offsets[i + 1]]``.
    """
    mask = np.uint64(table.shape[0] - 1)
    warm = 0
    for i in range(starts.shape[0]):  # start every first probe before waiting on one
        warm += table[np.int64(hashes[i] & mask)]
    for i in range(starts.shape[0]):
        h = hashes[i]
        start, length = starts[i], lengths[i]
        slot = np.int64(h & mask)
        found = _EMPTY
        while True:
            candidate = table[slot]
            if candidate == _EMPTY:
                break
            if id_hash[candidate] == h and offsets[candidate + 1] - offsets[candidate] == length:
                base = offsets[candidate]
                same = True
                for j in range(length):
                    if arena[base + j] != points[start + j]:
                        same = False
                        break
                if same:
                    found = candidate
                    break
            slot = (slot + 1) & np.int64(mask)
        if found == _EMPTY and insert:
            found = n_ids
            table[slot] = found
            id_hash[found] = h
            base = offsets[found]
            for j in range(length):
                arena[base + j] = points[start + j]
            offsets[found + 1] = base + length
            n_ids += 1
        out[i] = found
    return n_ids, warm


@njit(cache=True, nogil=True)
def _rehash(id_hash, n_ids, table):
    mask = np.uint64(table.shape[0] - 1)
    for i in range(n_ids):
        slot = np.int64(id_hash[i] & mask)
        while table[slot] != _EMPTY:
            slot = (slot + 1) & np.int64(mask)
        table[slot] = i


class KeyIndex:
    """Maps each distinct string to a stable id 0, 1, 2… in order of first sight.

    Ids index the dense state arrays of the feature operators. Values that are
    not ``str`` are interned by ``str(value)``.

    >>> index = KeyIndex()
    >>> index.ids(np.array(["a", "b", "a"], dtype=object)).tolist()
    [0, 1, 0]
    >>> len(index)
    2
    """

    def __init__(self) -> None:
        self._values: list[str] = []
        self._table = np.full(1024, _EMPTY, dtype=np.int64)
        self._id_hash = np.empty(0, dtype=np.uint64)
        self._arena = np.empty(0, dtype=np.uint32)
        self._offsets = np.zeros(1, dtype=np.int64)

    def __len__(self) -> int:
        return len(self._values)

    def _encode(self, values, known: tuple | None = None) -> tuple[list[str], np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        return encode_strings(values, known)

    def ids(self, values: np.ndarray, known: tuple | None = None) -> np.ndarray:
        """Ids of ``values`` (an object array of str), adding the new ones; ``known``: their encoding, if the
        decoder made it (see :func:`encode_strings`)."""
        n = len(values)
        out = np.empty(n, dtype=np.int64)
        if n == 0:
            return out
        strings, points, starts, lengths, hashes = self._encode(values, known)
        n_ids = len(self._values)
        size = len(self._table)
        if 2 * (n_ids + n) > size:  # room for every row being new at load <= 1/2
            while 2 * (n_ids + n) > size:
                size *= 2
            self._table = np.full(size, _EMPTY, dtype=np.int64)
            _rehash(self._id_hash, n_ids, self._table)
        self._id_hash = grow(self._id_hash, n_ids + n, 0)
        self._offsets = grow(self._offsets, n_ids + n + 1, 0)
        self._arena = grow(self._arena, int(self._offsets[n_ids]) + len(points), 0)
        new_count, _ = _intern(
            points, starts, lengths, hashes, True,
            self._table, self._id_hash, self._arena, self._offsets, n_ids, out,
        )  # fmt: skip
        if new_count > n_ids:
            # the first row with each new id, in id order
            new_rows = np.flatnonzero(out >= n_ids)
            first = new_rows[np.unique(out[new_rows], return_index=True)[1]]
            self._values.extend(strings[i] for i in first.tolist())
        return out

    def __getitem__(self, key_id: int) -> str:
        """The string interned as ``key_id``."""
        return self._values[key_id]

    def lookup(self, value: str) -> int | None:
        """The id of ``value`` or None, without adding it."""
        _, points, starts, lengths, hashes = self._encode([value])
        out = np.empty(1, dtype=np.int64)
        n_ids = len(self._values)
        _intern(points, starts, lengths, hashes, False, self._table, self._id_hash, self._arena, self._offsets, n_ids, out)
        return None if out[0] == _EMPTY else int(out[0])

    def values(self) -> list[str]:
        """All interned strings, in id order."""
        return list(self._values)

    def state_dict(self) -> dict[str, np.ndarray]:
        """The strings as their UTF-32 code points and offsets: views, not copies.

        New keys are only ever appended past ``offsets[n]`` (a growth copies into a new array and
        leaves the old one to the views), so the views cannot change after this call. Building a
        string array instead took ~16 ms per 100k keys, in line, at every checkpoint."""
        n = len(self._values)
        offsets = self._offsets[: n + 1]
        return {"codepoints": self._arena[: int(offsets[-1])], "offsets": offsets}

    def load_state_dict(self, state: dict[str, np.ndarray]) -> None:
        self.__init__()
        if "values" in state:  # the format before code points
            values = [str(v) for v in state["values"].tolist()]
        else:
            offsets = state["offsets"].tolist()
            text = np.ascontiguousarray(state["codepoints"], dtype=np.uint32).tobytes().decode("utf-32-le", "surrogatepass")
            values = [text[offsets[i] : offsets[i + 1]] for i in range(len(offsets) - 1)]
        if values:
            self.ids(np.array(values, dtype=object))
        if len(self._values) != len(values):
            raise ValueError("key index state holds the same key twice")
