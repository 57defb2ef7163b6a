"""The contract every streaming feature operator follows.

An operator turns a batch into feature columns. Each event's features are
computed from the state built by *strictly earlier* events of its key (in
arrival order, which sources keep in event-time order), including events
earlier in the same batch; then the event is folded into the state. Because
state is updated event by event inside the kernel, the output never depends on
where a stream is cut into batches.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from dataclasses import dataclass, field

import numpy as np

from tocsin.batch import EventBatch


@dataclass
class BatchKeys:
    """Interned ids for one batch: per key field (``"entity"``, a categorical
    field name, or ``"global"``) and per categorical field's values."""

    by: dict[str, np.ndarray]
    values: dict[str, np.ndarray] = field(default_factory=dict)


@dataclass
class FeatureOutput:
    """Columns an operator produced for a batch.

    ``columns`` feed the detectors. ``context`` holds columns that explain them
    (for example the key's usual mean and std of a field before this event) and
    are used in alert explanations, not for scoring.
    """

    columns: dict[str, np.ndarray]
    context: dict[str, np.ndarray] = field(default_factory=dict)


class FeatureOperator(ABC):
    """One streaming feature family over per-key state in dense arrays."""

    #: names of the columns this operator produces, in order
    names: list[str]
    #: True when the columns' distribution moves as entity histories grow, even in a steady stream
    #: (counts of distinct values, shares of a whole history): drift watches them but raises no alert
    grows_with_history: bool = False

    @abstractmethod
    def transform_update(self, batch: EventBatch, keys: BatchKeys) -> FeatureOutput:
        """Features of every event from prior state, then the state updated with the batch."""

    @abstractmethod
    def state_dict(self) -> dict[str, np.ndarray]:
        """All state as named NumPy arrays (saved in checkpoints)."""

    @abstractmethod
    def load_state_dict(self, state: dict[str, np.ndarray]) -> None:
        """Restore what :meth:`state_dict` returned."""

    def describe(self, name: str, row: int, batch: EventBatch, output: FeatureOutput) -> str:
        """A short human sentence about feature ``name`` for event ``row``."""
        return f"{name} = {output.columns[name][row]:.4g}"


def format_number(value: float, digits: int = 3) -> str:
    """``value`` to ``digits`` significant digits with thousands separators, for
    :meth:`FeatureOperator.describe` sentences.

    >>> format_number(4213.0), format_number(183.7), format_number(40.0), format_number(0.012345)
    ('4,210', '184', '40', '0.0123')
    """
    if not math.isfinite(value):
        return str(value)
    if value == 0:
        return "0"
    rounded = float(f"{value:.{digits}g}")
    decimals = max(0, digits - 1 - math.floor(math.log10(abs(rounded))))
    text = f"{rounded:,.{decimals}f}"
    return text.rstrip("0").rstrip(".") if "." in text else text
