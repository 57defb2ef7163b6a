"""A deterministic, labelled card-transaction stream for demos, tests and benchmarks.

The simulator draws a world (cards, merchants, cities) from ``seed`` and then,
day by day, the transactions of every card plus injected fraud. Each event has
the fields in :data:`FIELDS`; ``is_fraud``/``fraud_type`` are the ground truth.

Example
-------
>>> from tocsin.simulate import TransactionSimulator
>>> sim = TransactionSimulator(users=300, merchants=200, fraud_rate=0.02, warmup_days=0.5, seed=3)
>>> batch = sim.generate(2_000)
>>> len(batch), batch.ids[0], batch.ids[-1]
(2000, 'tx000000000000', 'tx000000001999')
>>> list(batch.numeric), list(batch.categorical), list(batch.extra)
(['amount'], ['merchant_id', 'merchant_category', 'city', 'channel'], ['fraud_type'])
>>> bool((batch.times[1:] >= batch.times[:-1]).all())   # one time-sorted stream
True
>>> resumed = next(sim.batches(500, start_position=1_200))  # resume anywhere
>>> resumed.ids.tolist() == batch.ids[1_200:1_700].tolist()
True
>>> sorted(set(sim.generate(20_000).extra["fraud_type"]) - {""})
['account_takeover', 'amount_spike', 'card_testing', 'merchant_compromise', 'velocity_attack']

What the stream looks like
--------------------------
*Cards.* Each card (``card_id``) has habits drawn once from the seed:

- a typical amount: a per-card median, lognormal around 45 and clipped to
  10–200, times a per-category scale (coffee 0.2× … jewellery 5×), times
  lognormal noise with a per-card spread (sigma 0.3–0.6);
- a home city, from ``CITIES`` (50) cities with Zipf-like popularity;
- 5–20 regular merchants with favourites (the first regulars are used most),
  physical ones in the home city plus online ones;
- a daily rhythm: a peak hour (around 14h, between 8h and 20h) and a spread of
  1.5–3.5 h; 3 % of a card's events fall anywhere in the day, so nights are
  quiet but not empty;
- a rate of 1–8 transactions a day (log-uniform; a Poisson count each day);
- an online habit: the share of its merchants (and new merchants) that are
  online (Beta(2, 5), mean ≈ 0.29).

*Merchants.* ``merchants`` merchants (``merchant_id``) in 15 categories
(``merchant_category``); 30 % are online-only, the rest sit in one city.
``channel`` is the merchant's ("online" or "pos"). ``city`` is the merchant's
city for "pos" and the card holder's current city for "online".

*Legit noise that looks odd.* About 10 % of a card's transactions are at a
merchant that is not one of its regulars; 1 card in 60 spends a given day in
another city (its in-person purchases that day are at new merchants there);
0.5 % of transactions are big purchases at 3–8× the usual amount.

*Injected fraud* (``is_fraud=1``, ``fraud_type``), only at or after
``start + warmup_days``; fraud events make up ≈ ``fraud_rate`` of all events
after warm-up (each day gets a budget of ``fraud_rate / (1 - fraud_rate)``
times its legit events, filled with whole incidents, the last one kept with
the probability that makes the expected count exact; on the day warm-up ends
mid-day the budget is scaled by the share of the day's *hours* left, so that
day's share is only roughly right). Incident types, with
their share of incidents:

- ``card_testing`` (20 %): one card, 10–30 online transactions of 0.50–5.00
  within 1–5 minutes, at online merchants that are not its regulars;
- ``account_takeover`` (25 %): one card used from a city other than its home,
  at merchants that are not its regulars (half online), 2–6 transactions at
  5–20× its median amount within 10–60 minutes;
- ``amount_spike`` (30 %): one transaction at 10–50× the card's median, at one
  of its regular merchants;
- ``velocity_attack`` (10 %): one card, 15–40 transactions within 2–10 minutes
  at ordinary amounts for the merchant's category, at varied merchants that
  are not its regulars (70 % online);
- ``merchant_compromise`` (15 %): one merchant, 20–50 distinct cards (at most
  ``users``) for which it is not a regular, each charged once at 3–10× their
  median within 20–60 minutes.

"A merchant new to the card" means "not one of its regulars": the simulator
does not track every merchant a card has ever visited, so a fraud event can
land on a merchant the card met once as legit noise.

Unlike legit activity, fraud starts at any hour of the day (uniformly), so it
is over-represented at night — one more weak signal, as in real data.

*Fraud only labels reveal* (``compromised_merchants`` > 0; off by default, so
other streams are unchanged): that many in-person merchants are compromised
(a colluding or skimmed terminal) from the end of warm-up on, and a share
``compromised_share`` of the transactions there are stolen-card fraud
(``terminal_compromise``) although they look exactly like the card's ordinary
purchases: same cards, amounts and hours. No unsupervised detector can see
them; the confirmed fraud at the same merchant can. These events are labels
on events the stream already has, on top of ``fraud_rate``.

Determinism and resuming
------------------------
The world comes from ``(seed,)``; day ``i`` comes from ``(seed, i)`` only, in
two random streams: a cheap *plan* stream (each card's event count and the fraud
incidents' types and sizes) and a *detail* stream (everything else). Position
``p`` is found by summing the plans' counts of the days before it, so resuming
at any position generates only the day that holds it and the days after.
The same parameters give byte-identical events (for a given NumPy version:
NumPy does not promise identical random streams across versions).

Cost: one day is a handful of vectorised NumPy passes over its events (no
Python loop over events; one short loop per ``merchant_compromise`` incident to
pick distinct cards). Building the ``tx_id`` strings is the largest single
cost. Measured on a 2-core machine: 1M events for 100k users in 1.0–1.7 s
(plus 0.3 s to build the world); resuming at position 10M of the default
stream takes 0.25 s (day counts are then cached).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import numpy as np

from tocsin.batch import EventBatch
from tocsin.simulate.daily import SECONDS_PER_DAY, DailySimulator, FieldInfo, field_columns, parse_start, write_fields


FIELDS: tuple[FieldInfo, ...] = (
    FieldInfo("tx_id", "str", "ids", "unique id, 'tx' + the zero-padded global position"),
    FieldInfo("card_id", "str", "keys", "the card (entity) making the transaction"),
    FieldInfo("ts", "float", "times", "event time, epoch seconds (millisecond resolution)"),
    FieldInfo("amount", "float", "numeric['amount']", "amount in currency units, rounded to cents"),
    FieldInfo("merchant_id", "str", "categorical['merchant_id']", "the merchant"),
    FieldInfo("merchant_category", "str", "categorical['merchant_category']", "one of 15 categories"),
    FieldInfo("city", "str", "categorical['city']", "merchant city (pos) or card holder's current city (online)"),
    FieldInfo("channel", "str", "categorical['channel']", "'pos' or 'online'"),
    FieldInfo("is_fraud", "int8", "labels", "1 for injected fraud, else 0"),
    FieldInfo("fraud_type", "str", "extra['fraud_type']", "the fraud pattern, '' for legit events"),
)

# --- world constants -----------------------------------------------------------

CATEGORIES = (
    # (name, amount scale relative to the card's median, share of merchants)
    ("grocery", 1.0, 0.16),
    ("restaurant", 0.8, 0.14),
    ("coffee", 0.2, 0.08),
    ("fuel", 1.0, 0.07),
    ("pharmacy", 0.6, 0.06),
    ("clothing", 1.5, 0.08),
    ("electronics", 3.0, 0.05),
    ("travel", 4.0, 0.03),
    ("hotel", 3.5, 0.03),
    ("entertainment", 0.9, 0.07),
    ("home_improvement", 2.0, 0.05),
    ("transport", 0.4, 0.07),
    ("digital_goods", 0.3, 0.06),
    ("utilities", 1.2, 0.03),
    ("jewelry", 5.0, 0.02),
)
CITIES = 50
MAX_REGULARS = 20
ONLINE_MERCHANT_SHARE = 0.30
NEW_MERCHANT_SHARE = 0.10
TRAVEL_PROBABILITY = 1 / 60
BIG_PURCHASE_SHARE = 0.005
ANYTIME_SHARE = 0.03  # share of legit events outside the card's daily rhythm

FRAUD_TYPES = ("card_testing", "account_takeover", "amount_spike", "velocity_attack", "merchant_compromise")
_CARD_TESTING, _ACCOUNT_TAKEOVER, _AMOUNT_SPIKE, _VELOCITY_ATTACK, _MERCHANT_COMPROMISE = range(5)
_INCIDENT_SHARE = np.array([0.20, 0.25, 0.30, 0.10, 0.15])
_INCIDENT_SIZE_MIN = np.array([10, 2, 1, 15, 20])
_INCIDENT_SIZE_MAX = np.array([30, 6, 1, 40, 50])
_INCIDENT_SPAN_MIN_S = np.array([60.0, 600.0, 0.0, 120.0, 1200.0])
_INCIDENT_SPAN_MAX_S = np.array([300.0, 3600.0, 0.0, 600.0, 3600.0])

#: fraud that only labels can reveal (off unless ``compromised_merchants``): see the module docstring
LABEL_ONLY_FRAUD = "terminal_compromise"
_TERMINAL_COMPROMISE_CODE = len(FRAUD_TYPES) + 1

_CHANNEL_NAMES = np.array(["pos", "online"], dtype=object)
_FRAUD_TYPE_NAMES = np.array(["", *FRAUD_TYPES, LABEL_ONLY_FRAUD], dtype=object)  # code 0 = legit
_CATEGORY_NAMES = np.array([name for name, _, _ in CATEGORIES], dtype=object)
_CATEGORY_SCALE = np.array([scale for _, scale, _ in CATEGORIES])
_CATEGORY_SHARE = np.array([share for _, _, share in CATEGORIES])
_CATEGORY_SHARE = _CATEGORY_SHARE / _CATEGORY_SHARE.sum()

# Domain tags keep the world, plan, detail and compromise random streams independent.
_WORLD_STREAM, _PLAN_STREAM, _DETAIL_STREAM, _COMPROMISE_STREAM = 0, 1, 2, 3


@dataclass
class _DayPlan:
    """What the cheap plan stream fixes for one day: the event count and the fraud incidents."""

    events_per_card: np.ndarray
    incident_types: np.ndarray
    incident_sizes: np.ndarray

    @property
    def n_events(self) -> int:
        return int(self.events_per_card.sum()) + int(self.incident_sizes.sum())


class TransactionSimulator(DailySimulator):
    """An endless, deterministic, labelled stream of card transactions.

    Parameters
    ----------
    users:
        Number of cards (entities).
    merchants:
        Number of merchants; at least 2 (30 % are online-only).
    fraud_rate:
        Share of events after warm-up that are injected fraud, in [0, 1).
    warmup_days:
        Days of clean history from ``start`` before the first fraud event.
    seed:
        Everything is a function of the parameters; same seed, same events.
    start:
        Start of day 0: ISO 8601 string, timezone-aware datetime or epoch seconds.

    See the module docstring for what the cards, merchants and fraud look like.
    """

    FIELDS = FIELDS

    def __init__(
        self,
        users: int = 5_000,
        merchants: int = 2_000,
        fraud_rate: float = 0.004,
        warmup_days: float = 1.0,
        seed: int = 7,
        start: str | float | datetime = "2026-01-01T00:00:00Z",
        compromised_merchants: int = 0,
        compromised_share: float = 0.3,
    ) -> None:
        if int(users) < 1:
            raise ValueError(f"users must be >= 1, got {users}")
        if int(merchants) < 2:
            raise ValueError(f"merchants must be >= 2 (online and in-person), got {merchants}")
        if not 0 <= fraud_rate < 1:
            raise ValueError(f"fraud_rate must be in [0, 1), got {fraud_rate}")
        if warmup_days < 0:
            raise ValueError(f"warmup_days must be >= 0, got {warmup_days}")
        if int(compromised_merchants) < 0:
            raise ValueError(f"compromised_merchants must be >= 0, got {compromised_merchants}")
        if not 0 < compromised_share <= 1:
            raise ValueError(f"compromised_share must be in (0, 1], got {compromised_share}")
        self.compromised_merchants = int(compromised_merchants)
        self.compromised_share = float(compromised_share)
        self.users = int(users)
        self.merchants = int(merchants)
        self.fraud_rate = float(fraud_rate)
        self.warmup_days = float(warmup_days)
        self.seed = int(seed)
        self.start = start
        self._start_s = parse_start(start)
        self._warmup_end_s = self._start_s + self.warmup_days * SECONDS_PER_DAY
        super().__init__()
        self._build_world()

    def __repr__(self) -> str:
        return (
            f"TransactionSimulator(users={self.users}, merchants={self.merchants}, fraud_rate={self.fraud_rate}, "
            f"warmup_days={self.warmup_days}, seed={self.seed}, start={self.start!r}"
            + (f", compromised_merchants={self.compromised_merchants}, compromised_share={self.compromised_share}"
               if self.compromised_merchants else "") + ")"
        )

    # --- the world ----------------------------------------------------------------

    def _build_world(self) -> None:
        rng = self._rng(_WORLD_STREAM)
        n_online = max(1, round(self.merchants * ONLINE_MERCHANT_SHARE))
        n_physical = self.merchants - n_online
        # Every city needs an in-person merchant for travel and account takeover.
        self._n_cities = max(1, min(CITIES, n_physical))
        city_popularity = 1.0 / np.arange(1, self._n_cities + 1) ** 0.8
        city_popularity /= city_popularity.sum()
        self._city_names = np.array([f"city_{c:02d}" for c in range(self._n_cities)], dtype=object)

        width = max(5, len(str(self.merchants - 1)))
        self._merchant_names = np.array([f"m{m:0{width}d}" for m in range(self.merchants)], dtype=object)
        self._merchant_category = rng.choice(len(CATEGORIES), size=self.merchants, p=_CATEGORY_SHARE)
        is_online = np.zeros(self.merchants, dtype=bool)
        is_online[rng.choice(self.merchants, size=n_online, replace=False)] = True
        self._merchant_is_online = is_online
        physical = np.flatnonzero(~is_online)
        merchant_city = np.full(self.merchants, -1, dtype=np.int64)
        cities = np.concatenate(
            [np.arange(self._n_cities), rng.choice(self._n_cities, size=n_physical - self._n_cities, p=city_popularity)]
        )
        merchant_city[physical] = rng.permutation(cities)
        self._merchant_city = merchant_city
        self._online_merchants = np.flatnonzero(is_online)
        # Physical merchants grouped by city, so "a random merchant in city c" is one index computation.
        by_city = physical[np.argsort(merchant_city[physical], kind="stable")]
        self._physical_by_city = by_city
        self._city_merchant_count = np.bincount(merchant_city[physical], minlength=self._n_cities)
        self._city_merchant_first = np.concatenate([[0], np.cumsum(self._city_merchant_count)[:-1]])

        n = self.users
        width = max(7, len(str(n - 1)))
        self._card_names = np.array([f"card{u:0{width}d}" for u in range(n)], dtype=object)
        self._home_city = rng.choice(self._n_cities, size=n, p=city_popularity)
        self._median_amount = np.clip(np.exp(rng.normal(np.log(45.0), 0.6, size=n)), 10.0, 200.0)
        self._amount_sigma = rng.uniform(0.3, 0.6, size=n)
        self._peak_hour = np.clip(rng.normal(14.0, 2.5, size=n), 8.0, 20.0)
        self._hour_spread = rng.uniform(1.5, 3.5, size=n)
        self._rate_per_day = np.exp(rng.uniform(np.log(1.0), np.log(8.0), size=n))
        self._online_share = rng.beta(2.0, 5.0, size=n)

        self._regular_count = rng.integers(5, MAX_REGULARS + 1, size=n)
        slot_online = rng.random((n, MAX_REGULARS)) < self._online_share[:, None]
        regulars = self._random_merchants(rng, np.repeat(self._home_city, MAX_REGULARS), slot_online.ravel())
        regulars = regulars.reshape(n, MAX_REGULARS)
        regulars[np.arange(MAX_REGULARS)[None, :] >= self._regular_count[:, None]] = -1
        self._regulars = regulars
        # the compromised terminals: in-person merchants drawn from their own stream (the world stays the same)
        physical_merchants = np.flatnonzero(~self._merchant_is_online)
        chosen = self._rng(_COMPROMISE_STREAM).choice(
            physical_merchants, size=min(self.compromised_merchants, len(physical_merchants)), replace=False)
        self._compromised = np.zeros(self.merchants, dtype=bool)
        self._compromised[chosen] = True

    def _random_merchants(self, rng: np.random.Generator, cities: np.ndarray, online: np.ndarray) -> np.ndarray:
        """One merchant per row: a random online merchant, or a random in-person merchant in ``cities``."""
        merchants = np.empty(len(online), dtype=np.int64)
        n_online = int(online.sum())
        merchants[online] = self._online_merchants[rng.integers(len(self._online_merchants), size=n_online)]
        local_cities = cities[~online]
        pick = (rng.random(len(local_cities)) * self._city_merchant_count[local_cities]).astype(np.int64)
        merchants[~online] = self._physical_by_city[self._city_merchant_first[local_cities] + pick]
        return merchants

    def _is_regular(self, cards: np.ndarray, merchants: np.ndarray) -> np.ndarray:
        return (self._regulars[cards] == merchants[:, None]).any(axis=1)

    def _new_merchants(
        self, rng: np.random.Generator, cards: np.ndarray, cities: np.ndarray, online: np.ndarray
    ) -> np.ndarray:
        """Like :meth:`_random_merchants`, redrawn (a few times) where the pick is one of the card's regulars."""
        merchants = self._random_merchants(rng, cities, online)
        for _ in range(8):
            clash = np.flatnonzero(self._is_regular(cards, merchants))
            if len(clash) == 0:
                break
            merchants[clash] = self._random_merchants(rng, cities[clash], online[clash])
        return merchants

    def _regular_merchants(self, rng: np.random.Generator, cards: np.ndarray) -> np.ndarray:
        # Squaring a uniform favours the first slots: each card has favourite merchants.
        slot = (rng.random(len(cards)) ** 2 * self._regular_count[cards]).astype(np.int64)
        return self._regulars[cards, slot]

    # --- days -------------------------------------------------------------------

    def _fraud_window(self, index: int) -> tuple[float, float]:
        """Seconds into day ``index`` where fraud may happen: [from, 86400)."""
        day_start = self._start_s + index * SECONDS_PER_DAY
        return max(0.0, self._warmup_end_s - day_start), SECONDS_PER_DAY

    def _plan(self, index: int) -> _DayPlan:
        rng = self._rng(_PLAN_STREAM, index)
        events_per_card = rng.poisson(self._rate_per_day)
        window_from, window_to = self._fraud_window(index)
        budget = 0.0
        if self.fraud_rate > 0 and window_from < window_to:
            legit = float(events_per_card.sum())
            budget = self.fraud_rate / (1.0 - self.fraud_rate) * legit * (window_to - window_from) / SECONDS_PER_DAY
        no_incidents = np.empty(0, dtype=np.int64)
        if budget <= 0:
            return _DayPlan(events_per_card, no_incidents, no_incidents)
        # Every incident has >= 1 event, so int(budget) + 2 candidates always overshoot the budget.
        candidates = int(budget) + 2
        types = rng.choice(len(FRAUD_TYPES), size=candidates, p=_INCIDENT_SHARE)
        size_max = _INCIDENT_SIZE_MAX.copy()
        size_max[_MERCHANT_COMPROMISE] = min(size_max[_MERCHANT_COMPROMISE], self.users)
        size_min = np.minimum(_INCIDENT_SIZE_MIN, size_max)
        sizes = size_min[types] + (rng.random(candidates) * (size_max[types] - size_min[types] + 1)).astype(np.int64)
        total = np.cumsum(sizes)
        n_whole = int(np.searchsorted(total, budget, side="right"))
        # Keep the first incident that overshoots with the probability that makes the expected count exact.
        filled = float(total[n_whole - 1]) if n_whole else 0.0
        keep_next = rng.random() < (budget - filled) / sizes[n_whole]
        n_incidents = n_whole + int(keep_next)
        return _DayPlan(events_per_card, types[:n_incidents], sizes[:n_incidents])

    def _day_size(self, index: int) -> int:
        return self._plan(index).n_events

    def day(self, index: int) -> EventBatch:
        """All events of simulated day ``index`` (0 = the day starting at ``start``), sorted by time."""
        index = int(index)
        if index < 0:
            raise ValueError(f"day index must be >= 0, got {index}")
        plan = self._plan(index)
        first_position = self._day_position(index)
        rng = self._rng(_DETAIL_STREAM, index)

        traveling = rng.random(self.users) < TRAVEL_PROBABILITY
        away_city = (self._home_city + 1 + rng.integers(max(1, self._n_cities - 1), size=self.users)) % self._n_cities
        current_city = np.where(traveling & (self._n_cities > 1), away_city, self._home_city)

        legit = self._legit_events(rng, plan.events_per_card, traveling, current_city)
        fraud = self._fraud_events(rng, index, plan, current_city)
        card, merchant, seconds, amount, fraud_code, city_online = (
            np.concatenate([a, b]) for a, b in zip(legit, fraud)
        )

        order = np.argsort(seconds, kind="stable")
        card, merchant, seconds, amount, fraud_code, city_online = (
            a[order] for a in (card, merchant, seconds, amount, fraud_code, city_online)
        )
        if self.compromised_merchants:
            fraud_code = self._terminal_compromise(index, merchant, seconds, fraud_code)
        online = self._merchant_is_online[merchant]
        city = np.where(online, city_online, self._merchant_city[merchant])
        positions = np.arange(first_position, first_position + len(card), dtype=np.int64)
        day_start = self._start_s + index * SECONDS_PER_DAY
        return EventBatch(
            ids=np.array([f"tx{p:012d}" for p in positions.tolist()], dtype=object),
            keys=self._card_names[card],
            times=np.round(day_start + seconds, 3),
            numeric={"amount": amount},
            categorical={
                "merchant_id": self._merchant_names[merchant],
                "merchant_category": _CATEGORY_NAMES[self._merchant_category[merchant]],
                "city": self._city_names[city],
                "channel": _CHANNEL_NAMES[online.astype(np.int64)],
            },
            positions=positions,
            labels=(fraud_code > 0).astype(np.int8),
            extra={"fraud_type": _FRAUD_TYPE_NAMES[fraud_code]},
        )

    def _terminal_compromise(self, index: int, merchant: np.ndarray, seconds: np.ndarray, fraud_code: np.ndarray) -> np.ndarray:
        """Label a share of the legit transactions at compromised merchants, after warm-up, as fraud."""
        window_from, _ = self._fraud_window(index)
        draw = self._rng(_COMPROMISE_STREAM, index + 1).random(len(merchant))
        hit = self._compromised[merchant] & (fraud_code == 0) & (seconds >= window_from) & (draw < self.compromised_share)
        return np.where(hit, _TERMINAL_COMPROMISE_CODE, fraud_code)

    def _legit_events(
        self, rng: np.random.Generator, events_per_card: np.ndarray, traveling: np.ndarray, current_city: np.ndarray
    ) -> tuple[np.ndarray, ...]:
        card = np.repeat(np.arange(self.users), events_per_card)
        n = len(card)
        hour = self._peak_hour[card] + self._hour_spread[card] * rng.standard_normal(n)
        anytime = rng.random(n) < ANYTIME_SHARE
        hour[anytime] = rng.uniform(0.0, 24.0, size=int(anytime.sum()))
        seconds = np.minimum(np.mod(hour * 3600.0, SECONDS_PER_DAY), SECONDS_PER_DAY - 0.001)

        merchant = self._regular_merchants(rng, card)
        wants_new = rng.random(n) < NEW_MERCHANT_SHARE
        # Away from home, in-person purchases are at local merchants, new to the card.
        wants_new |= traveling[card] & ~self._merchant_is_online[merchant]
        new_rows = np.flatnonzero(wants_new)
        new_cards = card[new_rows]
        new_online = rng.random(len(new_rows)) < self._online_share[new_cards]
        merchant[new_rows] = self._new_merchants(rng, new_cards, current_city[new_cards], new_online)

        category_scale = _CATEGORY_SCALE[self._merchant_category[merchant]]
        amount = self._median_amount[card] * category_scale * np.exp(self._amount_sigma[card] * rng.standard_normal(n))
        big = rng.random(n) < BIG_PURCHASE_SHARE
        amount[big] *= rng.uniform(3.0, 8.0, size=int(big.sum()))
        amount = np.maximum(np.round(amount, 2), 0.5)
        return card, merchant, seconds, amount, np.zeros(n, dtype=np.int64), current_city[card]

    def _fraud_events(
        self, rng: np.random.Generator, index: int, plan: _DayPlan, current_city: np.ndarray
    ) -> tuple[np.ndarray, ...]:
        types, sizes = plan.incident_types, plan.incident_sizes
        n_incidents = len(types)
        window_from, window_to = self._fraud_window(index)
        span = _INCIDENT_SPAN_MIN_S[types] + rng.random(n_incidents) * (
            _INCIDENT_SPAN_MAX_S[types] - _INCIDENT_SPAN_MIN_S[types]
        )
        latest_start = np.maximum(window_to - window_from - span - 0.001, 0.0)
        incident_start = window_from + rng.random(n_incidents) * latest_start
        incident_card = rng.integers(self.users, size=n_incidents)
        incident_merchant = rng.integers(self.merchants, size=n_incidents)
        home = self._home_city[incident_card]
        takeover_city = (home + 1 + rng.integers(max(1, self._n_cities - 1), size=n_incidents)) % self._n_cities

        incident = np.repeat(np.arange(n_incidents), sizes)
        kind = types[incident]
        n = len(incident)
        seconds = incident_start[incident] + rng.random(n) * span[incident]
        seconds = np.clip(seconds, window_from, window_to - 0.001)

        card = incident_card[incident]
        event_first = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64)
        for i in np.flatnonzero(types == _MERCHANT_COMPROMISE):
            card[event_first[i] : event_first[i] + sizes[i]] = self._compromised_cards(
                rng, int(incident_merchant[i]), int(sizes[i])
            )
        city_online = np.where(kind == _ACCOUNT_TAKEOVER, takeover_city[incident], current_city[card])

        merchant = np.empty(n, dtype=np.int64)
        is_new = (kind == _CARD_TESTING) | (kind == _ACCOUNT_TAKEOVER) | (kind == _VELOCITY_ATTACK)
        online_draw = rng.random(n)
        online = (kind == _CARD_TESTING) | ((kind == _ACCOUNT_TAKEOVER) & (online_draw < 0.5))
        online |= (kind == _VELOCITY_ATTACK) & (online_draw < 0.7)
        new_rows = np.flatnonzero(is_new)
        merchant[new_rows] = self._new_merchants(rng, card[new_rows], city_online[new_rows], online[new_rows])
        spike_rows = np.flatnonzero(kind == _AMOUNT_SPIKE)
        merchant[spike_rows] = self._regular_merchants(rng, card[spike_rows])
        compromise_rows = np.flatnonzero(kind == _MERCHANT_COMPROMISE)
        merchant[compromise_rows] = incident_merchant[incident[compromise_rows]]

        median = self._median_amount[card]
        factor_low = np.array([0.0, 5.0, 10.0, 0.0, 3.0])[kind]
        factor_high = np.array([0.0, 20.0, 50.0, 0.0, 10.0])[kind]
        amount = median * rng.uniform(factor_low, factor_high)
        testing = kind == _CARD_TESTING
        amount[testing] = rng.uniform(0.5, 5.0, size=int(testing.sum()))
        velocity = kind == _VELOCITY_ATTACK
        ordinary = _CATEGORY_SCALE[self._merchant_category[merchant]] * np.exp(
            self._amount_sigma[card] * rng.standard_normal(n)
        )
        amount[velocity] = median[velocity] * ordinary[velocity]
        amount = np.maximum(np.round(amount, 2), 0.5)
        return card, merchant, seconds, amount, kind + 1, city_online

    def _compromised_cards(self, rng: np.random.Generator, merchant: int, count: int) -> np.ndarray:
        """``count`` distinct cards, those that do not use ``merchant`` regularly first."""
        candidates = rng.choice(self.users, size=min(self.users, 3 * count), replace=False)
        regular = self._is_regular(candidates, np.full(len(candidates), merchant))
        return candidates[np.argsort(regular, kind="stable")][:count]


# --- files -------------------------------------------------------------------


def _columns(batch: EventBatch) -> dict[str, np.ndarray]:
    return field_columns(batch, FIELDS)


def write_events(batch: EventBatch, path: str | Path, format: str | None = None) -> None:
    """Write a simulator batch with one record per event and every field of :data:`FIELDS`.

    ``format`` is "jsonl" (via msgspec), "csv" or "parquet" (via pyarrow); when
    omitted it is taken from the file suffix.
    """
    write_fields(batch, FIELDS, path, format)
