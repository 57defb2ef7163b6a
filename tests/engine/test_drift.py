"""Tests for src/tocsin/engine/drift.py: PSI/KS against the training rows, and the model-drift alert.

A shift in one feature raises an alert naming that feature; a stream that does not shift raises
none over a million events; the distances do not depend on how the stream is cut into batches.
"""

from __future__ import annotations

import numpy as np
import pytest

from tocsin.engine.drift import DriftMonitor
from tocsin.engine.pipeline import Pipeline
from tocsin.engine.runner import Runner
from tocsin.engine.train import train_model
from tocsin.simulate import TransactionSimulator, write_events
from tocsin.sources.base import Source, SourceBatch
from tocsin.spec import DriftSpec, load_spec, parse_spec
from tocsin.store.sql import Store

from .conftest import REFERENCE, small_spec_dict


def test_the_same_distribution_is_near_zero_and_a_shift_is_large() -> None:
    rng = np.random.default_rng(0)
    monitor = DriftMonitor(DriftSpec(half_life=2_000, min_rows=500), ["a", "b"])
    reference = rng.normal(size=(20_000, 2))
    monitor.set_reference(reference, reference[:, 0] + reference[:, 1])
    assert monitor.distances() == {}, "nothing reported before min_rows"
    same = rng.normal(size=(10_000, 2))
    monitor.observe(same, same.sum(axis=1))
    distances = monitor.distances()
    assert set(distances) == {"a", "b", "score"} and all(psi < 0.02 and ks < 0.05 for psi, ks in distances.values())
    shifted = rng.normal(size=(10_000, 2)) + np.array([0.0, 1.5])
    monitor.observe(shifted, shifted.sum(axis=1))
    distances = monitor.distances()
    assert distances["b"][0] > 0.5 and distances["a"][0] < 0.05
    assert [name for name, _ in monitor.drifted()] == ["b", "score"] or monitor.drifted()[0][0] == "b"


def test_features_with_many_ties_are_measured_without_blowing_up() -> None:
    monitor = DriftMonitor(DriftSpec(half_life=1_000, min_rows=100), ["count"])
    counts = np.random.default_rng(1).permutation(np.r_[np.zeros(9_000), np.ones(1_000)]).reshape(-1, 1)
    monitor.set_reference(counts, counts[:, 0])
    monitor.observe(counts, counts[:, 0])
    psi, ks = monitor.distances()["count"]
    assert np.isfinite(psi) and psi < 0.01 and ks < 0.01


def test_the_folding_kernel_adds_what_a_weighted_bincount_of_the_bins_adds() -> None:
    """Bit for bit, NaN rows, NaN cut points and values on a cut point included."""
    rng = np.random.default_rng(3)
    train = rng.normal(size=(2_000, 3)).round(1)
    train[:, 2] = np.nan  # a column with no reference: NaN cut points
    monitor = DriftMonitor(DriftSpec(), ["a", "b", "c"])
    monitor.set_reference(train, rng.random(2_000))
    X = rng.normal(size=(1_500, 3)).round(1)
    X[::7, 0] = np.nan
    X[:10, 1] = monitor.edges[1][:1]  # exactly on a cut point
    scores = rng.random(1_500)
    scores[::11] = np.nan
    before = monitor.counts.copy() + 1.0
    monitor.counts = before.copy()
    monitor.observe(X, scores)
    weights = monitor._decay ** np.arange(1_499, -1, -1, dtype=np.float64)
    expected = before * monitor._decay ** 1_500
    columns = np.column_stack([X, scores])
    for j in range(4):
        expected[j] += np.bincount(np.searchsorted(monitor.edges[j], columns[:, j], side="right"), weights=weights, minlength=10)
    np.testing.assert_array_equal(monitor.counts, expected)


def test_distances_do_not_depend_on_batch_cuts(tmp_path) -> None:
    spec = parse_spec(small_spec_dict(tmp_path))
    events = TransactionSimulator.from_spec(spec.source).generate(12_000)
    whole, pieces = Pipeline(spec), Pipeline(spec)
    whole.process(events)
    for start in (0, 1_234, 5_000, 5_001, 9_999):
        end = {0: 1_234, 1_234: 5_000, 5_000: 5_001, 5_001: 9_999, 9_999: 12_000}[start]
        pieces.process(events.take(slice(start, end)))
    for name, value in whole.drift.state_dict().items():
        np.testing.assert_array_equal(value, pieces.drift.state_dict()[name], err_msg=name)


class LiveSource(Source):
    """The simulator's events after a history, with amounts multiplied by ``factor`` from event ``at`` on."""

    name = "live"

    def __init__(self, simulator: TransactionSimulator, history: int, events: int, at: int, factor: float) -> None:
        self.batches = simulator.batches(5_000, start_position=history, max_events=events)
        self.at, self.factor, self.seen = at, factor, 0

    def read(self, max_records, timeout):
        batch = next(self.batches, None)
        if batch is None:
            return None
        if self.seen >= self.at and self.factor != 1.0:
            batch.numeric["amount"] = batch.numeric["amount"] * self.factor
        self.seen += len(batch)
        return SourceBatch(positions=batch.positions, next_position=int(batch.positions[-1]) + 1, events=batch)

    def seek(self, position):
        raise NotImplementedError


def drift_alerts(tmp_path, history: int, events: int, factor: float) -> list[dict]:
    """A champion trained on ``history`` events, installed in a pipeline that lived through them; then
    ``events`` more, their amounts multiplied by ``factor`` from the middle on: the drift alerts."""
    spec = load_spec(REFERENCE)
    spec = spec.model_copy(update={"store": spec.store.model_copy(update={"url": f"sqlite:///{tmp_path / 'store.db'}"})})
    past = TransactionSimulator.from_spec(spec.source).generate(history)
    write_events(past, tmp_path / "history.jsonl", "jsonl")
    _version, arrays = train_model(spec, tmp_path / "history.jsonl", holdout=0)
    pipeline = Pipeline(spec)
    pipeline.process(past)  # the live stream's entity state, as after running through that history
    pipeline.install_model(arrays, version=1, position=history - 1)
    source = LiveSource(TransactionSimulator.from_spec(spec.source), history, events, at=events // 2, factor=factor)
    Runner(spec, source, pipeline=pipeline, checkpoints=False, follow=False).run()
    return Store(spec.store.url).alerts(pipeline=spec.name, entity="model", limit=1_000)


def test_a_shift_in_one_feature_raises_a_drift_alert_naming_it(tmp_path) -> None:
    alerts = drift_alerts(tmp_path, history=200_000, events=120_000, factor=4.0)
    assert alerts, "the amounts quadrupled: the model's inputs drifted"
    named = {item["feature"] for alert in alerts for item in alert["explanation"]}
    assert named and all(name.startswith("amount") for name in named), named


@pytest.mark.slow
def test_a_stream_that_does_not_shift_raises_no_drift_alert_over_a_million_events(tmp_path) -> None:
    assert drift_alerts(tmp_path, history=400_000, events=1_000_000, factor=1.0) == []


def test_the_retrain_policy_names_a_challenger_trained_on_the_drifted_rows(tmp_path) -> None:
    """``drift.retrain``: the drift alert starts a fit on the latest rows; the version is registered by
    ``tocsin:drift``, named challenger (never champion) and scores in shadow beside the champion."""
    from tocsin.engine.retrain import RETRAINER, retrain_note
    from tocsin.engine.shadow import comparison
    from tocsin.registry import CHALLENGER, CHAMPION, open_registry

    spec = load_spec(REFERENCE)
    spec = spec.model_copy(update={
        "store": spec.store.model_copy(update={"url": f"sqlite:///{tmp_path / 'store.db'}"}),
        "drift": spec.drift.model_copy(update={"retrain": True}),
        "registry": spec.registry.model_copy(update={"poll_interval": 0.1}),
    })
    history, events = 200_000, 120_000
    past = TransactionSimulator.from_spec(spec.source).generate(history)
    write_events(past, tmp_path / "history.jsonl", "jsonl")
    version, arrays = train_model(spec, tmp_path / "history.jsonl", holdout=0)
    registry = open_registry(spec)
    champion = registry.register(version, arrays).version
    registry.promote(spec.name, champion, CHAMPION)
    pipeline = Pipeline(spec)
    pipeline.process(past)
    pipeline.install_model(arrays, version=champion, position=history - 1)
    source = LiveSource(TransactionSimulator.from_spec(spec.source), history, events, at=events // 4, factor=4.0)
    runner = Runner(spec, source, pipeline=pipeline, checkpoints=False)
    runner.run()
    retrainer = runner.core.retrainer
    assert retrainer is not None and retrainer.error is None and len(retrainer.registered) == 1, retrainer.error
    trained = registry.get(spec.name, retrainer.registered[0])
    assert trained.created_by == RETRAINER and trained.note.startswith(retrain_note(champion)) and "amount" in trained.note
    assert trained.rows == spec.detector.train_window
    assert registry.alias(spec.name, CHALLENGER) == trained.version and registry.alias(spec.name, CHAMPION) == champion
    assert runner.pipeline.model_version == champion, "a retrain never replaces the champion by itself"
    compared = comparison(Store(spec.store.url), spec.name)
    assert compared is not None and compared["challenger"] == trained.version and compared["events"] > 0
    registry.close()
