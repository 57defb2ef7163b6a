"""Navigation: how regular a key's pace is, and whether its steps from page to page are ones people take.

For a stream of page views (a visitor's clicks), per key, over the steps of a
visit (two consecutive events of the key at most ``max_gap`` apart; a longer
gap is a new visit and neither a gap nor a step):

* ``gap_log_std``: the spread of the natural log of the key's recent gaps
  (exponentially weighted over about ``span`` gaps; the running value for the
  first ones). People read, scroll and wander: their think times are heavy
  tailed and the spread is about 1 (a gap of 3 s, then 40 s, then 8 s). A
  script requesting a page every 5 s ± 3 % has a spread of 0.02. It is 1.0
  (no evidence) until the key has two gaps; gaps are floored at 0.05 s.
* ``gaps``: how many gaps that estimate rests on (read it with the spread:
  two gaps alike prove nothing).
* ``{field}_rare_step_share``: the share of the key's recent steps (the same
  weighting, over ``span`` steps) from one ``field`` value to the next (its
  previous page to this one) that every key together had taken fewer than
  ``rare_below`` times before: the site's graph, learned from the traffic. A
  person follows links others follow (home to a category, a category to a
  product, a product to the cart); a crawler walking product pages in id
  order, or jumping from deep link to deep link, steps where nobody has.
* ``{field}_steps``: how many steps that share rests on.

Each event's values include its own gap and step (its previous event is the
key's, from earlier events); then the state is updated. Events are taken per
key in arrival order; a late event counts as a gap of 0.

Good at: inhumanly regular request cadence (any navigation), and sequences no
person follows (any pace). Where it fails: a bot that jitters its pace the way
people do and follows popular links looks human here (the volume and the
key's other features may still show it); a site whose pages are mostly
reached from search engines has few internal steps to learn. Costs: seven
floats per key, and 32 bytes per distinct step ever taken (the global step
table, an open-addressing hash table like novelty's, never forgotten: a field
with unbounded values such as full URLs with query strings does not belong
here; use the page's route).
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from tocsin.batch import EventBatch
from tocsin.features.base import BatchKeys, FeatureOperator, FeatureOutput
from tocsin.features.kernels import EMPTY_SLOT, _slot, grow
from tocsin.features.novelty import MIN_TABLE_SIZE, empty_table, reserved

#: gaps shorter than this (two requests in the same millisecond) count as this long in the log
MIN_GAP = 0.05
#: the spread reported before a key has two gaps: no evidence of regularity
NO_SPREAD = 1.0
#: a key's steps are learned (counted in the step table) while fewer than LEARN_AFTER of its steps were judged
#: or its rare-step share is below LEARN_BELOW
LEARN_AFTER, LEARN_BELOW = 3.0, 0.5

# per-key state columns
N_LAST_TIME, N_LAST_VALUE, N_GAPS, N_MEAN, N_VAR, N_STEPS, N_RARE = range(7)
_EMPTY_ROW = np.array([-np.inf, -1.0, 0.0, 0.0, 0.0, 0.0, 0.0])


@njit(cache=True, nogil=True)
def navigation_update(key_ids, times, value_ids, span, max_gap, rare_below, min_known, state, table, used, leaves,
                      out_std, out_gaps, out_rare, out_steps):
    """Gap spread and rare-step share per event, state updated event by event (see the module docstring).

    ``table`` rows are ``[code, count]`` with ``code = previous value << 32 | value`` (-1 = empty), a
    power-of-two number of rows with room for every step of the batch; ``used[0]`` counts occupied slots;
    ``leaves[v]`` counts the steps taken from value ``v`` (one row per value id of the batch).
    """
    mask = table.shape[0] - 1
    floor_log = math.log(MIN_GAP)
    for i in range(key_ids.shape[0]):
        k = key_ids[i]
        t = times[i]
        v = value_ids[i]
        last = state[k, N_LAST_TIME]
        if last != -np.inf:
            gap = max(t - last, 0.0)
            if gap <= max_gap:
                x = math.log(gap) if gap > MIN_GAP else floor_log
                n = state[k, N_GAPS] + 1.0
                a = max(1.0 / n, 1.0 / span)
                delta = x - state[k, N_MEAN]
                state[k, N_MEAN] += a * delta
                state[k, N_VAR] = (1.0 - a) * (state[k, N_VAR] + a * delta * delta)
                state[k, N_GAPS] = n
                previous = np.int64(state[k, N_LAST_VALUE])
                code = (previous << 32) | v
                slot = _slot(table, code, mask)
                if table[slot, 0] == EMPTY_SLOT:
                    table[slot, 0] = code
                    table[slot, 1] = 0
                    used[0] += 1
                # a key whose recent steps are mostly rare does not teach the graph (crawlers repeat their order)
                learn = state[k, N_STEPS] < LEARN_AFTER or state[k, N_RARE] < LEARN_BELOW
                if leaves[previous] >= min_known:  # a page people have left often enough to know its links
                    rare = 1.0 if table[slot, 1] < rare_below else 0.0
                    steps = state[k, N_STEPS] + 1.0
                    a = max(1.0 / steps, 1.0 / span)
                    state[k, N_RARE] += a * (rare - state[k, N_RARE])
                    state[k, N_STEPS] = steps
                if learn:
                    table[slot, 1] += 1
                    leaves[previous] += 1
            if t > last:
                state[k, N_LAST_TIME] = t
        else:
            state[k, N_LAST_TIME] = t
        state[k, N_LAST_VALUE] = v
        out_gaps[i] = state[k, N_GAPS]
        out_std[i] = math.sqrt(state[k, N_VAR]) if state[k, N_GAPS] >= 2.0 else NO_SPREAD
        out_rare[i] = state[k, N_RARE]
        out_steps[i] = state[k, N_STEPS]


class Navigation(FeatureOperator):
    """Regularity of the key's pace and rarity of its steps between values of a categorical ``field``.

    >>> batch = EventBatch(
    ...     ids=np.array([f"e{i}" for i in range(6)], dtype=object), keys=np.array(["bot"] * 6, dtype=object),
    ...     times=np.array([0.0, 5.0, 10.1, 15.0, 20.0, 25.05]),
    ...     categorical={"page": np.array(["/p/1", "/p/2", "/p/3", "/p/4", "/p/5", "/p/6"], dtype=object)})
    >>> op = Navigation("page", min_known=0, this="this visitor", possessive="this visitor's")
    >>> keys = BatchKeys(by={"entity": np.zeros(6, dtype=np.int64)}, values={"page": np.arange(6)})
    >>> out = op.transform_update(batch, keys)
    >>> np.round(out.columns["gap_log_std"], 3).tolist(), out.columns["gaps"].tolist()
    ([1.0, 1.0, 0.01, 0.016, 0.014, 0.013], [0.0, 1.0, 2.0, 3.0, 4.0, 5.0])
    >>> out.columns["page_rare_step_share"].tolist()
    [0.0, 1.0, 1.0, 1.0, 1.0, 1.0]
    >>> op.describe("gap_log_std", 5, batch, out)
    "this visitor's last 5 gaps between events vary by a factor of 1.01 (log spread 0.013); people's vary by about 2.7"
    >>> op.describe("page_rare_step_share", 5, batch, out)
    '100% of the last 5 steps of this visitor between page values were taken by no one, or fewer than 2 times, before'
    """

    def __init__(self, field: str, span: int = 10, max_gap: float = 1_800.0, rare_below: int = 2, min_known: int = 5,
                 by: str = "entity",
                 this: str = "this key", possessive: str = "this key's") -> None:
        if span < 2:
            raise ValueError(f"span must be at least 2, got {span}")
        if max_gap <= 0:
            raise ValueError(f"max_gap must be positive, got {max_gap}")
        if rare_below < 1:
            raise ValueError(f"rare_below must be at least 1, got {rare_below}")
        if min_known < 0:
            raise ValueError(f"min_known must be >= 0, got {min_known}")
        self.categorical_field = field
        self.span, self.max_gap, self.rare_below, self.min_known = int(span), float(max_gap), int(rare_below), int(min_known)
        self.by = by
        self.this, self.possessive = this, possessive
        prefix = "" if by == "entity" else f"{by}."
        self._std, self._gaps = f"{prefix}gap_log_std", f"{prefix}gaps"
        self._rare, self._steps = f"{prefix}{field}_rare_step_share", f"{prefix}{field}_known_steps"
        self.names = [self._std, self._gaps, self._rare, self._steps]
        self._state = np.empty((0, len(_EMPTY_ROW)), dtype=np.float64)
        self._table = empty_table(MIN_TABLE_SIZE)
        self._used = np.zeros(1, dtype=np.int64)
        self._leaves = np.empty(0, dtype=np.int64)

    def _reserve(self, n_new: int) -> None:
        """Grow the step table so that ``n_new`` more steps keep its load at most 1/2."""
        self._table = reserved(self._table, int(self._used[0]), n_new)

    def transform_update(self, batch: EventBatch, keys: BatchKeys) -> FeatureOutput:
        key_ids = np.ascontiguousarray(keys.by[self.by], dtype=np.int64)
        value_ids = np.ascontiguousarray(keys.values[self.categorical_field], dtype=np.int64)
        n = len(key_ids)
        columns = {name: np.zeros(n, dtype=np.float64) for name in self.names}
        if n:
            if int(value_ids.max()) >= 2**31:
                raise ValueError("Navigation supports fewer than 2**31 values of its field")
            self._state = grow(self._state, int(key_ids.max()) + 1, _EMPTY_ROW)
            self._reserve(n)
            self._leaves = grow(self._leaves, int(value_ids.max()) + 1, 0)
            navigation_update(key_ids, np.ascontiguousarray(batch.times, dtype=np.float64), value_ids, float(self.span),
                              self.max_gap, self.rare_below, self.min_known, self._state, self._table, self._used, self._leaves,
                              *(columns[name] for name in self.names))
        return FeatureOutput(columns=columns)

    def key_state(self, key_id: int) -> dict[str, float]:
        if key_id >= len(self._state) or self._state[key_id, N_GAPS] < 2:
            return {}
        return {self._std: float(math.sqrt(self._state[key_id, N_VAR])), self._rare: float(self._state[key_id, N_RARE])}

    def describe(self, name: str, row: int, batch: EventBatch, output: FeatureOutput) -> str:
        if name in (self._std, self._gaps):
            gaps = int(output.columns[self._gaps][row])
            spread = float(output.columns[self._std][row])
            if gaps < 2:
                return f"{self.possessive} pace: {gaps} gap{'' if gaps == 1 else 's'} between events so far"
            last = min(gaps, self.span)
            return (f"{self.possessive} last {last} gaps between events vary by a factor of {math.exp(spread):.3g} "
                    f"(log spread {spread:.2g}); people's vary by about 2.7")
        steps = int(output.columns[self._steps][row])
        share = float(output.columns[self._rare][row])
        return (f"{share:.0%} of the last {min(steps, self.span)} steps of {self.this} between {self.categorical_field} "
                f"values were taken by no one, or fewer than {self.rare_below} times, before")

    def state_dict(self) -> dict[str, np.ndarray]:
        return {"state": self._state.copy(), "table_keys": self._table[:, 0].copy(), "table_counts": self._table[:, 1].copy(),
                "used": self._used.copy(), "leaves": self._leaves.copy()}

    def load_state_dict(self, state: dict[str, np.ndarray]) -> None:
        table_keys = np.array(state["table_keys"], dtype=np.int64)
        if len(table_keys) & (len(table_keys) - 1):
            raise ValueError(f"navigation step table size must be a power of two, got {len(table_keys)}")
        self._state = np.array(state["state"], dtype=np.float64).reshape(-1, len(_EMPTY_ROW))
        self._table = np.column_stack([table_keys, state["table_counts"]]).astype(np.int64)
        self._used = np.array(state["used"], dtype=np.int64)
        self._leaves = np.array(state["leaves"], dtype=np.int64)
