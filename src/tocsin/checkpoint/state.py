"""Nested state <-> the flat ``{"a/b/c": array}`` form checkpoints hold.

Operators and detectors hand back their state as dicts of arrays, and a
pipeline nests them (``{"features": {"velocity": {...}}, "detector": {...}}``).
A checkpoint stores one flat mapping of names to arrays, so
``unflatten_state(flatten_state(x))`` must give ``x`` back exactly, including
empty sub-dicts (an operator that has no state yet must still get its
``load_state_dict({})`` call on restore).

Rules: keys are non-empty strings without ``/``; leaves are NumPy arrays or
scalars (``int``, ``float``, ``bool``, ``str``, ``bytes``, NumPy scalars),
which become 0-d arrays (``str`` as an ``np.str_`` array; a string ending in
NUL is refused, since NumPy strings drop trailing NULs). Object arrays are
refused: they could only be stored with pickle, and loading a pickle from disk
runs code.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

SEP = "/"
# An empty dict at path "a/b" is stored as "a/b/" (an empty last component,
# which a real key can never have) holding an empty array.
_EMPTY_DICT = np.zeros(0, dtype=np.uint8)

_SCALARS = (bool, int, float, complex, str, bytes, np.generic)


def _leaf(path: str, value: Any) -> np.ndarray:
    if isinstance(value, np.ndarray):
        array = value
    elif isinstance(value, _SCALARS):
        nul = b"\x00" if isinstance(value, bytes) else "\x00"
        if isinstance(value, str | bytes) and value.endswith(nul):
            # NumPy's fixed-width strings drop trailing NULs; refuse rather than change the value
            raise ValueError(f"state {path!r}: strings ending in NUL cannot be stored exactly")
        array = np.asarray(value)
    else:
        raise TypeError(f"state {path!r}: {type(value).__name__} is not an array, scalar or dict")
    if array.dtype.hasobject:
        raise TypeError(f"state {path!r}: object arrays cannot be checkpointed (they would need pickle)")
    return array


def _check_key(prefix: str, key: Any) -> str:
    if not isinstance(key, str) or not key or SEP in key:
        raise ValueError(f"state key {prefix + str(key)!r}: keys must be non-empty strings without {SEP!r}")
    return key


def flatten_state(nested: Mapping[str, Any]) -> dict[str, np.ndarray]:
    """``{"a": {"b": x}}`` -> ``{"a/b": x}``; scalars become 0-d arrays. Arrays are not copied."""
    flat: dict[str, np.ndarray] = {}

    def walk(prefix: str, node: Mapping[str, Any]) -> None:
        for key, value in node.items():
            path = prefix + _check_key(prefix, key)
            if isinstance(value, Mapping):
                if value:
                    walk(path + SEP, value)
                else:
                    flat[path + SEP] = _EMPTY_DICT
            else:
                flat[path] = _leaf(path, value)

    if not isinstance(nested, Mapping):
        raise TypeError(f"state must be a dict, got {type(nested).__name__}")
    walk("", nested)
    return flat


def unflatten_state(flat: Mapping[str, np.ndarray]) -> dict[str, Any]:
    """The inverse of :func:`flatten_state`; leaves come back as arrays (scalars as 0-d)."""
    nested: dict[str, Any] = {}
    for path, value in flat.items():
        parts = path.split(SEP)
        is_empty_dict = parts[-1] == ""
        if is_empty_dict:
            parts.pop()
        if not parts or any(part == "" for part in parts):
            raise ValueError(f"state key {path!r}: empty path component")
        node = nested
        for depth, part in enumerate(parts[:-1]):
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise ValueError(f"state key {path!r}: {SEP.join(parts[: depth + 1])!r} is both a leaf and a dict")
            node = child
        last = parts[-1]
        if is_empty_dict:
            existing = node.setdefault(last, {})
            if not isinstance(existing, dict):
                raise ValueError(f"state key {path!r}: {SEP.join(parts)!r} is both a leaf and a dict")
        else:
            if last in node:
                raise ValueError(f"state key {path!r}: {SEP.join(parts)!r} is both a leaf and a dict")
            node[last] = np.asarray(value)
    return nested
