"""Risk from confirmed labels: how much confirmed fraud (or incident) a key has had lately.

Unsupervised detection cannot see a compromised terminal whose stolen-card
transactions look ordinary; the chargebacks that come back days later can. This
operator turns labels, as they arrive, into per-key features: for a merchant
(``by: merchant_id``), a card (``by: entity``) or any categorical field,

* ``{by.}confirmed_{h}``: confirmed positives of the key, time-decayed with
  half-life ``h`` (a count: 3.0 right after three confirmations, 1.5 one
  half-life later);
* ``{by.}confirmed_share_{h}``: those over the key's events decayed the same
  way: the share of its recent activity that was confirmed bad.

**No look-ahead.** A label changes the state only when it is *applied*
(:meth:`ConfirmedRisk.apply_labels`, at its arrival), so an event scored before
the label arrived never sees it; events are folded in exactly like every other
operator's (features from strictly earlier state, then the update), so the
output does not depend on where batches are cut. Labels are decayed from the
time they arrive, not from their event's time: a chargeback known today raises
today's risk.

Good at: merchant-, terminal- and device-level fraud that labels reveal and the
events hide. Fails at: keys never labelled (all zeros, which is the honest
answer), and label streams that are themselves biased (only alerted events get
verdicts: the share then measures alerting as much as fraud). Cost: two float
arrays per half-life and one time per key; O(1) per event and per label.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from tocsin.batch import EventBatch
from tocsin.durations import format_duration
from tocsin.features.base import (
    BatchKeys,
    FeatureOperator,
    FeatureOutput,
    format_number,
)
from tocsin.features.kernels import grow


@njit(cache=True, nogil=True)
def _events_update(key_ids, times, half_lives, positives, events, last, out_count, out_share):  # pragma: no cover - numba
    for i in range(len(key_ids)):
        k = key_ids[i]
        t = times[i]
        if t > last[k]:
            for j in range(len(half_lives)):
                decay = 0.5 ** ((t - last[k]) / half_lives[j]) if last[k] > -np.inf else 0.0
                positives[k, j] *= decay
                events[k, j] *= decay
            last[k] = t
        for j in range(len(half_lives)):
            out_count[i, j] = positives[k, j]
            out_share[i, j] = positives[k, j] / events[k, j] if events[k, j] > 0 else 0.0
            events[k, j] += 1.0


@njit(cache=True, nogil=True)
def _labels_update(key_ids, at, labels, half_lives, positives, events, last):  # pragma: no cover - numba
    for i in range(len(key_ids)):
        if labels[i] <= 0:
            continue
        k = key_ids[i]
        t = at[i]
        if t > last[k]:  # the key's clock moves to the label's arrival: decay everything to it, then count
            for j in range(len(half_lives)):
                decay = 0.5 ** ((t - last[k]) / half_lives[j]) if last[k] > -np.inf else 0.0
                positives[k, j] = positives[k, j] * decay + 1.0
                events[k, j] *= decay
            last[k] = t
        else:  # arrived before the key's latest event time: counted as already decayed that long
            for j in range(len(half_lives)):
                positives[k, j] += 0.5 ** ((last[k] - t) / half_lives[j])


class ConfirmedRisk(FeatureOperator):
    """Time-decayed confirmed positives per key and their share of the key's events.

    >>> import numpy as np
    >>> from tocsin.features.base import BatchKeys
    >>> risk = ConfirmedRisk(by="merchant_id", half_lives=[86_400.0])
    >>> day = EventBatch(ids=np.array(["a", "b"], dtype=object), keys=np.array(["c1", "c2"], dtype=object),
    ...                  times=np.array([0.0, 10.0]), numeric={}, categorical={})
    >>> keys = BatchKeys(by={"merchant_id": np.array([0, 0])})
    >>> risk.transform_update(day, keys).columns["merchant_id.confirmed_1d"].tolist()
    [0.0, 0.0]
    >>> risk.apply_labels(np.array([0]), np.array([20.0]), np.array([1]))  # one of them confirmed, at t=20
    >>> later = EventBatch(ids=np.array(["c"], dtype=object), keys=np.array(["c3"], dtype=object),
    ...                    times=np.array([86_420.0]), numeric={}, categorical={})
    >>> out = risk.transform_update(later, BatchKeys(by={"merchant_id": np.array([0])})).columns
    >>> out["merchant_id.confirmed_1d"].tolist(), round(float(out["merchant_id.confirmed_share_1d"][0]), 3)
    ([0.5], 0.5)
    """

    accepts_labels = True

    def __init__(self, by: str = "entity", half_lives: list[float] | tuple[float, ...] = (7 * 86_400.0, 28 * 86_400.0),
                 this: str = "this key") -> None:
        if not half_lives or any(h <= 0 for h in half_lives):
            raise ValueError(f"half_lives must be positive durations, got {half_lives}")
        self.by = by
        self.this = this
        self.half_lives = np.array(sorted(float(h) for h in half_lives), dtype=np.float64)
        prefix = "" if by == "entity" else f"{by}."
        self._count_names = [f"{prefix}confirmed_{format_duration(h)}" for h in self.half_lives]
        self._share_names = [f"{prefix}confirmed_share_{format_duration(h)}" for h in self.half_lives]
        self.names = [n for pair in zip(self._count_names, self._share_names) for n in pair]
        width = len(self.half_lives)
        self._positives = np.zeros((0, width))
        self._events = np.zeros((0, width))
        self._last = np.empty(0)

    def _grow(self, n_keys: int) -> None:
        if n_keys > len(self._last):
            self._last = grow(self._last, n_keys, -np.inf)
            pad = len(self._last) - len(self._positives)  # grow() may reserve more than asked
            self._positives = np.vstack([self._positives, np.zeros((pad, len(self.half_lives)))])
            self._events = np.vstack([self._events, np.zeros((pad, len(self.half_lives)))])

    def transform_update(self, batch: EventBatch, keys: BatchKeys) -> FeatureOutput:
        key_ids = np.ascontiguousarray(keys.by[self.by], dtype=np.int64)
        n, width = len(key_ids), len(self.half_lives)
        count, share = np.zeros((n, width)), np.zeros((n, width))
        if n:
            self._grow(int(key_ids.max()) + 1)
            _events_update(key_ids, np.ascontiguousarray(batch.times, dtype=np.float64), self.half_lives,
                           self._positives, self._events, self._last, count, share)
        columns = {}
        for j in range(width):
            columns[self._count_names[j]] = count[:, j]
            columns[self._share_names[j]] = share[:, j]
        return FeatureOutput(columns=columns)

    def apply_labels(self, key_ids: np.ndarray, at: np.ndarray, labels: np.ndarray) -> None:
        """Fold in labels that arrived at times ``at`` for events of keys ``key_ids`` (1: confirmed bad;
        0: confirmed normal, which changes nothing here: the share's denominator already counts it)."""
        key_ids = np.ascontiguousarray(key_ids, dtype=np.int64)
        if not len(key_ids):
            return
        self._grow(int(key_ids.max()) + 1)
        _labels_update(key_ids, np.ascontiguousarray(at, dtype=np.float64), np.ascontiguousarray(labels, dtype=np.int64),
                       self.half_lives, self._positives, self._events, self._last)

    def key_state(self, key_id: int) -> dict[str, float]:
        if key_id >= len(self._last) or not self._positives[key_id].any():
            return {}
        return {name: float(self._positives[key_id, j]) for j, name in enumerate(self._count_names)}

    def describe(self, name: str, row: int, batch: EventBatch, output: FeatureOutput) -> str:
        value = float(output.columns[name][row])
        if name in self._share_names:
            return f"{value:.0%} of {self.this}'s recent events confirmed bad"
        return f"{self.this} had {format_number(value)} confirmed bad events lately (decayed)"

    def state_dict(self) -> dict[str, np.ndarray]:
        return {"positives": self._positives.copy(), "events": self._events.copy(), "last": self._last.copy()}

    def load_state_dict(self, state: dict[str, np.ndarray]) -> None:
        self._positives = np.array(state["positives"], dtype=np.float64).reshape(-1, len(self.half_lives))
        self._events = np.array(state["events"], dtype=np.float64).reshape(-1, len(self.half_lives))
        self._last = np.array(state["last"], dtype=np.float64)
