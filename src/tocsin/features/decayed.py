"""How unusual a value is for its key: z-score and ratio against a time-decayed mean and std.

Per key the operator keeps an exponentially time-decayed weight ``W``, mean
``M`` and sum of squared deviations ``S`` of ``field`` with half-life ``H``:
an observation ``dt`` seconds old weighs ``a = 2**(-dt/H)``. Folding in an event
(weighted West update)::

    W' = a W + 1,   M' = M + (x - M) / W',   S' = a S + (x - M)(x - M'),   var = S / W

Before the event is folded in, with ``aW`` the decayed prior weight:

- ``{field}_zscore_{H}`` = ``(x - M) / max(std, 0.1 |M|, 1e-9)`` when ``aW >= 2``, else 0
  (the ``0.1 |M|`` floor keeps a key that always paid exactly 40 from calling 41 a 10-sigma event);
- ``{field}_ratio_{H}`` = ``x / M`` when ``aW >= 1`` and ``|M| > 1e-12``, else 1;
- ``{field}_mean_{H}``, ``{field}_std_{H}``: ``M`` and ``sqrt(var)``, 0 when ``aW == 0``.

Only the ``outputs`` asked for become feature columns; mean, std and the prior
weight (``{field}_weight_{H}``) always go to the context for explanations.
Events are taken per key in arrival order; a late event counts as happening at
its key's last time (``dt = max(0, t - last)``). A key whose decayed weight
reaches 0 (first event, or so long ago that ``a`` underflows) restarts at
the event.

Good at: a constant-memory (4 floats per key), O(1)-per-event baseline that
forgets old behaviour smoothly. Where it fails: the mean and std are not
robust, so one huge value inflates the std and hides the next few outliers of
that key for about a half-life; and a key needs a prior weight of 2 (at least
two recent events) before it gets any z-score at all.
"""

from __future__ import annotations

import numpy as np

from tocsin.batch import EventBatch
from tocsin.features.base import BatchKeys, FeatureOperator, FeatureOutput, format_number
from tocsin.features.kernels import decayed_stats_update, grow
from tocsin.durations import format_duration

OUTPUTS = ("zscore", "ratio", "mean", "std")
_EMPTY_ROW = np.array([-np.inf, 0.0, 0.0, 0.0])
_STATE_COLUMNS = ("last_time", "weight", "mean", "m2")


class DecayedStats(FeatureOperator):
    """z-score, ratio, mean and std of ``field`` against each key's decayed history.

    >>> from tocsin.batch import EventBatch
    >>> batch = EventBatch(
    ...     ids=np.arange(5).astype(str).astype(object),
    ...     keys=np.array(["c1"] * 5, dtype=object),
    ...     times=np.array([0.0, 60.0, 120.0, 180.0, 240.0]),
    ...     numeric={"amount": np.array([40.0, 60.0, 50.0, 45.0, 4200.0])},
    ... )
    >>> op = DecayedStats("amount", half_life=86400.0, this="this card", possessive="this card's")
    >>> out = op.transform_update(batch, BatchKeys(by={"entity": np.zeros(5, dtype=np.int64)}))
    >>> op.names
    ['amount_zscore_1d', 'amount_ratio_1d']
    >>> np.round(out.columns["amount_zscore_1d"], 2).tolist()
    [0.0, 0.0, 0.0, -0.61, 561.45]
    >>> op.describe("amount_zscore_1d", 4, batch, out)
    "amount 4,200 vs this card's usual 34–63.5"
    >>> op.describe("amount_zscore_1d", 0, batch, out)
    'amount 40, first seen for this card'
    """

    def __init__(
        self,
        field: str,
        half_life: float = 86_400.0,
        outputs: tuple[str, ...] | list[str] = ("zscore", "ratio"),
        by: str = "entity",
        this: str = "this key",
        possessive: str = "this key's",
    ) -> None:
        if half_life <= 0:
            raise ValueError(f"half_life must be a positive number of seconds, got {half_life}")
        unknown = [o for o in outputs if o not in OUTPUTS]
        if unknown:
            raise ValueError(f"unknown outputs {unknown}; choose from {list(OUTPUTS)}")
        self.field = field
        self.half_life = float(half_life)
        self.outputs = list(outputs)
        self.by = by
        self.this = this
        self.possessive = possessive
        prefix = "" if by == "entity" else f"{by}."
        h = format_duration(self.half_life)
        self._column = {o: f"{prefix}{field}_{o}_{h}" for o in (*OUTPUTS, "weight")}
        self.names = [self._column[o] for o in self.outputs]
        self.context_names = [self._column["mean"], self._column["std"], self._column["weight"]]
        self._state = np.empty((0, 4), dtype=np.float64)  # rows [last_time, weight, mean, m2]

    def transform_update(self, batch: EventBatch, keys: BatchKeys) -> FeatureOutput:
        key_ids = np.ascontiguousarray(keys.by[self.by], dtype=np.int64)
        n = len(key_ids)
        out = {o: np.zeros(n, dtype=np.float64) for o in (*OUTPUTS, "weight")}
        out["ratio"][:] = 1.0
        if n:
            self._state = grow(self._state, int(key_ids.max()) + 1, _EMPTY_ROW)
            decayed_stats_update(
                key_ids,
                np.ascontiguousarray(batch.times, dtype=np.float64),
                np.ascontiguousarray(batch.numeric[self.field], dtype=np.float64),
                self.half_life,
                self._state,
                out["zscore"], out["ratio"], out["mean"], out["std"], out["weight"],
            )  # fmt: skip
        return FeatureOutput(
            columns={self._column[o]: out[o] for o in self.outputs},
            context={self._column[o]: out[o] for o in ("mean", "std", "weight")},
        )

    def key_state(self, key_id: int) -> dict[str, float]:
        """Mean, std and weight of ``key_id`` as of its last event (that event included)."""
        if key_id >= len(self._state) or self._state[key_id, 1] == 0:
            return {}
        _, weight, mean, m2 = self._state[key_id].tolist()
        return {
            self._column["mean"]: mean,
            self._column["std"]: float(np.sqrt(max(m2 / weight, 0.0))),
            self._column["weight"]: weight,
        }

    def describe(self, name: str, row: int, batch: EventBatch, output: FeatureOutput) -> str:
        x = format_number(float(batch.numeric[self.field][row]), 6)
        if output.context[self._column["weight"]][row] == 0:
            return f"{self.field} {x}, first seen for {self.this}"
        mean = float(output.context[self._column["mean"]][row])
        std = float(output.context[self._column["std"]][row])
        low = mean - 2 * std
        if low < 0 <= mean and float(batch.numeric[self.field][row]) >= 0:
            low = 0.0  # a non-negative quantity (an amount): a negative "usual" bound reads as nonsense
        return f"{self.field} {x} vs {self.possessive} usual {format_number(low)}–{format_number(mean + 2 * std)}"

    def state_dict(self) -> dict[str, np.ndarray]:
        return {name: self._state[:, j].copy() for j, name in enumerate(_STATE_COLUMNS)}

    def load_state_dict(self, state: dict[str, np.ndarray]) -> None:
        self._state = np.column_stack([state[name] for name in _STATE_COLUMNS]).astype(np.float64).reshape(-1, 4)
