"""The state round trip every checkpoint makes, for tests that resume a component mid-stream."""

from __future__ import annotations

import io
from typing import Any, TypeVar

import numpy as np

T = TypeVar("T")


def through_npz(state: dict[str, np.ndarray], into: T) -> T:
    """``into`` (a fresh component) loaded with ``state`` after a trip through ``np.savez`` / ``np.load`` without
    pickles: what a checkpoint store does to it, so a state that only survives in memory fails here."""
    buffer = io.BytesIO()
    np.savez(buffer, **state)
    buffer.seek(0)
    with np.load(buffer, allow_pickle=False) as saved:
        loader: Any = into
        loader.load_state_dict({name: saved[name] for name in saved.files})
    return into
