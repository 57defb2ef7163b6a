"""Whether a key has seen a categorical value before, and how often.

For an event with key ``k`` and value ``v`` of categorical ``field``:
``{field}_novel`` is 1.0 if ``k``'s prior events never had ``v`` (else 0.0),
``{field}_seen_count`` is how many prior events of ``k`` had ``v``, and
``{field}_distinct`` is how many distinct values ``k`` had before this event,
and ``{field}_share`` is the share of ``k``'s prior events that had ``v`` (0
without history): unlike the counts, which only grow as a key ages, the share
is stationary, so "a city this card has used in 1 of 40 purchases" means the
same on day 2 and on day 200.
Events are taken per key in arrival order, each counted after its features.

How: one open-addressing hash table (linear probing) in a NumPy ``int64``
array of rows ``[code, count]``, code = ``key_id << 32 | value_id`` (``-1`` =
empty slot; code and count share a cache line), plus a distinct count per key. The table doubles and is rehashed
before a batch that could push its load above 1/2, so probes stay short.

Good at: "first purchase at this merchant", "new device for this user" in
O(1) per event. Costs and limits: memory is about 32 bytes per distinct
(key, value) pair ever seen, and pairs are never forgotten, so a
high-cardinality field (a free-text value, a session id) grows the table
without bound and is always novel; such a field does not belong here. Key ids
must stay below 2**31 and value ids below 2**32.
"""

from __future__ import annotations

import numpy as np

from tocsin.batch import EventBatch
from tocsin.features.base import BatchKeys, FeatureOperator, FeatureOutput
from tocsin.features.kernels import EMPTY_SLOT, count_before, grow, novelty_rehash, novelty_update

MIN_TABLE_SIZE = 1024


def empty_table(size: int) -> np.ndarray:
    """An open-addressing table of rows [code, count]; code -1 marks an empty slot."""
    table = np.zeros((size, 2), dtype=np.int64)
    table[:, 0] = EMPTY_SLOT
    return table


def reserved(table: np.ndarray, used: int, n_new: int) -> np.ndarray:
    """``table``, or a rehashed one twice as large as needed, so that ``n_new`` more codes keep its load at most 1/2."""
    size = len(table)
    needed = used + n_new
    if 2 * needed <= size:
        return table
    while 2 * needed > size:
        size *= 2
    bigger = empty_table(size)
    novelty_rehash(table, bigger)
    return bigger


class Novelty(FeatureOperator):
    """Novelty, prior count and prior distinct count of a categorical ``field`` per key.

    >>> from tocsin.batch import EventBatch
    >>> batch = EventBatch(
    ...     ids=np.array(["e1", "e2", "e3", "e4"], dtype=object),
    ...     keys=np.array(["c1", "c1", "c1", "c1"], dtype=object),
    ...     times=np.array([0.0, 1.0, 2.0, 3.0]),
    ...     categorical={"merchant_id": np.array(["M1", "M2", "M1", "M1"], dtype=object)},
    ... )
    >>> op = Novelty("merchant_id", this="this card")
    >>> keys = BatchKeys(by={"entity": np.zeros(4, dtype=np.int64)},
    ...                  values={"merchant_id": np.array([0, 1, 0, 0])})
    >>> out = op.transform_update(batch, keys)
    >>> [out.columns[name].tolist() for name in op.names]
    [[1.0, 1.0, 0.0, 0.0], [0.0, 0.0, 1.0, 2.0], [0.0, 1.0, 2.0, 2.0], [0.0, 0.0, 0.5, 0.6666666666666666]]
    >>> op.describe("merchant_id_novel", 1, batch, out)
    'merchant_id M2 never seen before for this card'
    >>> op.describe("merchant_id_seen_count", 3, batch, out)
    'merchant_id M1 seen 2 times before for this card'
    """

    #: a longer history means fewer novel values, more distinct ones, and shares that settle (measured: a
    #: card's share of purchases in this city was exactly 1.0 for 79% of events after 400k simulated
    #: transactions and for 22% a million later, in a steady stream)
    grows_with_history = True

    def __init__(self, field: str, by: str = "entity", this: str = "this key") -> None:
        self.field = field
        self.by = by
        self.this = this
        prefix = "" if by == "entity" else f"{by}."
        self._novel_name = f"{prefix}{field}_novel"
        self._seen_name = f"{prefix}{field}_seen_count"
        self._distinct_name = f"{prefix}{field}_distinct"
        self._share_name = f"{prefix}{field}_share"
        self.names = [self._novel_name, self._seen_name, self._distinct_name, self._share_name]
        self._table = empty_table(MIN_TABLE_SIZE)
        self._used = np.zeros(1, dtype=np.int64)
        self._distinct = np.empty(0, dtype=np.int64)
        self._totals = np.empty(0, dtype=np.int64)

    def _reserve(self, n_new: int) -> None:
        """Grow the table so that ``n_new`` more pairs keep its load at most 1/2."""
        self._table = reserved(self._table, int(self._used[0]), n_new)

    def transform_update(self, batch: EventBatch, keys: BatchKeys) -> FeatureOutput:
        key_ids = np.ascontiguousarray(keys.by[self.by], dtype=np.int64)
        value_ids = np.ascontiguousarray(keys.values[self.field], dtype=np.int64)
        n = len(key_ids)
        novel = np.zeros(n, dtype=np.float64)
        seen = np.zeros(n, dtype=np.float64)
        distinct = np.zeros(n, dtype=np.float64)
        share = np.zeros(n, dtype=np.float64)
        if n:
            n_keys = int(key_ids.max()) + 1
            if n_keys > 2**31 or int(value_ids.max()) >= 2**32:
                raise ValueError("Novelty supports fewer than 2**31 keys and 2**32 values per field")
            self._distinct = grow(self._distinct, n_keys, 0)
            self._reserve(n)
            novelty_update(
                key_ids, value_ids, self._table, self._distinct, self._used,
                novel, seen, distinct,
            )  # fmt: skip
            self._totals = grow(self._totals, n_keys, 0)
            prior_total = np.empty(n, dtype=np.int64)
            count_before(key_ids, self._totals, prior_total)
            np.divide(seen, prior_total, out=share, where=prior_total > 0)
        return FeatureOutput(
            columns={self._novel_name: novel, self._seen_name: seen, self._distinct_name: distinct, self._share_name: share}
        )

    def key_state(self, key_id: int) -> dict[str, float]:
        """How many distinct values ``key_id`` has had, its last event included."""
        if key_id >= len(self._distinct) or self._distinct[key_id] == 0:
            return {}
        return {self._distinct_name: float(self._distinct[key_id])}

    def describe(self, name: str, row: int, batch: EventBatch, output: FeatureOutput) -> str:
        value = batch.categorical[self.field][row]
        if name == self._distinct_name:
            count = int(output.columns[name][row])
            return f"{self.this} had {count} distinct {self.field} value{'' if count == 1 else 's'} before"
        if name == self._share_name and output.columns[self._seen_name][row] > 0:
            return f"{self.field} {value} in {output.columns[name][row]:.0%} of {self.this}'s earlier events"
        seen = int(output.columns[self._seen_name][row])
        if seen == 0:
            return f"{self.field} {value} never seen before for {self.this}"
        times = "once" if seen == 1 else f"{seen} times"
        return f"{self.field} {value} seen {times} before for {self.this}"

    def state_dict(self) -> dict[str, np.ndarray]:
        return {
            "table_keys": self._table[:, 0].copy(),
            "table_counts": self._table[:, 1].copy(),
            "used": self._used.copy(),
            "distinct": self._distinct.copy(),
            "totals": self._totals.copy(),
        }

    def load_state_dict(self, state: dict[str, np.ndarray]) -> None:
        table_keys = np.array(state["table_keys"], dtype=np.int64)
        if len(table_keys) & (len(table_keys) - 1):
            raise ValueError(f"novelty table size must be a power of two, got {len(table_keys)}")
        self._table = np.column_stack([table_keys, state["table_counts"]]).astype(np.int64)
        self._used = np.array(state["used"], dtype=np.int64)
        self._distinct = np.array(state["distinct"], dtype=np.int64)
        self._totals = np.array(state["totals"], dtype=np.int64)
