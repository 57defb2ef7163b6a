"""Seconds since a key's previous event.

``seconds_since_last`` of an event at time ``t`` is ``t - last``, where ``last``
is the latest time among its key's prior events (in arrival order); it is
never negative (a late event gets 0, then ``last = max(last, t)``), it is
``cap`` for a key's first event and it is at most ``cap``, so "never seen" and
"not seen for a month" look the same to a detector.

Good at: bursts (card testing, retry storms) show as runs of tiny values.
Where it fails: a single number cannot tell a key that is always fast from
one that suddenly is; pair it with :mod:`tocsin.features.velocity` or a
decayed baseline of the gap. Cost: one float per key, O(1) per event.
"""

from __future__ import annotations

import numpy as np

from tocsin.batch import EventBatch
from tocsin.features.base import BatchKeys, FeatureOperator, FeatureOutput, format_number
from tocsin.features.kernels import grow, recency_update


def format_seconds(seconds: float) -> str:
    """A gap in the largest unit that keeps it readable.

    >>> format_seconds(2.0), format_seconds(90.0), format_seconds(7200.0), format_seconds(3 * 86400.0)
    ('2s', '1.5m', '2h', '3d')
    """
    for unit, size in (("d", 86400.0), ("h", 3600.0), ("m", 60.0)):
        if seconds >= size:
            return f"{format_number(seconds / size)}{unit}"
    return f"{format_number(seconds)}s"


class Recency(FeatureOperator):
    """``seconds_since_last``: time since the key's previous event, capped at ``cap``.

    >>> from tocsin.batch import EventBatch
    >>> batch = EventBatch(
    ...     ids=np.array(["e1", "e2", "e3"], dtype=object),
    ...     keys=np.array(["c1", "c1", "c1"], dtype=object),
    ...     times=np.array([100.0, 102.0, 101.0]),
    ... )
    >>> op = Recency(cap=3600.0, this="this card", possessive="this card's")
    >>> out = op.transform_update(batch, BatchKeys(by={"entity": np.zeros(3, dtype=np.int64)}))
    >>> out.columns["seconds_since_last"].tolist()
    [3600.0, 2.0, 0.0]
    >>> op.describe("seconds_since_last", 1, batch, out)
    "2s since this card's previous event"
    """

    def __init__(
        self,
        cap: float = 30 * 86_400.0,
        by: str = "entity",
        this: str = "this key",
        possessive: str = "this key's",
    ) -> None:
        if cap <= 0:
            raise ValueError(f"cap must be a positive number of seconds, got {cap}")
        self.cap = float(cap)
        self.by = by
        self.this = this
        self.possessive = possessive
        prefix = "" if by == "entity" else f"{by}."
        self._name = f"{prefix}seconds_since_last"
        self._last_name = f"{prefix}last_time"
        self.names = [self._name]
        self._last_time = np.empty(0, dtype=np.float64)

    def transform_update(self, batch: EventBatch, keys: BatchKeys) -> FeatureOutput:
        key_ids = np.ascontiguousarray(keys.by[self.by], dtype=np.int64)
        out = np.zeros(len(key_ids), dtype=np.float64)
        if len(key_ids):
            self._last_time = grow(self._last_time, int(key_ids.max()) + 1, -np.inf)
            recency_update(key_ids, np.ascontiguousarray(batch.times, dtype=np.float64), self.cap, self._last_time, out)
        return FeatureOutput(columns={self._name: out})

    def key_state(self, key_id: int) -> dict[str, float]:
        """The time of ``key_id``'s latest event."""
        if key_id >= len(self._last_time) or self._last_time[key_id] == -np.inf:
            return {}
        return {self._last_name: float(self._last_time[key_id])}

    def describe(self, name: str, row: int, batch: EventBatch, output: FeatureOutput) -> str:
        seconds = float(output.columns[name][row])
        if seconds >= self.cap:
            return f"no event for {self.this} in the previous {format_seconds(self.cap)}"
        return f"{format_seconds(seconds)} since {self.possessive} previous event"

    def state_dict(self) -> dict[str, np.ndarray]:
        return {"last_time": self._last_time.copy()}

    def load_state_dict(self, state: dict[str, np.ndarray]) -> None:
        self._last_time = np.array(state["last_time"], dtype=np.float64)
