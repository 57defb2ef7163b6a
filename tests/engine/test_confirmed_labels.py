"""Labels as features (``kind: confirmed``): confirmed fraud at a merchant raises the risk of its later
events, and a label never influences the score of an event at or before its arrival (the leakage test)."""

from __future__ import annotations

import numpy as np
import pyarrow.parquet as pq
import pytest
import yaml

from tocsin.batch import EventBatch
from tocsin.engine.backtest import backtest
from tocsin.features.base import BatchKeys
from tocsin.features.labels import ConfirmedRisk
from tocsin.simulate import TransactionSimulator, write_events
from tocsin.spec import parse_spec

DAY = 86_400.0


def test_state_round_trips_and_labels_only_move_later_events() -> None:
    risk = ConfirmedRisk(by="merchant_id", half_lives=[DAY, 7 * DAY])
    batch = EventBatch(ids=np.array(list("abcd"), dtype=object), keys=np.array(list("wxyz"), dtype=object),
                       times=np.array([0.0, 1.0, 2.0, 3.0]), numeric={}, categorical={})
    keys = BatchKeys(by={"merchant_id": np.array([0, 1, 0, 1])})
    before = risk.transform_update(batch, keys).columns
    assert all((v == 0).all() for v in before.values()), "no label yet: no risk"
    risk.apply_labels(np.array([0, 1]), np.array([3.0, 3.0]), np.array([1, 0]))  # merchant 0 confirmed, 1 cleared
    copy = ConfirmedRisk(by="merchant_id", half_lives=[DAY, 7 * DAY])
    copy.load_state_dict(risk.state_dict())
    later = EventBatch(ids=np.array(["e", "f"], dtype=object), keys=np.array(["w", "x"], dtype=object),
                       times=np.array([DAY + 3.0, DAY + 3.0]), numeric={}, categorical={})
    later_keys = BatchKeys(by={"merchant_id": np.array([0, 1])})
    out, out_copy = risk.transform_update(later, later_keys).columns, copy.transform_update(later, later_keys).columns
    assert all(np.array_equal(out[k], out_copy[k]) for k in out), "a restored state gives the same features"
    assert out["merchant_id.confirmed_1d"].tolist() == pytest.approx([0.5, 0.0]), "one confirmation, one half-life ago"
    assert out["merchant_id.confirmed_share_1w"][0] > 0 and out["merchant_id.confirmed_share_1w"][1] == 0


@pytest.fixture(scope="module")
def history(tmp_path_factory):
    """~16 simulated days with label-only fraud at compromised merchants, and the same history whose
    labels after day 8 are erased."""
    tmp = tmp_path_factory.mktemp("labels")
    events = TransactionSimulator(users=300, merchants=400, fraud_rate=0.004, warmup_days=1.0, seed=3,
                                  compromised_merchants=8, compromised_share=0.5).generate(20_000)
    cut = float(events.times[0]) + 8 * DAY
    erased = events.take(np.arange(len(events)))
    erased.labels = np.where(events.times >= cut, 0, events.labels).astype(np.int8)
    write_events(events, tmp / "a.parquet")
    write_events(erased, tmp / "b.parquet")
    return tmp, cut


def spec_with_confirmed(tmp_path):
    with open("examples/transactions.yaml") as handle:
        data = yaml.safe_load(handle)
    data["detector"].update({"warmup_events": 2_000, "refit_every": 4_000, "train_window": 8_000})  # refits learn the label columns
    data["features"].append({"kind": "confirmed", "by": "merchant_id", "half_lives": ["7d"]})
    data["detector"]["features"] += ["merchant_id.confirmed_1w", "merchant_id.confirmed_share_1w"]
    data["store"]["url"] = f"sqlite:///{tmp_path / 'store.db'}"
    data["checkpoint"]["dir"] = str(tmp_path / "checkpoints")
    return parse_spec(data)


def test_no_label_influences_a_score_at_or_before_its_arrival(tmp_path, history) -> None:
    data, cut = history
    delay = 2 * DAY
    spec = spec_with_confirmed(tmp_path)
    runs = {}
    for name in ("a", "b"):
        backtest(spec, data / f"{name}.parquet", "is_fraud", scores_path=tmp_path / f"{name}-scores.parquet", label_delay=delay)
        runs[name] = pq.read_table(tmp_path / f"{name}-scores.parquet").to_pandas().set_index("event_id")
    a, b = runs["a"], runs["b"].loc[runs["a"].index]
    # the two histories differ only in labels of events at or after `cut`, known at or after cut + delay
    before = a.event_time < cut + delay
    assert before.sum() > 5_000 and (a.score[before] == b.score[before]).all(), "scores before the labels arrive are identical"
    after = ~before
    assert (a.raw_score[after] != b.raw_score[after]).any(), "and the labels do change later scores (the test can fail)"



@pytest.mark.parametrize("seed", [0, 1, 2])
def test_the_kernel_matches_the_definition_whatever_the_batch_cuts(seed) -> None:
    """confirmed_h(e) = sum over labels applied before e of 2^-((t_e - arrival)/h); the share divides by the
    key's earlier events decayed the same way. Labels arrive between batches, at the clock of the last
    event before them; cutting the same stream into other batches (labels at the same places) changes nothing."""
    rng = np.random.default_rng(seed)
    n, h = 400, 600.0
    times = np.cumsum(rng.exponential(30.0, n))
    keys = rng.integers(0, 5, n)
    label_after = sorted(rng.choice(np.arange(10, n - 1), size=30, replace=False).tolist())
    labelled = {i: int(rng.integers(0, n)) for i in label_after}  # after event i, the label of an earlier event arrives
    labelled = {i: j % (i + 1) for i, j in labelled.items()}

    def run(cut_every: int) -> tuple[np.ndarray, np.ndarray]:
        risk = ConfirmedRisk(by="entity", half_lives=[h])
        counts, shares, start = [], [], 0
        boundaries = sorted(set(range(cut_every, n, cut_every)) | {i + 1 for i in label_after} | {n})
        for stop in boundaries:
            part = EventBatch(ids=np.arange(start, stop).astype(str).astype(object), keys=keys[start:stop].astype(str).astype(object),
                              times=times[start:stop], numeric={}, categorical={})
            out = risk.transform_update(part, BatchKeys(by={"entity": keys[start:stop]})).columns
            counts.append(out["confirmed_10m"]), shares.append(out["confirmed_share_10m"])
            if stop - 1 in labelled:
                j = labelled[stop - 1]
                risk.apply_labels(np.array([keys[j]]), np.array([times[stop - 1]]), np.array([1]))
            start = stop
        return np.concatenate(counts), np.concatenate(shares)

    expected_count = np.zeros(n)
    expected_events = np.zeros(n)
    for e in range(n):
        arrivals = [times[i] for i, j in labelled.items() if i < e and keys[j] == keys[e]]
        expected_count[e] = sum(2 ** (-(times[e] - a) / h) for a in arrivals)
        expected_events[e] = sum(2 ** (-(times[e] - times[j]) / h) for j in range(e) if keys[j] == keys[e])
    expected_share = np.divide(expected_count, expected_events, out=np.zeros(n), where=expected_events > 0)
    for cut_every in (1, 7, 50, n):
        count, share = run(cut_every)
        np.testing.assert_allclose(count, expected_count, rtol=1e-9, atol=1e-12)
        np.testing.assert_allclose(share, expected_share, rtol=1e-9, atol=1e-12)
    assert expected_count.max() > 0.5, "labels reached some later events"
