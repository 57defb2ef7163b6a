"""Columnar event batches: the unit of work that flows through every stage.

Events are decoded once into NumPy columns; nothing downstream iterates events
in Python. A batch keeps the arrival order of its events: per-entity state is
updated in that order, which is what makes results independent of where a
stream is cut into batches.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class EventBatch:
    """A micro-batch of validated events as columns.

    ``ids`` and ``keys`` are object arrays of ``str``; ``times`` is event time in
    epoch seconds (float64); ``positions`` are the source positions (line
    number, offset…) used for checkpoints and dead letters; ``labels`` holds
    ground truth when the source has it (backtests, the simulator); ``extra``
    keeps fields the schema does not use (they travel with the event, e.g. into
    the store, but are never scored).
    """

    ids: np.ndarray
    keys: np.ndarray
    times: np.ndarray
    numeric: dict[str, np.ndarray] = field(default_factory=dict)
    categorical: dict[str, np.ndarray] = field(default_factory=dict)
    positions: np.ndarray | None = None
    labels: np.ndarray | None = None
    extra: dict[str, np.ndarray] = field(default_factory=dict)
    #: text columns' encodings made while decoding (:mod:`tocsin.flat_json`), by the column's ``id``; see :meth:`encoding`
    encodings: dict[int, tuple[np.ndarray, tuple]] = field(default_factory=dict, repr=False, compare=False)

    def __post_init__(self) -> None:
        n = len(self.ids)
        if self.positions is None:
            self.positions = np.arange(n, dtype=np.int64)
        for name, column in (
            ("keys", self.keys),
            ("times", self.times),
            ("positions", self.positions),
            *self.numeric.items(),
            *self.categorical.items(),
            *self.extra.items(),
        ):
            if len(column) != n:
                raise ValueError(f"column {name!r} has {len(column)} rows, expected {n}")
        if self.labels is not None and len(self.labels) != n:
            raise ValueError(f"column 'labels' has {len(self.labels)} rows, expected {n}")

    def __len__(self) -> int:
        return len(self.ids)

    def column(self, name: str) -> np.ndarray:
        """A numeric or categorical column by field name."""
        if name in self.numeric:
            return self.numeric[name]
        if name in self.categorical:
            return self.categorical[name]
        raise KeyError(f"batch has no field {name!r}")

    def encoding(self, column: np.ndarray) -> tuple | None:
        """The decoder's ``(strings, code points, starts, lengths)`` of ``column``, one of this batch's own text
        columns, or None. Keyed by the array itself, so a column taken, joined or replaced has none: an
        encoding can never describe other rows than the column's."""
        found = self.encodings.get(id(column))
        return found[1] if found is not None and found[0] is column else None

    def take(self, index: np.ndarray | slice) -> EventBatch:
        """The rows selected by ``index`` (a slice, boolean mask or positions), in order."""
        return EventBatch(
            ids=self.ids[index],
            keys=self.keys[index],
            times=self.times[index],
            numeric={k: v[index] for k, v in self.numeric.items()},
            categorical={k: v[index] for k, v in self.categorical.items()},
            positions=self.positions[index],
            labels=None if self.labels is None else self.labels[index],
            extra={k: v[index] for k, v in self.extra.items()},
        )

    @classmethod
    def concat(cls, batches: list[EventBatch]) -> EventBatch:
        """Batches joined end to end; all must share the same fields."""
        if not batches:
            raise ValueError("concat needs at least one batch")
        first = batches[0]
        has_labels = all(b.labels is not None for b in batches)
        return cls(
            ids=np.concatenate([b.ids for b in batches]),
            keys=np.concatenate([b.keys for b in batches]),
            times=np.concatenate([b.times for b in batches]),
            numeric={k: np.concatenate([b.numeric[k] for b in batches]) for k in first.numeric},
            categorical={k: np.concatenate([b.categorical[k] for b in batches]) for k in first.categorical},
            positions=np.concatenate([b.positions for b in batches]),
            labels=np.concatenate([b.labels for b in batches]) if has_labels else None,
            extra={k: np.concatenate([b.extra[k] for b in batches]) for k in first.extra},
        )

    @classmethod
    def empty(cls, numeric: list[str], categorical: list[str]) -> EventBatch:
        return cls(
            ids=np.empty(0, dtype=object),
            keys=np.empty(0, dtype=object),
            times=np.empty(0, dtype=np.float64),
            numeric={k: np.empty(0, dtype=np.float64) for k in numeric},
            categorical={k: np.empty(0, dtype=object) for k in categorical},
            positions=np.empty(0, dtype=np.int64),
        )
