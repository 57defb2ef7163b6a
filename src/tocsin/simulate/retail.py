"""A deterministic, labelled stream of store sales and shelf stock for demos, tests and benchmarks.

The simulator draws a chain (stores, their tills, opening hours and habits) from
``seed``; every store then sells, day by day, as a Poisson process per product
whose rate follows its opening hours and the day of the week, and its smart
shelves report each quarter hour how many units left them, with injected
incidents after warm-up. Each event has the fields in :data:`FIELDS`;
``is_incident``/``incident`` are the ground truth on events and
:meth:`RetailSimulator.incidents` is the full incident table.

Example
-------
>>> from tocsin.simulate.retail import RetailSimulator
>>> sim = RetailSimulator(stores=4, incident_rate=1.0, warmup_days=0.5, seed=3)
>>> batch = sim.generate(3_000)
>>> len(batch), batch.ids[0], batch.ids[-1], batch.keys[0]
(3000, 'rt000000000000', 'rt000000002999', 'store-03')
>>> list(batch.numeric), list(batch.categorical), list(batch.extra)
(['quantity', 'amount', 'units_removed'], ['till', 'sku', 'kind'], ['incident'])
>>> sorted(set(batch.categorical["kind"].tolist()))
['count', 'refund', 'sale']
>>> bool((batch.times[1:] >= batch.times[:-1]).all())   # one time-sorted stream
True
>>> resumed = next(sim.batches(500, start_position=1_200))  # resume anywhere
>>> resumed.ids.tolist() == batch.ids[1_200:1_700].tolist()
True
>>> sorted({incident["kind"] for incident in sim.incidents(sim.start_time + 3 * 86_400)})
['refund_till', 'sales_collapse', 'shrinkage']
>>> sorted(sim.incidents(sim.start_time + 86_400)[0])
['end', 'entities', 'entity', 'kind', 'start']

What the stream looks like
--------------------------
*The chain.* ``stores`` stores named ``store-01``, ``store-02``, … Each sells
the same 24 fast-moving products (:data:`PRODUCTS`: milk, bread, bananas, …,
razor blades, each with its shelf price), the top sellers a store watches in
real time (a real store's long tail of slow sellers is left out). Each store
has habits drawn once: a size (lognormal, sigma 0.3: about 0.6–1.6× a typical
store), a popularity per product (the catalog's weight × lognormal, sigma
0.3), a price level (0.95–1.05× the shelf prices), 4–10 tills (bigger stores
more; each with its own share of the lines, lognormal weights, sigma 0.3), a
refund share (1–2.5 % of lines) and opening hours: it opens at 07:00, 08:00 or
09:00 and closes at 20:00, 21:00 or 22:00 UTC, Monday to Saturday; on
Sundays every store opens 10:00–18:00.

*Sales.* A typical product sells about 500 lines on a Thursday in a typical
store (× the store's size and its popularity there). Within the opening
hours the rate follows a shape with a lunch peak (12:30) and a bigger
after-work peak (17:30) over a floor of 35 %, times a day factor (Monday 0.9,
Tuesday 0.9, Wednesday 0.95, Thursday 1, Friday 1.2, Saturday 1.35, Sunday
0.85): each minute of each (store, product) gets a Poisson number of lines at
times uniform within it, rounded to milliseconds. 20 stores make about 280,000
lines on a weekday. A line has a till (by the till shares), a quantity (1 in
72 %, 2 in 18 %, 3 in 6 %, 4–6 in 4 %) and an amount (quantity × the store's
price); it is a ``refund`` with the store's refund share (quantity 1 or 2,
the amount negative), else a ``sale``.

*Shelves.* Each (store, product) shelf reports once a quarter hour while the
store is open, at the quarter's last second (``kind`` = ``count``, no till,
quantity and amount 0): ``units_removed`` is how many units left the shelf
since the previous report. A sold unit leaves the shelf when the shopper
picks it, a few minutes before paying (exponential, mean 3 minutes, at most
20, not before opening), so removals and sales of one quarter differ by the
baskets still in the aisles at its edges; refunded units do not go back on
the shelf. ``units_removed - quantity × (amount > 0)``, summed over a
product's events of a quarter, is its *unexplained drain*: near 0, give or
take those baskets.

*Incidents* (``is_incident=1`` and ``incident`` = the kind on the affected
events inside ``[start, end)``) start only at or after ``start +
warmup_days``, while the store is open (uniformly between its opening and 30
minutes before it closes): a day gets a Poisson number with mean
``incident_rate × stores`` (times the share of the day after warm-up). Kinds,
with their share of incidents:

- ``sales_collapse`` (35 %): one product of one store (drawn by its sales
  there: the products that sell are the ones that run out, and the ones whose
  lost sales matter) stops selling (out of stock on the shelf though the books
  say otherwise, a wrong price that blocks the scanner) for 1–4 hours: its
  sales fall to 0–5 % of their usual rate. Labelled: that product's events at that store (the few remaining
  lines and its shelf reports); ``entity`` = ``store-03/milk-1l``.
- ``shrinkage`` (30 %): one product of one store (pricier products are
  targeted more: drawn by price) is stolen for 45–120 minutes: 30–80 units an
  hour leave its shelf unpaid, in sweeps of 3–10 units at random times. Sales
  are unchanged; the drain shows only in ``units_removed``. Labelled: that
  product's events at that store; ``entity`` = ``store-03/razor-blades``.
- ``refund_till`` (35 %): one till of one store processes fraudulent refunds
  for 45–150 minutes: extra refund lines at 8–30 % of the till's usual line
  rate, of pricier products (drawn by price squared), 1–3 units each, so both
  the till's refund share and its refunded amounts stand out from the
  store's other tills. Labelled: that till's lines; ``entity`` =
  ``store-03/till-04``.

``entities`` (what a backtest matches anomalies on) is always ``[store]``:
the store is the entity a store-operations team is paged about, and the
reference spec (``examples/retail.yaml``) watches it through per-store
"worst of" readings (the product with the largest unexplained drain, the
till with the largest refund share). Incidents may overlap; an event inside
two gets the kind applied last (the later start). A sales collapse of a
product that sells little at that hour may hold few events, or none but its
shelf reports.

Determinism and resuming
------------------------
The chain comes from ``(seed,)``; day ``i`` from ``(seed, i)`` only, in three
random streams: a cheap *plan* stream (the day's incidents: kind, start,
duration, store, product or till, magnitude), a *count* stream (the lines of
each store and product in each minute of the day, and the fraudulent refunds
of each minute of a ``refund_till``) and a *detail* stream (times, tills,
quantities, refunds, picking lags, theft sweeps). A day's event count is the
sum of its counts plus the shelf reports (arithmetic on opening hours), drawn
from the plans of that day and the day before (an incident lasts at most 4
hours) without generating any event, so position ``p`` is found cheaply and
resuming generates only the day holding it and the days after;
:meth:`RetailSimulator.incidents` likewise needs only the plans. The same
parameters give identical events (for a given NumPy version).

Cost: a day is a handful of vectorised NumPy passes over its events plus a
short Python loop over the day's incidents. At the defaults (20 stores) a
weekday holds about 300,000 events and takes about half a second.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import NamedTuple

import numpy as np

from tocsin.batch import EventBatch
from tocsin.simulate.daily import (
    COUNT_STREAM,
    DETAIL_STREAM,
    FLEET_STREAM,
    PLAN_STREAM,
    SECONDS_PER_DAY,
    FieldInfo,
    Incidents,
    IncidentSimulator,
    position_ids,
    weekday,
    write_fields,
)

FIELDS: tuple[FieldInfo, ...] = (
    FieldInfo("id", "str", "ids", "unique id, 'rt' + the zero-padded global position"),
    FieldInfo("ts", "float", "times", "event time, epoch seconds (millisecond resolution)"),
    FieldInfo("store", "str", "keys", "the store (entity), e.g. 'store-03'"),
    FieldInfo("till", "str", "categorical['till']", "the till of a sale or refund line, e.g. 'till-04'; '' for a shelf count"),
    FieldInfo("sku", "str", "categorical['sku']", "the product, e.g. 'milk-1l'"),
    FieldInfo("kind", "str", "categorical['kind']", "'sale' or 'refund' (a till line), 'count' (a shelf's quarter-hour report)"),
    FieldInfo("quantity", "float", "numeric['quantity']", "units on the line (refunds too); 0 for a shelf count"),
    FieldInfo("amount", "float", "numeric['amount']", "the line's amount (negative for a refund); 0 for a shelf count"),
    FieldInfo("units_removed", "float", "numeric['units_removed']", "shelf count: units that left the shelf since its last "
              "report (sold or not); 0 for a till line"),
    FieldInfo("is_incident", "int8", "labels", "1 for an event inside an incident on its product or till, else 0"),
    FieldInfo("incident", "str", "extra['incident']", "the incident kind, '' outside incidents"),
)

#: the watched products: name, shelf price, catalog popularity weight
PRODUCTS: tuple[tuple[str, float, float], ...] = (
    ("milk-1l", 1.19, 2.0), ("bread", 2.49, 1.8), ("bananas-1kg", 1.69, 1.6), ("eggs-10", 3.29, 1.3),
    ("butter", 2.79, 1.0), ("cheddar", 4.49, 0.8), ("yoghurt", 0.89, 1.5), ("apples-1kg", 2.29, 1.1),
    ("tomatoes", 2.19, 1.0), ("chicken-breast", 6.99, 0.8), ("minced-beef", 5.49, 0.7), ("pasta", 1.29, 1.0),
    ("rice-1kg", 2.09, 0.6), ("coffee", 7.99, 0.6), ("tea", 3.49, 0.5), ("orange-juice", 2.99, 0.9),
    ("cola-1.5l", 1.99, 1.2), ("water-6pack", 3.49, 0.9), ("beer-6pack", 8.49, 0.7), ("red-wine", 9.99, 0.5),
    ("crisps", 1.89, 1.0), ("chocolate", 1.49, 1.2), ("toilet-paper", 5.99, 0.6), ("razor-blades", 14.99, 0.5),
)
INCIDENT_KINDS = ("sales_collapse", "shrinkage", "refund_till")
_COLLAPSE, _SHRINKAGE, _REFUND_TILL = range(3)
_INCIDENT_SHARE = (0.35, 0.30, 0.35)
_DURATIONS_S = ((3600.0, 14400.0), (2700.0, 7200.0), (2700.0, 9000.0))
_LEVEL_MIN = np.array([0.0, 30.0, 0.08])  # collapse: share of the usual rate left; shrinkage: units stolen an hour;
_LEVEL_MAX = np.array([0.05, 80.0, 0.30])  # refund_till: fraudulent refunds, per usual line of the till

LINES_PER_DAY = 500.0  # a typical product's lines on a Thursday in a typical store
DAY_FACTOR = np.array([0.9, 0.9, 0.95, 1.0, 1.2, 1.35, 0.85])  # Monday .. Sunday
SUNDAY_HOURS = (10, 18)
QUANTITIES = np.array([1.0, 2.0, 3.0, 4.0, 5.0, 6.0])
QUANTITY_SHARE = np.array([0.72, 0.18, 0.06, 0.02, 0.01, 0.01])
PICK_LAG_MEAN_S, PICK_LAG_MAX_S = 180.0, 1200.0
SWEEP_UNITS = (3, 10)
QUARTER = 900.0
_MINUTE = 60.0
_REFERENCE_WEEKDAY = 3  # Thursday: LINES_PER_DAY is per Thursday


def shape(hour: np.ndarray) -> np.ndarray:
    """Relative sales rate at ``hour`` (UTC, fractional) of an open store: a floor, a lunch and an after-work peak."""
    return 0.35 + 0.55 * np.exp(-0.5 * ((hour - 12.5) / 1.1) ** 2) + 0.9 * np.exp(-0.5 * ((hour - 17.5) / 1.4) ** 2)


class _Counts(NamedTuple):
    """A day's drawn counts: lines per (store, product, minute), and per fraudulent-refund incident touching the day
    its (incident row in the day's ``around`` plan, minute segment starts, lengths, counts)."""

    lines: np.ndarray
    refunds: list[tuple[int, np.ndarray, np.ndarray, np.ndarray]]


class RetailSimulator(IncidentSimulator):
    """An endless, deterministic, labelled stream of till lines and shelf counts of a chain of stores.

    Parameters
    ----------
    stores:
        Number of stores (entities); each sells the 24 products of :data:`PRODUCTS`.
    incident_rate:
        Incidents per store per day after warm-up (default 0.3; None: the default).
    warmup_days:
        Days of clean history (default 2: each half hour's profile is seen twice before the first incident).
    start, seed:
        Start of day 0 and seed, as for every
        :class:`~tocsin.simulate.daily.IncidentSimulator`.

    See the module docstring for what the stores, their rhythms and the incidents look like.
    """

    FIELDS = FIELDS
    INCIDENT_KINDS = INCIDENT_KINDS
    INCIDENT_SHARE = _INCIDENT_SHARE

    def __init__(
        self,
        stores: int = 20,
        incident_rate: float | None = 0.3,
        warmup_days: float = 2.0,
        start: str | float | datetime = "2026-01-01T00:00:00Z",
        seed: int = 7,
    ) -> None:
        if int(stores) < 1:
            raise ValueError(f"stores must be >= 1, got {stores}")
        self.stores = int(stores)
        self._init_incidents(0.3 if incident_rate is None else incident_rate, warmup_days, start, seed, _DURATIONS_S, per="store")
        self._build_chain()

    # --- the chain --------------------------------------------------------------

    def _build_chain(self) -> None:
        rng = self._rng(FLEET_STREAM)
        n, m = self.stores, len(PRODUCTS)
        self._store_names = self._entity_names = np.array([f"store-{s + 1:02d}" for s in range(n)], dtype=object)
        self._sku_names = np.array([p[0] for p in PRODUCTS], dtype=object)
        self._shelf_price = np.array([p[1] for p in PRODUCTS])
        weight = np.array([p[2] for p in PRODUCTS])
        self._size = np.exp(rng.normal(0.0, 0.3, size=n))
        self._popularity = weight / weight.mean() * np.exp(rng.normal(0.0, 0.3, size=(n, m)))
        self._price = np.round(self._shelf_price[None, :] * rng.uniform(0.95, 1.05, size=(n, 1)), 2)
        self._refund_share = rng.uniform(0.01, 0.025, size=n)
        self._open_hour = rng.integers(7, 10, size=n).astype(float)
        self._close_hour = rng.integers(20, 23, size=n).astype(float)
        tills = np.clip(np.round(4 + 4 * (self._size - 0.6) + rng.normal(0.0, 1.0, size=n)), 4, 10).astype(np.int64)
        self._till_count = tills
        self._first_till = np.concatenate([[0], np.cumsum(tills)]).astype(np.int64)
        till_store = np.repeat(np.arange(n), tills)
        share = np.exp(rng.normal(0.0, 0.3, size=int(tills.sum())))
        share /= np.bincount(till_store, weights=share)[till_store]
        self._till_share = share
        # till choice: store s's tills split [s, s + 1) by their shares
        self._till_edge = np.cumsum(share)
        self._till_edge[self._first_till[1:] - 1] = np.arange(1, n + 1)
        self._till_names = np.array([f"till-{t - self._first_till[s] + 1:02d}" for t, s in enumerate(till_store.tolist())], dtype=object)
        # lines per minute at shape 1 on a Thursday: LINES_PER_DAY x size x popularity spread over the open minutes' shape
        minutes = np.arange(1440) / 60.0 + 1 / 120.0
        open_minutes = (minutes[None, :] >= self._open_hour[:, None]) & (minutes[None, :] < self._close_hour[:, None])
        per_shape = (shape(minutes)[None, :] * open_minutes).sum(axis=1) * DAY_FACTOR[_REFERENCE_WEEKDAY]
        self._base_rate = LINES_PER_DAY * self._size[:, None] * self._popularity / per_shape[:, None]

    def _hours(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        """Each store's opening and closing time on day ``index`` (epoch seconds)."""
        day_start = self.start_time + index * SECONDS_PER_DAY
        if int(weekday(np.array([day_start + 1.0]))[0]) == 6:
            open_hour = np.full(self.stores, float(SUNDAY_HOURS[0]))
            close_hour = np.full(self.stores, float(SUNDAY_HOURS[1]))
        else:
            open_hour, close_hour = self._open_hour, self._close_hour
        return day_start + open_hour * 3600.0, day_start + close_hour * 3600.0

    # --- incidents ----------------------------------------------------------------

    def _plan(self, index: int) -> Incidents:
        """Day ``index``'s incidents, each starting while its store is open (at least 30 minutes before closing)."""
        day_start = self.start_time + index * SECONDS_PER_DAY
        window_from = max(self._warmup_end, day_start)
        share = max(0.0, (day_start + SECONDS_PER_DAY - window_from) / SECONDS_PER_DAY)
        rng = self._rng(PLAN_STREAM, index)
        n = int(rng.poisson(self.incident_rate * self.stores * share)) if share > 0 else 0
        kind = rng.choice(len(self.INCIDENT_KINDS), size=n, p=self._incident_share)
        entity = rng.integers(self.stores, size=n)
        where = rng.random(n)
        low, high = self._duration_min_s[kind], self._duration_max_s[kind]
        duration = np.round(low + rng.random(n) * (high - low))
        level, part = self._plan_details(rng, kind, entity)
        opens, closes = self._hours(index)
        lo, hi = np.maximum(opens[entity], window_from), closes[entity] - 1800.0
        keep = hi > lo
        start = np.round(lo + where * (hi - lo), 3)
        planned = Incidents(kind, start, start + duration, entity, level, part).take(np.flatnonzero(keep))
        return planned.take(np.argsort(planned.start, kind="stable"))

    def _plan_details(self, rng: np.random.Generator, kind: np.ndarray, entity: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``level`` (collapse: share of sales left; shrinkage: units stolen an hour; refund_till: fraudulent refunds
        per usual line) and ``part`` (the product, or the till's index within its store)."""
        n = len(kind)
        level = _LEVEL_MIN[kind] + rng.random(n) * (_LEVEL_MAX[kind] - _LEVEL_MIN[kind])
        u = rng.random(n)
        popularity = self._popularity[entity]
        by_sales = (np.cumsum(popularity, axis=1) / popularity.sum(axis=1, keepdims=True) <= u[:, None]).sum(axis=1)
        by_price = np.searchsorted(np.cumsum(self._shelf_price) / self._shelf_price.sum(), u, side="right")
        till = np.floor(u * self._till_count[entity]).astype(np.int64)
        part = np.where(kind == _COLLAPSE, np.minimum(by_sales, len(PRODUCTS) - 1),
                        np.where(kind == _SHRINKAGE, np.minimum(by_price, len(PRODUCTS) - 1), till))
        return level, part.astype(np.int64)

    def _describe(self, kind: int, entity: int, part: int) -> str:
        """``{store}/{product}`` or ``{store}/{till}``."""
        store = str(self._store_names[entity])
        if kind == _REFUND_TILL:
            return f"{store}/{self._till_names[self._first_till[entity] + part]}"
        return f"{store}/{self._sku_names[part]}"

    def _touching(self, index: int) -> Incidents:
        """The incidents touching day ``index``, in plan order."""
        around = self._incidents_around(index)
        day_from = self.start_time + index * SECONDS_PER_DAY
        return around.take(np.flatnonzero((around.end > day_from) & (around.start < day_from + SECONDS_PER_DAY)))

    # --- counts -------------------------------------------------------------------

    def _rates(self, index: int, touching: Incidents) -> np.ndarray:
        """Expected lines per (store, product, minute) of day ``index`` (no randomness)."""
        day_start = self.start_time + index * SECONDS_PER_DAY
        middle = day_start + (np.arange(1440) + 0.5) * _MINUTE
        opens, closes = self._hours(index)
        is_open = (middle[None, :] >= opens[:, None]) & (middle[None, :] < closes[:, None])
        factor = DAY_FACTOR[int(weekday(np.array([day_start + 1.0]))[0])]
        load = shape(np.mod(middle, SECONDS_PER_DAY) / 3600.0)[None, :] * is_open * factor  # (stores, minutes)
        rates = self._base_rate[:, :, None] * load[:, None, :]
        for kind, start, end, store, level, product in zip(touching.kind.tolist(), touching.start.tolist(), touching.end.tolist(),
                                                           touching.entity.tolist(), touching.level.tolist(), touching.part.tolist()):
            if kind == _COLLAPSE:
                inside = (middle >= start) & (middle < end)
                rates[store, product, inside] *= level
        return rates

    def _counts(self, index: int, touching: Incidents, rates: np.ndarray) -> _Counts:
        rng = self._rng(COUNT_STREAM, index)
        lines = rng.poisson(rates)
        refunds = []
        day_start = self.start_time + index * SECONDS_PER_DAY
        opens, closes = self._hours(index)
        for i in np.flatnonzero(touching.kind == _REFUND_TILL).tolist():
            store, till = int(touching.entity[i]), int(self._first_till[touching.entity[i]] + touching.part[i])
            lo = max(float(touching.start[i]), float(opens[store]), day_start)
            hi = min(float(touching.end[i]), float(closes[store]), day_start + SECONDS_PER_DAY)
            if hi <= lo:
                refunds.append((i, np.empty(0), np.empty(0), np.empty(0, dtype=np.int64)))
                continue
            edges = np.union1d(np.arange(np.ceil((lo - day_start) / _MINUTE), np.floor((hi - day_start) / _MINUTE) + 1) * _MINUTE
                               + day_start, [lo, hi])
            edges = edges[(edges >= lo) & (edges <= hi)]
            seg_start, seg_length = edges[:-1], np.diff(edges)
            minute = np.minimum(((seg_start - day_start) // _MINUTE).astype(np.int64), 1439)
            till_rate = rates[store, :, minute].sum(axis=1) * self._till_share[till] / _MINUTE  # lines per second
            refunds.append((i, seg_start, seg_length, rng.poisson(touching.level[i] * till_rate * seg_length)))
        return _Counts(lines, refunds)

    def _shelf_quarters(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        """Per store, its first and end quarter index (of the day) while open."""
        day_start = self.start_time + index * SECONDS_PER_DAY
        opens, closes = self._hours(index)
        return np.round((opens - day_start) / QUARTER).astype(np.int64), np.round((closes - day_start) / QUARTER).astype(np.int64)

    def _day_size(self, index: int) -> int:
        touching = self._touching(index)
        counts = self._counts(index, touching, self._rates(index, touching))
        first, end = self._shelf_quarters(index)
        return int(counts.lines.sum()) + sum(int(c.sum()) for *_, c in counts.refunds) + int((end - first).sum()) * len(PRODUCTS)

    # --- days -------------------------------------------------------------------

    def day(self, index: int) -> EventBatch:
        """All events of simulated day ``index`` (0 = the day starting at ``start``), sorted by time."""
        index = self._check_day(index)
        day_start = self.start_time + index * SECONDS_PER_DAY
        touching = self._touching(index)
        counts = self._counts(index, touching, self._rates(index, touching))
        rng = self._rng(DETAIL_STREAM, index)
        n_stores, n_products = self.stores, len(PRODUCTS)
        opens, closes = self._hours(index)

        # till lines
        cell = np.repeat(np.arange(counts.lines.size), counts.lines.ravel())
        store, rest = np.divmod(cell, n_products * 1440)
        product, minute = np.divmod(rest, 1440)
        n = len(cell)
        times = np.round(day_start + (minute + rng.random(n)) * _MINUTE, 3)
        till = np.searchsorted(self._till_edge, store + rng.random(n), side="right")
        till = np.minimum(till, self._first_till[store + 1] - 1)
        quantity = rng.choice(QUANTITIES, size=n, p=QUANTITY_SHARE)
        refund = rng.random(n) < self._refund_share[store]
        quantity[refund] = np.where(rng.random(int(refund.sum())) < 0.85, 1.0, 2.0)
        amount = np.round(quantity * self._price[store, product], 2) * np.where(refund, -1.0, 1.0)
        lag = np.minimum(rng.exponential(PICK_LAG_MEAN_S, size=n), PICK_LAG_MAX_S)
        pick_time = np.maximum(times - lag, opens[store])
        picked = ~refund

        # fraudulent refunds
        parts_store, parts_product, parts_till, parts_time, parts_quantity = [], [], [], [], []
        refund_weight = self._shelf_price ** 2 / (self._shelf_price ** 2).sum()
        for i, seg_start, seg_length, seg_counts in counts.refunds:
            k = int(seg_counts.sum())
            if k == 0:
                continue
            s = int(touching.entity[i])
            segment = np.repeat(np.arange(len(seg_counts)), seg_counts)
            parts_time.append(np.round(seg_start[segment] + rng.random(k) * seg_length[segment], 3))
            parts_store.append(np.full(k, s))
            parts_till.append(np.full(k, int(self._first_till[s] + touching.part[i])))
            parts_product.append(rng.choice(n_products, size=k, p=refund_weight))
            parts_quantity.append(rng.integers(1, 4, size=k).astype(float))
        if parts_time:
            f_time = np.concatenate(parts_time)
            f_store, f_product = np.concatenate(parts_store), np.concatenate(parts_product)
            f_till, f_quantity = np.concatenate(parts_till), np.concatenate(parts_quantity)
            f_time = np.minimum(f_time, day_start + SECONDS_PER_DAY - 0.001)
        else:
            f_time, f_store, f_product, f_till, f_quantity = np.empty(0), *(np.empty(0, dtype=np.int64) for _ in range(3)), np.empty(0)
        f_amount = -np.round(f_quantity * self._price[f_store, f_product], 2)

        # shelves: picks of the sold units and theft sweeps, counted per quarter at its last second
        pick_store, pick_product, pick_time, pick_units = store[picked], product[picked], pick_time[picked], quantity[picked]
        sweeps = [(pick_store, pick_product, pick_time, pick_units)]
        for i in np.flatnonzero(touching.kind == _SHRINKAGE).tolist():
            s, p = int(touching.entity[i]), int(touching.part[i])
            lo, hi = max(float(touching.start[i]), float(opens[s]), day_start), min(float(touching.end[i]), float(closes[s]) - 1.0)
            if hi <= lo:
                continue
            units = round(float(touching.level[i]) * (hi - lo) / 3600.0)
            sizes = []
            while sum(sizes) < units:
                sizes.append(int(rng.integers(SWEEP_UNITS[0], SWEEP_UNITS[1] + 1)))
            if not sizes:
                continue
            at = lo + rng.random(len(sizes)) * (hi - lo)
            sweeps.append((np.full(len(sizes), s), np.full(len(sizes), p), at, np.array(sizes, dtype=float)))
        all_store = np.concatenate([x[0] for x in sweeps]).astype(np.int64)
        all_product = np.concatenate([x[1] for x in sweeps]).astype(np.int64)
        all_time = np.concatenate([x[2] for x in sweeps])
        all_units = np.concatenate([x[3] for x in sweeps])
        quarter = np.floor((all_time - day_start + 1.0) / QUARTER).astype(np.int64)
        removed = np.bincount((all_store * n_products + all_product) * 96 + np.minimum(quarter, 95), weights=all_units,
                              minlength=n_stores * n_products * 96).reshape(n_stores, n_products, 96)
        first, end = self._shelf_quarters(index)
        q_counts = np.repeat(end - first, n_products)
        c_store = np.repeat(np.arange(n_stores), (end - first) * n_products)
        c_product = np.repeat(np.tile(np.arange(n_products), n_stores), q_counts)
        c_quarter = np.concatenate([np.arange(first[s], end[s]) for s in range(n_stores) for _ in range(n_products)]) \
            if len(c_store) else np.empty(0, dtype=np.int64)
        c_time = day_start + (c_quarter + 1) * QUARTER - 1.0
        c_removed = removed[c_store, c_product, c_quarter]

        # all events, labelled, in time order
        kind_code = np.concatenate([np.where(refund, 1, 0), np.ones(len(f_time), dtype=np.int64), np.full(len(c_time), 2)])
        all_times = np.concatenate([times, f_time, c_time])
        e_store = np.concatenate([store, f_store, c_store]).astype(np.int64)
        e_product = np.concatenate([product, f_product, c_product]).astype(np.int64)
        e_till = np.concatenate([till, f_till, np.full(len(c_time), -1)]).astype(np.int64)
        e_quantity = np.concatenate([quantity, f_quantity, np.zeros(len(c_time))])
        e_amount = np.concatenate([amount, f_amount, np.zeros(len(c_time))])
        e_removed = np.concatenate([np.zeros(n + len(f_time)), c_removed])
        code = np.zeros(len(all_times), dtype=np.int64)
        for kind, start, stop, s, part in zip(touching.kind.tolist(), touching.start.tolist(), touching.end.tolist(),
                                              touching.entity.tolist(), touching.part.tolist()):
            inside = (e_store == s) & (all_times >= start) & (all_times < stop)
            if kind == _REFUND_TILL:
                inside &= e_till == self._first_till[s] + part
            else:
                inside &= e_product == part
            code[inside] = kind + 1

        order = np.argsort(all_times, kind="stable")
        first_position = self._day_position(index)
        positions = np.arange(first_position, first_position + len(order), dtype=np.int64)
        labels, extra = self._labels(code[order])
        till_names = np.append(self._till_names, "")
        return EventBatch(
            ids=position_ids("rt", positions),
            keys=self._store_names[e_store[order]],
            times=all_times[order],
            numeric={"quantity": e_quantity[order], "amount": e_amount[order], "units_removed": e_removed[order]},
            categorical={"till": till_names[e_till[order]], "sku": self._sku_names[e_product[order]],
                         "kind": np.array(["sale", "refund", "count"], dtype=object)[kind_code[order]]},
            positions=positions,
            labels=labels,
            extra=extra,
        )


# --- files -------------------------------------------------------------------


def write_events(batch: EventBatch, path: str | Path, format: str | None = None) -> None:
    """Write a retail batch with one record per event and every field of :data:`FIELDS`.

    ``format`` is "jsonl" (via msgspec), "csv" or "parquet" (via pyarrow); when
    omitted it is taken from the file suffix.
    """
    write_fields(batch, FIELDS, path, format)
