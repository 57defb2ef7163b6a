"""A key's recent event rate, as a time-decayed count.

Per key a decayed count ``C`` with half-life ``H``: each event first decays it
by ``a = 2**(-dt/H)`` (``dt`` seconds since the key's last event, 0 for a late
event) and then adds 1. ``velocity_per_min_{H}`` of an event is the prior
decayed count ``aC`` (the event itself not included) times ``ln 2 / H`` per
second, times 60: for a key with a steady rate ``r`` events/minute it tends to
``r`` (for ``r`` well above one event per half-life), a burst raises it at once
and it relaxes with half-life ``H`` afterwards.

With ``baseline`` B, a second decayed count with half-life B runs beside it
and ``velocity_ratio_{H}_{B}`` is the short rate over the key's own long rate
(floored at the rate one event per B gives): "this merchant takes 30× its usual
traffic right now" means the same for a corner shop and a supermarket.

Good at: bursts and rate changes with two floats per key and O(1) per event,
for horizons of any length. Where it fails: it is not a count in a window (use
:mod:`tocsin.features.windows` for "at most 5 in 1 minute" rules), and with
fewer than a few events per half-life it underestimates the rate.
"""

from __future__ import annotations

import math

import numpy as np

from tocsin.batch import EventBatch
from tocsin.features.base import BatchKeys, FeatureOperator, FeatureOutput, format_number
from tocsin.features.kernels import grow, velocity_update
from tocsin.durations import format_duration

_EMPTY_ROW = np.array([-np.inf, 0.0])


class Velocity(FeatureOperator):
    """``velocity_per_min_{H}``: time-decayed events per minute of the key before this event.

    >>> from tocsin.batch import EventBatch
    >>> batch = EventBatch(
    ...     ids=np.array(["e1", "e2", "e3"], dtype=object),
    ...     keys=np.array(["c1", "c1", "c1"], dtype=object),
    ...     times=np.array([0.0, 0.0, 600.0]),
    ... )
    >>> op = Velocity(half_life=600.0, this="this card")
    >>> out = op.transform_update(batch, BatchKeys(by={"entity": np.zeros(3, dtype=np.int64)}))
    >>> np.round(out.columns["velocity_per_min_10m"], 4).tolist()
    [0.0, 0.0693, 0.0693]
    >>> op.describe("velocity_per_min_10m", 2, batch, out)
    '0.0693 events/min recently for this card'
    """

    def __init__(self, half_life: float = 600.0, by: str = "entity", this: str = "this key", baseline: float | None = None) -> None:
        if half_life <= 0:
            raise ValueError(f"half_life must be a positive number of seconds, got {half_life}")
        if baseline is not None and baseline <= half_life:
            raise ValueError(f"baseline must be longer than half_life, got {baseline} <= {half_life}")
        self.half_life = float(half_life)
        self.baseline = None if baseline is None else float(baseline)
        self.by = by
        self.this = this
        prefix = "" if by == "entity" else f"{by}."
        self._name = f"{prefix}velocity_per_min_{format_duration(self.half_life)}"
        self.names = [self._name]
        self._state = np.empty((0, 2), dtype=np.float64)  # rows [last_time, decayed count]
        if self.baseline is not None:
            self._ratio_name = f"{prefix}velocity_ratio_{format_duration(self.half_life)}_{format_duration(self.baseline)}"
            self.names.append(self._ratio_name)
            self._slow = np.empty((0, 2), dtype=np.float64)

    def transform_update(self, batch: EventBatch, keys: BatchKeys) -> FeatureOutput:
        key_ids = np.ascontiguousarray(keys.by[self.by], dtype=np.int64)
        out = np.zeros(len(key_ids), dtype=np.float64)
        if len(key_ids):
            self._state = grow(self._state, int(key_ids.max()) + 1, _EMPTY_ROW)
            times = np.ascontiguousarray(batch.times, dtype=np.float64)
            velocity_update(key_ids, times, self.half_life, self._state, out)
        columns = {self._name: out}
        if self.baseline is not None:
            slow = np.zeros(len(key_ids), dtype=np.float64)
            if len(key_ids):
                self._slow = grow(self._slow, int(key_ids.max()) + 1, _EMPTY_ROW)
                velocity_update(key_ids, times, self.baseline, self._slow, slow)
            columns[self._ratio_name] = out / np.maximum(slow, math.log(2.0) / self.baseline * 60.0)
        return FeatureOutput(columns=columns)

    def key_state(self, key_id: int) -> dict[str, float]:
        """The rate of ``key_id`` just after its last event (that event included)."""
        if key_id >= len(self._state) or self._state[key_id, 1] == 0:
            return {}
        return {self._name: float(self._state[key_id, 1]) * math.log(2.0) / self.half_life * 60.0}

    def describe(self, name: str, row: int, batch: EventBatch, output: FeatureOutput) -> str:
        if self.baseline is not None and name == self._ratio_name:
            ratio = float(output.columns[name][row])
            return f"{format_number(ratio)}× the usual rate of events for {self.this}"
        return f"{format_number(float(output.columns[name][row]))} events/min recently for {self.this}"

    def state_dict(self) -> dict[str, np.ndarray]:
        state = {"last_time": self._state[:, 0].copy(), "count": self._state[:, 1].copy()}
        if self.baseline is not None:
            state["baseline_count"] = self._slow[:, 1].copy()
        return state

    def load_state_dict(self, state: dict[str, np.ndarray]) -> None:
        self._state = np.column_stack([state["last_time"], state["count"]]).astype(np.float64).reshape(-1, 2)
        if self.baseline is not None:
            self._slow = np.column_stack([state["last_time"], state["baseline_count"]]).astype(np.float64).reshape(-1, 2)
