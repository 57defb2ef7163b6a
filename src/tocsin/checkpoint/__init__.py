"""State+offset checkpoints; :mod:`tocsin.checkpoint.base` states the ordering invariant."""

from tocsin.checkpoint.base import Checkpoint, CheckpointError, CheckpointStore
from tocsin.checkpoint.local import LocalCheckpointStore
from tocsin.checkpoint.state import flatten_state, unflatten_state

__all__ = [
    "Checkpoint",
    "CheckpointError",
    "CheckpointStore",
    "LocalCheckpointStore",
    "flatten_state",
    "unflatten_state",
]
