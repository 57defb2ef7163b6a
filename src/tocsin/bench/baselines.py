"""The two per-event baselines tocsin's throughput is compared against.

Both take the same JSON lines as tocsin and compute, per event, the same kinds
of features as the reference pipeline (``specs/transactions.yaml``) with
:class:`CardFeatures`: plain Python, one dict of state per card — the way a
typical fraud-scoring microservice is written. They differ only in the model:

- :class:`MicroserviceBaseline`: a scikit-learn ``IsolationForest`` (100 trees)
  fitted once on the warm-up events' features, then ``score_samples`` on a
  1-row array per event (the request/response shape of a scoring endpoint);
- :class:`RiverHSTBaseline`: River's ``MinMaxScaler() | HalfSpaceTrees()`` with
  River's default parameters (only the seed is set), ``score_one`` then
  ``learn_one`` per event, i.e. River's documented online usage.

Neither is a straw man: the per-card state is O(1) per event (deques for the
windows, running decayed moments, dicts for the seen sets), and the models are
the libraries' own. What they share — and what tocsin avoids — is paying the
interpreter and a library call once per event. Single-row scikit-learn calls
cost around a millisecond (input validation plus 100 tree traversals through
NumPy), so :func:`run_baseline` is meant to run on a sample of the stream and
the result extrapolated to events per second; the benchmark says so in its
output.

The features follow the reference operators' definitions (windows count the
key's *prior* events with time ``> t - W``; the decayed z-score needs a prior
weight of 2; a late event counts as happening at its key's last time), so the
baselines' models read the same values tocsin's detector reads —
``tests/bench/test_throughput.py`` checks they agree — computed by their own
per-event code. When the reference spec gains a feature, add it here too.
"""

from __future__ import annotations

import json
import math
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

#: Every feature :class:`CardFeatures` computes, named as the reference pipeline
#: names them; a baseline's model reads the subset the reference detector scores.
FEATURE_NAMES = (
    "count_1m",
    "amount_sum_1m",
    "count_1h",
    "amount_sum_1h",
    "amount_zscore_30d",
    "amount_ratio_30d",
    "seconds_since_last",
    "velocity_per_min_10m",
    "merchant_id_novel",
    "merchant_id_seen_count",
    "merchant_id_distinct",
    "merchant_id_share",
    "city_novel",
    "city_seen_count",
    "city_distinct",
    "city_share",
    "merchant_id.count_1h",
    "merchant_id.velocity_per_min_20m",
    "merchant_id.velocity_ratio_20m_1d",
    "log_amount",
)

MINUTE = 60.0
HOUR = 3_600.0
AMOUNT_HALF_LIFE = 30 * 86_400.0
VELOCITY_HALF_LIFE = 600.0
MERCHANT_VELOCITY_HALF_LIFE = 20 * 60.0
MERCHANT_VELOCITY_BASELINE = 86_400.0
RECENCY_CAP = 30 * 86_400.0
LN2 = math.log(2.0)


class _CardState:
    """Everything the baseline remembers about one card."""

    __slots__ = (
        "last_time", "window_1m", "sum_1m", "window_1h", "sum_1h",
        "weight", "mean", "sq_dev", "velocity_count", "merchants", "cities", "events",
    )

    def __init__(self) -> None:
        self.last_time: float | None = None
        self.window_1m: deque[tuple[float, float]] = deque()
        self.sum_1m = 0.0
        self.window_1h: deque[tuple[float, float]] = deque()
        self.sum_1h = 0.0
        self.weight = 0.0
        self.mean = 0.0
        self.sq_dev = 0.0
        self.velocity_count = 0.0
        self.merchants: dict[str, int] = {}
        self.cities: dict[str, int] = {}
        self.events = 0


class _MerchantState:
    __slots__ = ("last_time", "window_1h", "fast_count", "slow_count")

    def __init__(self) -> None:
        self.last_time: float | None = None
        self.window_1h: deque[float] = deque()
        self.fast_count = 0.0  # decayed event counts, half-lives 20m and 1d
        self.slow_count = 0.0


class CardFeatures:
    """Per-card (and per-merchant) features from one parsed transaction at a time, state in Python dicts.

    >>> features = CardFeatures()
    >>> first = features.update({"card_id": "c1", "ts": 0.0, "amount": 40.0, "merchant_id": "m1", "city": "Oslo"})
    >>> second = features.update({"card_id": "c1", "ts": 30.0, "amount": 60.0, "merchant_id": "m1", "city": "Oslo"})
    >>> second["count_1m"], second["seconds_since_last"], second["merchant_id_novel"], second["merchant_id_seen_count"]
    (1.0, 30.0, 0.0, 1.0)
    """

    def __init__(self) -> None:
        self.cards: dict[str, _CardState] = {}
        self.merchants: dict[str, _MerchantState] = {}

    def update(self, event: dict) -> dict[str, float]:
        """The event's features (from its card's and merchant's prior events), then the event folded into that state."""
        card = self.cards.get(event["card_id"])
        if card is None:
            card = self.cards[event["card_id"]] = _CardState()
        amount = float(event["amount"])
        event_time = float(event["ts"])
        last = card.last_time
        t = event_time if last is None or event_time >= last else last  # a late event counts as at the card's last time
        gap = RECENCY_CAP if last is None else min(t - last, RECENCY_CAP)

        window_1m, window_1h = card.window_1m, card.window_1h
        while window_1m and window_1m[0][0] <= t - MINUTE:
            card.sum_1m -= window_1m.popleft()[1]
        while window_1h and window_1h[0][0] <= t - HOUR:
            card.sum_1h -= window_1h.popleft()[1]
        if not window_1m:
            card.sum_1m = 0.0
        if not window_1h:
            card.sum_1h = 0.0

        dt = 0.0 if last is None else t - last
        decay = 2.0 ** (-dt / AMOUNT_HALF_LIFE)
        prior_weight = decay * card.weight
        mean = card.mean
        std = math.sqrt(max(card.sq_dev / card.weight, 0.0)) if card.weight > 0 else 0.0
        velocity_decay = 2.0 ** (-dt / VELOCITY_HALF_LIFE)
        prior_count = velocity_decay * card.velocity_count

        merchant, city = event["merchant_id"], event["city"]
        merchant_seen = card.merchants.get(merchant, 0)
        city_seen = card.cities.get(city, 0)
        merchant_state = self.merchants.get(merchant)
        if merchant_state is None:
            merchant_state = self.merchants[merchant] = _MerchantState()
        merchant_last = merchant_state.last_time
        merchant_t = event_time if merchant_last is None or event_time >= merchant_last else merchant_last
        merchant_window = merchant_state.window_1h
        while merchant_window and merchant_window[0] <= merchant_t - HOUR:
            merchant_window.popleft()
        merchant_dt = 0.0 if merchant_last is None else merchant_t - merchant_last
        merchant_fast = 2.0 ** (-merchant_dt / MERCHANT_VELOCITY_HALF_LIFE) * merchant_state.fast_count
        merchant_slow = 2.0 ** (-merchant_dt / MERCHANT_VELOCITY_BASELINE) * merchant_state.slow_count
        merchant_rate = merchant_fast * LN2 / MERCHANT_VELOCITY_HALF_LIFE * 60.0
        merchant_usual = max(merchant_slow * LN2 / MERCHANT_VELOCITY_BASELINE * 60.0, LN2 / MERCHANT_VELOCITY_BASELINE * 60.0)

        prior_events = card.events
        features = {
            "count_1m": float(len(window_1m)),
            "amount_sum_1m": card.sum_1m,
            "count_1h": float(len(window_1h)),
            "amount_sum_1h": card.sum_1h,
            "amount_zscore_30d": (amount - mean) / max(std, 0.1 * abs(mean), 1e-9) if prior_weight >= 2.0 else 0.0,
            "amount_ratio_30d": amount / mean if prior_weight >= 1.0 and abs(mean) > 1e-12 else 1.0,
            "seconds_since_last": gap,
            "velocity_per_min_10m": prior_count * LN2 / VELOCITY_HALF_LIFE * 60.0,
            "merchant_id_novel": float(merchant_seen == 0),
            "merchant_id_seen_count": float(merchant_seen),
            "merchant_id_distinct": float(len(card.merchants)),
            "merchant_id_share": merchant_seen / prior_events if prior_events else 0.0,
            "city_novel": float(city_seen == 0),
            "city_seen_count": float(city_seen),
            "city_distinct": float(len(card.cities)),
            "city_share": city_seen / prior_events if prior_events else 0.0,
            "merchant_id.count_1h": float(len(merchant_window)),
            "merchant_id.velocity_per_min_20m": merchant_rate,
            "merchant_id.velocity_ratio_20m_1d": merchant_rate / merchant_usual,
            "log_amount": math.log1p(abs(amount)),
        }

        # Fold the event in.
        card.last_time = t
        window_1m.append((t, amount))
        card.sum_1m += amount
        window_1h.append((t, amount))
        card.sum_1h += amount
        weight = prior_weight + 1.0
        new_mean = mean + (amount - mean) / weight
        card.sq_dev = decay * card.sq_dev + (amount - mean) * (amount - new_mean)
        card.weight, card.mean = weight, new_mean
        card.velocity_count = prior_count + 1.0
        card.merchants[merchant] = merchant_seen + 1
        card.cities[city] = city_seen + 1
        card.events += 1
        merchant_state.last_time = merchant_t
        merchant_window.append(merchant_t)
        merchant_state.fast_count = merchant_fast + 1.0
        merchant_state.slow_count = merchant_slow + 1.0
        return features


def _check_features(names: Sequence[str]) -> tuple[str, ...]:
    missing = [name for name in names if name not in FEATURE_NAMES]
    if missing:
        raise ValueError(f"the baselines do not compute {missing}; they compute {list(FEATURE_NAMES)}")
    return tuple(names)


class MicroserviceBaseline:
    """Per event: ``json.loads``, :class:`CardFeatures`, a 1-row ``IsolationForest.score_samples``.

    ``features`` are the names the model reads (default: all of :data:`FEATURE_NAMES`);
    the benchmark passes the reference detector's scored features.
    """

    name = "microservice"
    description = "per-event loop: json.loads + Python-dict card state + 1-row scikit-learn IsolationForest(100 trees)"

    def __init__(self, features: Sequence[str] = FEATURE_NAMES, seed: int = 0, alert_quantile: float = 0.995) -> None:
        self.feature_names = _check_features(features)
        self.seed = seed
        self.alert_quantile = alert_quantile
        self.features = CardFeatures()

    def _row(self, line: bytes) -> list[float]:
        values = self.features.update(json.loads(line))
        return [values[name] for name in self.feature_names]

    def warm_up(self, lines: Sequence[bytes]) -> None:
        """Build card state from ``lines`` and fit the forest on their features (not timed)."""
        from sklearn.ensemble import IsolationForest

        X = np.asarray([self._row(line) for line in lines], dtype=np.float64)
        self.model_ = IsolationForest(n_estimators=100, random_state=self.seed).fit(X)
        # A scoring service answers "anomalous or not": the cut-off is the warm-up score quantile.
        self.cutoff_ = float(np.quantile(-self.model_.score_samples(X), self.alert_quantile))

    def process(self, line: bytes) -> tuple[float, bool]:
        row = np.array([self._row(line)], dtype=np.float64)
        score = -float(self.model_.score_samples(row)[0])
        return score, score > self.cutoff_


class RiverHSTBaseline:
    """Per event: ``json.loads``, :class:`CardFeatures`, River ``MinMaxScaler | HalfSpaceTrees`` score then learn.

    The model gets a dict of the ``features`` named (default: all of :data:`FEATURE_NAMES`).
    """

    name = "river_hst"
    description = "per-event loop: json.loads + Python-dict card state + River MinMaxScaler | HalfSpaceTrees (defaults), score_one then learn_one"

    def __init__(self, features: Sequence[str] = FEATURE_NAMES, seed: int = 0) -> None:
        from river import anomaly, preprocessing

        self.feature_names = _check_features(features)
        self.seed = seed
        self.features = CardFeatures()
        self.model = preprocessing.MinMaxScaler() | anomaly.HalfSpaceTrees(seed=seed)

    def _x(self, line: bytes) -> dict[str, float]:
        values = self.features.update(json.loads(line))
        return {name: values[name] for name in self.feature_names}

    def warm_up(self, lines: Sequence[bytes]) -> None:
        """Build card state and let the model learn ``lines`` (not timed), as the online model would have."""
        for line in lines:
            self.model.learn_one(self._x(line))

    def process(self, line: bytes) -> tuple[float, bool]:
        x = self._x(line)
        score = self.model.score_one(x)
        self.model.learn_one(x)
        return score, False


@dataclass
class BaselineResult:
    name: str
    description: str
    events: int
    seconds: float
    latencies_s: np.ndarray = field(repr=False)
    cpu_seconds: float = float("nan")

    @property
    def events_per_s(self) -> float:
        return self.events / self.seconds if self.seconds > 0 else float("nan")

    @property
    def events_per_cpu_s(self) -> float:
        """Events per second of process CPU time: what the loop costs, whatever else shares the machine."""
        return self.events / self.cpu_seconds if self.cpu_seconds > 0 else float("nan")

    def latency_ms(self, q: float) -> float:
        return float(np.quantile(self.latencies_s, q) * 1e3) if len(self.latencies_s) else float("nan")


def run_baseline(
    baseline: MicroserviceBaseline | RiverHSTBaseline,
    lines: Sequence[bytes],
    clock: Callable[[], float] = time.perf_counter,
) -> BaselineResult:
    """Time ``baseline.process`` over ``lines``, one event at a time; per-event latencies included."""
    latencies = np.empty(len(lines))
    process = baseline.process
    cpu_started, started = time.process_time(), clock()
    for i, line in enumerate(lines):
        t0 = clock()
        process(line)
        latencies[i] = clock() - t0
    seconds, cpu_seconds = clock() - started, time.process_time() - cpu_started
    return BaselineResult(baseline.name, baseline.description, len(lines), seconds, latencies, cpu_seconds)
