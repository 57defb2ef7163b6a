"""Exact sliding-window counts and sums of a key's earlier events.

For each window ``W`` an event at time ``t`` gets ``count_{W}``, the number of
its key's *prior* events with time ``> t - W``, and when ``field`` is set
``{field}_sum_{W}``, the sum of their ``field``. Events are taken per key in
arrival order; a late event (time before its key's last time) is treated as
happening at the key's last time, here as in every operator, so the queue
stays sorted and eviction stays exact.

How: one FIFO queue of (time, value) nodes per key, linked through a node pool
shared by all keys (``node_time``/``node_value``/``node_next`` plus a free
list). Each window keeps its own per-key cursor into the queue with the count
and sum between it and the tail; an event advances the cursors past nodes
with ``time <= t - W`` and appends one node. Nodes that leave the largest
window return to the free list, so memory is one node per event still inside
the largest window.

Good at: exact counts (no buckets, no approximation) for any number of keys,
amortised O(windows) per event. Costs: memory grows with the event rate times
the largest window, so a 1-day window on a busy key holds a day of nodes; use
:mod:`tocsin.features.velocity` (constant memory) for long horizons. Sums are
running sums and may carry floating-point rounding of about ``1e-16`` times
the largest magnitude seen in the window; they reset to exactly 0 when a
window empties.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from tocsin.batch import EventBatch
from tocsin.features.base import BatchKeys, FeatureOperator, FeatureOutput, format_number
from tocsin.features.kernels import NO_NODE, grow, window_update
from tocsin.durations import format_duration


class WindowCounter(FeatureOperator):
    """Count (and sum of ``field``) of each key's earlier events in sliding windows.

    ``windows`` are durations in seconds; ``by`` is ``"entity"``, ``"global"``
    or a categorical field name; ``this`` names the key in sentences
    (``"this card"``).

    >>> from tocsin.batch import EventBatch
    >>> batch = EventBatch(
    ...     ids=np.array(["e1", "e2", "e3", "e4"], dtype=object),
    ...     keys=np.array(["c1", "c1", "c2", "c1"], dtype=object),
    ...     times=np.array([0.0, 30.0, 45.0, 75.0]),
    ...     numeric={"amount": np.array([10.0, 20.0, 5.0, 7.0])},
    ... )
    >>> op = WindowCounter([60.0], field="amount", this="this card")
    >>> op.names
    ['count_1m', 'amount_sum_1m']
    >>> out = op.transform_update(batch, BatchKeys(by={"entity": np.array([0, 0, 1, 0])}))
    >>> out.columns["count_1m"].tolist(), out.columns["amount_sum_1m"].tolist()
    ([0.0, 1.0, 0.0, 1.0], [0.0, 10.0, 0.0, 20.0])
    >>> op.describe("count_1m", 1, batch, out)
    '1 event in the last 1m for this card'
    """

    def __init__(
        self,
        windows: Sequence[float],
        field: str | None = None,
        by: str = "entity",
        this: str = "this key",
    ) -> None:
        if not windows:
            raise ValueError("WindowCounter needs at least one window")
        self.windows = np.array([float(w) for w in windows], dtype=np.float64)
        if not np.all(self.windows > 0):
            raise ValueError(f"windows must be positive durations in seconds, got {list(windows)}")
        self.field = field
        self.by = by
        self.this = this
        prefix = "" if by == "entity" else f"{by}."
        self._count_names = [f"{prefix}count_{format_duration(w)}" for w in self.windows]
        self._sum_names = [f"{prefix}{field}_sum_{format_duration(w)}" for w in self.windows] if field else []
        self.names = []
        for j in range(len(self.windows)):
            self.names.append(self._count_names[j])
            if field:
                self.names.append(self._sum_names[j])
        # largest window last: its cursor frees nodes, after the others moved past them
        self._order = np.argsort(self.windows, kind="stable").astype(np.int64)
        n_windows = len(self.windows)
        # packed per-key rows, see kernels.window_update
        self._int_fill = np.array([NO_NODE] * (1 + n_windows) + [0] * n_windows, dtype=np.int64)
        self._float_fill = np.array([-np.inf] + [0.0] * n_windows)
        self._key_ints = np.empty((0, 1 + 2 * n_windows), dtype=np.int64)
        self._key_floats = np.empty((0, 1 + n_windows), dtype=np.float64)
        self._node_time = np.empty(0, dtype=np.float64)
        self._node_value = np.empty(0, dtype=np.float64)
        self._node_next = np.empty(0, dtype=np.int64)
        self._pool = np.array([NO_NODE, 0], dtype=np.int64)  # free-list head, first never-used node

    def _ensure_capacity(self, n_keys: int, n_events: int) -> None:
        self._key_ints = grow(self._key_ints, n_keys, self._int_fill)
        self._key_floats = grow(self._key_floats, n_keys, self._float_fill)
        # every event adds one node; the free list may cover some, the untouched tail the rest
        needed = int(self._pool[1]) + n_events
        self._node_time = grow(self._node_time, needed, 0.0)
        self._node_value = grow(self._node_value, needed, 0.0)
        self._node_next = grow(self._node_next, needed, NO_NODE)

    def transform_update(self, batch: EventBatch, keys: BatchKeys) -> FeatureOutput:
        key_ids = np.ascontiguousarray(keys.by[self.by], dtype=np.int64)
        n = len(key_ids)
        times = np.ascontiguousarray(batch.times, dtype=np.float64)
        if self.field:
            values = np.ascontiguousarray(batch.numeric[self.field], dtype=np.float64)
        else:
            values = np.zeros(n, dtype=np.float64)
        n_windows = len(self.windows)
        out_count = np.zeros((n, n_windows), dtype=np.float64)
        out_sum = np.zeros((n, n_windows), dtype=np.float64)
        if n:
            self._ensure_capacity(int(key_ids.max()) + 1, n)
            window_update(
                key_ids, times, values, self.windows, self._order,
                self._key_ints, self._key_floats,
                self._node_time, self._node_value, self._node_next, self._pool,
                out_count, out_sum,
            )  # fmt: skip
        columns: dict[str, np.ndarray] = {}
        for j in range(n_windows):
            columns[self._count_names[j]] = out_count[:, j]
            if self.field:
                columns[self._sum_names[j]] = out_sum[:, j]
        return FeatureOutput(columns={name: columns[name] for name in self.names})

    def key_state(self, key_id: int) -> dict[str, float]:
        """Counts and sums of ``key_id``'s window as of its last event (that event included)."""
        if key_id >= len(self._key_floats) or self._key_floats[key_id, 0] == -np.inf:
            return {}
        n_windows = len(self.windows)
        state: dict[str, float] = {}
        for j in range(n_windows):
            state[self._count_names[j]] = float(self._key_ints[key_id, 1 + n_windows + j])
            if self.field:
                state[self._sum_names[j]] = float(self._key_floats[key_id, 1 + j])
        return state

    def describe(self, name: str, row: int, batch: EventBatch, output: FeatureOutput) -> str:
        value = float(output.columns[name][row])
        if name in self._count_names:
            window = format_duration(self.windows[self._count_names.index(name)])
            count = int(round(value))
            return f"{count} event{'' if count == 1 else 's'} in the last {window} for {self.this}"
        window = format_duration(self.windows[self._sum_names.index(name)])
        return f"{self.field} {format_number(value, 6)} in total over the last {window} for {self.this}"

    def state_dict(self) -> dict[str, np.ndarray]:
        n_windows = len(self.windows)
        return {
            "windows": self.windows.copy(),
            "last_time": self._key_floats[:, 0].copy(),
            "tail": self._key_ints[:, 0].copy(),
            "start": self._key_ints[:, 1 : 1 + n_windows].copy(),
            "counts": self._key_ints[:, 1 + n_windows :].copy(),
            "sums": self._key_floats[:, 1:].copy(),
            "node_time": self._node_time.copy(),
            "node_value": self._node_value.copy(),
            "node_next": self._node_next.copy(),
            "pool": self._pool.copy(),
        }

    def load_state_dict(self, state: dict[str, np.ndarray]) -> None:
        if not np.array_equal(state["windows"], self.windows):
            raise ValueError(f"state has windows {state['windows'].tolist()}, this operator {self.windows.tolist()}")
        self._key_ints = np.column_stack([state["tail"], state["start"], state["counts"]]).astype(np.int64)
        self._key_floats = np.column_stack([state["last_time"], state["sums"]]).astype(np.float64)
        self._node_time = np.array(state["node_time"], dtype=np.float64)
        self._node_value = np.array(state["node_value"], dtype=np.float64)
        self._node_next = np.array(state["node_next"], dtype=np.int64)
        self._pool = np.array(state["pool"], dtype=np.int64)
