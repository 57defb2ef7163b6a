"""Tests for src/tocsin/simulate/transactions.py."""

from __future__ import annotations

import numpy as np
import msgspec
import pyarrow as pa
import pyarrow.csv
import pyarrow.parquet
import pytest

from tocsin.batch import EventBatch
from tocsin.simulate import FIELDS, FRAUD_TYPES, TransactionSimulator, write_events
from tocsin.spec import SimulatorSource

DAY = 86_400.0
PARAMS = dict(users=3_000, merchants=800, fraud_rate=0.01, warmup_days=1.5, seed=11)


@pytest.fixture(scope="module")
def sim() -> TransactionSimulator:
    return TransactionSimulator(**PARAMS)


@pytest.fixture(scope="module")
def stream(sim: TransactionSimulator) -> EventBatch:
    """About ten days of events."""
    return sim.generate(110_000)


def assert_same(a: EventBatch, b: EventBatch) -> None:
    assert len(a) == len(b)
    assert a.ids.tolist() == b.ids.tolist()
    assert a.keys.tolist() == b.keys.tolist()
    assert a.times.tobytes() == b.times.tobytes()
    assert a.positions.tobytes() == b.positions.tobytes()
    assert a.labels.tobytes() == b.labels.tobytes()
    assert a.numeric.keys() == b.numeric.keys() and a.categorical.keys() == b.categorical.keys()
    for name in a.numeric:
        assert a.numeric[name].tobytes() == b.numeric[name].tobytes(), name
    for name in a.categorical:
        assert a.categorical[name].tolist() == b.categorical[name].tolist(), name
    assert a.extra["fraud_type"].tolist() == b.extra["fraud_type"].tolist()


def incidents(stream: EventBatch, fraud_type: str) -> dict[str, np.ndarray]:
    """Row indices of one fraud type's events, grouped by card (one incident per card in these streams)."""
    rows = np.flatnonzero(stream.extra["fraud_type"] == fraud_type)
    groups: dict[str, list[int]] = {}
    for row in rows:
        groups.setdefault(stream.keys[row], []).append(row)
    return {card: np.array(r) for card, r in groups.items()}


def card_index(name: str) -> int:
    return int(name.removeprefix("card"))


# --- determinism and resuming ---------------------------------------------------


def test_same_parameters_give_identical_events(tmp_path, stream):
    again = TransactionSimulator(**PARAMS).generate(len(stream))
    assert_same(stream, again)
    write_events(stream.take(slice(0, 5_000)), tmp_path / "a.jsonl")
    write_events(again.take(slice(0, 5_000)), tmp_path / "b.jsonl")
    assert (tmp_path / "a.jsonl").read_bytes() == (tmp_path / "b.jsonl").read_bytes()


def test_another_seed_gives_other_events(stream):
    other = TransactionSimulator(**{**PARAMS, "seed": 12}).generate(1_000)
    assert other.keys.tolist() != stream.keys[:1_000].tolist()


def test_day_is_the_matching_slice_of_the_stream(sim, stream):
    first_day = sim.day(0)
    second_day = sim.day(1)
    assert_same(first_day, stream.take(slice(0, len(first_day))))
    assert_same(second_day, stream.take(slice(len(first_day), len(first_day) + len(second_day))))
    assert first_day.times.min() >= sim._start_s and first_day.times.max() <= sim._start_s + DAY
    assert second_day.times.min() >= sim._start_s + DAY


@pytest.mark.parametrize("start_position", [0, 1, 9_999, 30_000, 54_321])
@pytest.mark.parametrize("batch_size", [1_000, 7_777])
def test_resuming_equals_the_uninterrupted_stream(stream, start_position, batch_size):
    resumed_sim = TransactionSimulator(**PARAMS)  # fresh: no cached day offsets
    wanted = len(stream) - start_position - 3_000
    batches = list(resumed_sim.batches(batch_size, start_position=start_position, max_events=wanted))
    assert all(len(b) == batch_size for b in batches[:-1]) and 0 < len(batches[-1]) <= batch_size
    assert_same(EventBatch.concat(batches), stream.take(slice(start_position, start_position + wanted)))


def test_resuming_exactly_at_a_day_boundary(sim, stream):
    boundary = len(sim.day(0)) + len(sim.day(1))
    resumed = next(TransactionSimulator(**PARAMS).batches(2_500, start_position=boundary))
    assert_same(resumed, stream.take(slice(boundary, boundary + 2_500)))


def test_batches_are_endless_without_max_events(sim):
    small = TransactionSimulator(users=20, merchants=20, seed=1)
    taken = []
    for batch in small.batches(500):
        taken.append(batch)
        if len(taken) == 5:
            break
    assert [len(b) for b in taken] == [500] * 5
    assert EventBatch.concat(taken).positions.tolist() == list(range(2_500))


def test_generate_edge_cases(sim):
    assert len(sim.generate(0)) == 0
    assert sim.generate(1).ids.tolist() == ["tx000000000000"]
    with pytest.raises(ValueError):
        sim.day(-1)
    with pytest.raises(ValueError):
        next(sim.batches(0))


# --- stream invariants ----------------------------------------------------------


def test_times_sorted_ids_unique_positions_contiguous(stream):
    assert np.all(np.diff(stream.times) >= 0)
    assert len(set(stream.ids.tolist())) == len(stream)
    assert stream.positions.tolist() == list(range(len(stream)))
    assert stream.ids.tolist() == [f"tx{p:012d}" for p in range(len(stream))]


def test_columns_match_the_schema(stream):
    assert [f.name for f in FIELDS] == [
        "tx_id", "card_id", "ts", "amount", "merchant_id", "merchant_category", "city", "channel", "is_fraud", "fraud_type",
    ]
    assert stream.times.dtype == np.float64 and stream.numeric["amount"].dtype == np.float64
    assert stream.labels.dtype == np.int8
    assert set(stream.categorical["channel"].tolist()) == {"pos", "online"}
    assert len(set(stream.categorical["merchant_category"].tolist())) == 15
    assert (stream.labels == 1).tolist() == (stream.extra["fraud_type"] != "").tolist()
    assert set(stream.extra["fraud_type"].tolist()) <= {"", *FRAUD_TYPES}


def test_no_fraud_before_warmup_and_share_close_to_rate_after(sim, stream):
    warmup_end = sim._start_s + PARAMS["warmup_days"] * DAY
    before = stream.times < warmup_end
    assert before.sum() > 10_000 and stream.labels[before].sum() == 0
    # Whole days after warm-up, so the day's budget is not cut by the end of the stream.
    day_ends = sim._start_s + DAY * np.arange(2, 10)
    after = (stream.times >= day_ends[0]) & (stream.times < day_ends[-1])
    share = stream.labels[after].mean()
    assert share == pytest.approx(PARAMS["fraud_rate"], rel=0.15)


def test_zero_fraud_rate_gives_no_fraud():
    batch = TransactionSimulator(users=500, merchants=100, fraud_rate=0.0, warmup_days=0, seed=3).generate(10_000)
    assert batch.labels.sum() == 0


def test_every_fraud_type_appears(stream):
    assert set(stream.extra["fraud_type"].tolist()) == {"", *FRAUD_TYPES}


# --- shapes ---------------------------------------------------------------------


def test_card_testing_is_a_burst_of_tiny_online_amounts_at_new_merchants(sim, stream):
    groups = incidents(stream, "card_testing")
    assert len(groups) >= 5
    for card, rows in groups.items():
        amounts = stream.numeric["amount"][rows]
        assert 10 <= len(rows) <= 30
        assert amounts.min() >= 0.5 and amounts.max() <= 5.0
        assert np.ptp(stream.times[rows]) <= 300
        assert set(stream.categorical["channel"][rows].tolist()) == {"online"}
        merchants = np.array([int(m[1:]) for m in stream.categorical["merchant_id"][rows]])
        assert not sim._is_regular(np.full(len(rows), card_index(card)), merchants).any()


def test_account_takeover_is_a_new_city_with_high_amounts(sim, stream):
    groups = incidents(stream, "account_takeover")
    assert len(groups) >= 5
    for card, rows in groups.items():
        user = card_index(card)
        assert 2 <= len(rows) <= 6
        assert np.ptp(stream.times[rows]) <= 3600
        cities = set(stream.categorical["city"][rows].tolist())
        assert len(cities) == 1 and cities != {sim._city_names[sim._home_city[user]]}
        ratio = stream.numeric["amount"][rows] / sim._median_amount[user]
        assert ratio.min() >= 4.99 and ratio.max() <= 20.01


def test_amount_spike_is_one_large_transaction(sim, stream):
    rows = np.flatnonzero(stream.extra["fraud_type"] == "amount_spike")
    assert len(rows) >= 5
    users = np.array([card_index(c) for c in stream.keys[rows]])
    ratio = stream.numeric["amount"][rows] / sim._median_amount[users]
    assert ratio.min() >= 9.99 and ratio.max() <= 50.01


def test_velocity_attack_is_many_ordinary_transactions_in_minutes(sim, stream):
    groups = incidents(stream, "velocity_attack")
    assert len(groups) >= 3
    for card, rows in groups.items():
        assert 15 <= len(rows) <= 40
        assert np.ptp(stream.times[rows]) <= 600
        assert len(set(stream.categorical["merchant_id"][rows].tolist())) >= 5
        # Ordinary amounts: the median is within the card's usual range, not a spike.
        assert np.median(stream.numeric["amount"][rows]) < 10 * sim._median_amount[card_index(card)]


def test_merchant_compromise_hits_many_cards_once_at_one_merchant(sim, stream):
    rows = np.flatnonzero(stream.extra["fraud_type"] == "merchant_compromise")
    by_merchant: dict[str, list[int]] = {}
    for row in rows:
        by_merchant.setdefault(stream.categorical["merchant_id"][row], []).append(row)
    assert len(by_merchant) >= 3
    for merchant, group in by_merchant.items():
        group = np.array(group)
        cards = stream.keys[group].tolist()
        assert 20 <= len(group) <= 50 and len(set(cards)) == len(cards)
        assert np.ptp(stream.times[group]) <= 3600
        users = np.array([card_index(c) for c in cards])
        assert not sim._is_regular(users, np.full(len(users), int(merchant[1:]))).any()
        ratio = stream.numeric["amount"][group] / sim._median_amount[users]
        assert ratio.min() >= 2.99 and ratio.max() <= 10.01


def test_legit_traffic_has_habits_and_some_noise(sim, stream):
    legit = stream.take(stream.labels == 0)
    users = np.array([card_index(c) for c in legit.keys])
    merchants = np.array([int(m[1:]) for m in legit.categorical["merchant_id"]])
    new_share = 1 - sim._is_regular(users, merchants).mean()
    assert 0.08 <= new_share <= 0.16
    hours = ((legit.times - sim._start_s) % DAY) // 3600
    assert (hours < 6).mean() < 0.05 and ((hours >= 10) & (hours < 18)).mean() > 0.5
    ratio = legit.numeric["amount"] / sim._median_amount[users]
    assert (ratio > 20).mean() < 0.01
    away = legit.categorical["city"] != sim._city_names[sim._home_city[users]]
    assert 0.005 < away.mean() < 0.05  # travel
    per_card_per_day = len(legit) / sim.users / ((legit.times[-1] - legit.times[0]) / DAY)
    assert 2 < per_card_per_day < 5


def test_from_spec_uses_every_parameter():
    source = SimulatorSource(kind="simulator", users=50, merchants=30, fraud_rate=0.1, warmup_days=0.25, seed=5,
                             start="2025-06-01T00:00:00Z")
    sim = TransactionSimulator.from_spec(source)
    assert (sim.users, sim.merchants, sim.fraud_rate, sim.warmup_days, sim.seed) == (50, 30, 0.1, 0.25, 5)
    assert sim.generate(10).times[0] >= 1748736000.0
    assert_same(sim.generate(2_000), TransactionSimulator(50, 30, 0.1, 0.25, 5, "2025-06-01T00:00:00Z").generate(2_000))


def test_tiny_worlds_still_work():
    batch = TransactionSimulator(users=3, merchants=2, fraud_rate=0.3, warmup_days=0, seed=2).generate(500)
    assert len(batch) == 500 and np.all(np.diff(batch.times) >= 0)
    compromise = batch.extra["fraud_type"] == "merchant_compromise"
    assert batch.labels.sum() > 0 and len(set(batch.keys[compromise].tolist())) <= 3


# --- files ----------------------------------------------------------------------


def read_back(path, format: str) -> dict[str, list]:
    names = [f.name for f in FIELDS]
    if format == "jsonl":
        records = [msgspec.json.decode(line) for line in path.read_bytes().splitlines()]
        return {name: [r[name] for r in records] for name in names}
    if format == "csv":
        types = {name: pa.string() for name in names} | {"ts": pa.float64(), "amount": pa.float64(), "is_fraud": pa.int8()}
        table = pyarrow.csv.read_csv(path, convert_options=pyarrow.csv.ConvertOptions(column_types=types))
    else:
        table = pyarrow.parquet.read_table(path)
    assert table.column_names == names
    return table.to_pydict()


@pytest.mark.parametrize("format", ["jsonl", "csv", "parquet"])
def test_write_events_round_trips(tmp_path, stream, format):
    fraud_rows = np.flatnonzero(stream.labels == 1)[:300]
    batch = EventBatch.concat([stream.take(slice(0, 2_000)), stream.take(fraud_rows)])
    path = tmp_path / f"events.{format}"
    write_events(batch, path)
    data = read_back(path, format)
    assert data["tx_id"] == batch.ids.tolist()
    assert data["card_id"] == batch.keys.tolist()
    assert data["ts"] == batch.times.tolist()
    assert data["amount"] == batch.numeric["amount"].tolist()
    for name in ("merchant_id", "merchant_category", "city", "channel"):
        assert data[name] == batch.categorical[name].tolist()
    assert data["is_fraud"] == batch.labels.tolist()
    assert data["fraud_type"] == batch.extra["fraud_type"].tolist()
    assert sum(data["is_fraud"]) == 300


def test_write_events_rejects_unknown_format(tmp_path, stream):
    with pytest.raises(ValueError, match="format"):
        write_events(stream.take(slice(0, 10)), tmp_path / "events.xml")
    write_events(stream.take(slice(0, 10)), tmp_path / "events.out", format="csv")
    assert (tmp_path / "events.out").read_text().startswith('"tx_id"')


def test_compromised_merchants_label_ordinary_events_and_change_nothing_else() -> None:
    plain = TransactionSimulator(users=400, merchants=300, fraud_rate=0.004, warmup_days=1.0, seed=5).generate(30_000)
    sim = TransactionSimulator(users=400, merchants=300, fraud_rate=0.004, warmup_days=1.0, seed=5,
                               compromised_merchants=3, compromised_share=0.5)
    hit = sim.generate(30_000)
    # the same events: only labels (and the fraud type) differ, so no detector can tell them apart
    assert (hit.ids == plain.ids).all() and (hit.times == plain.times).all() and (hit.keys == plain.keys).all()
    assert all((hit.numeric[k] == plain.numeric[k]).all() for k in plain.numeric)
    assert all((hit.categorical[k] == plain.categorical[k]).all() for k in plain.categorical)
    terminal = hit.extra["fraud_type"] == "terminal_compromise"
    assert (hit.labels[terminal] == 1).all() and ((hit.labels != plain.labels) == terminal).all()
    merchants = set(hit.categorical["merchant_id"][terminal])
    assert 1 <= len(merchants) <= 3 and (hit.categorical["channel"][terminal] == "pos").all()
    at = np.isin(hit.categorical["merchant_id"], list(merchants)) & (hit.times >= hit.times[0] + 86_400) & (plain.labels == 0)
    assert 0.35 < terminal.sum() / at.sum() < 0.65, "about compromised_share of their transactions after warm-up"
    assert not terminal[hit.times < float(hit.times[0]) + 86_400 - 3_600].any(), "none during warm-up"
    with pytest.raises(ValueError, match="compromised_share"):
        TransactionSimulator(compromised_merchants=1, compromised_share=0.0)
