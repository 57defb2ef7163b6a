"""The supervised re-ranker: it fits once labels confirm enough remembered events, raises what only labels
reveal, keeps the blended score calibrated, says so in explanations, and survives a checkpoint."""

from __future__ import annotations

import numpy as np
import pyarrow.parquet as pq
import pytest
import yaml
from sklearn.metrics import average_precision_score

from tests.state_helpers import through_npz
from tocsin.engine.backtest import backtest
from tocsin.engine.pipeline import Pipeline
from tocsin.simulate import TransactionSimulator, write_events
from tocsin.spec import parse_spec

DAY = 86_400.0


def spec_data(tmp_path, supervised: bool):
    with open("examples/transactions.yaml") as handle:
        data = yaml.safe_load(handle)
    data["detector"].update({"warmup_events": 2_000, "refit_every": 4_000, "train_window": 8_000})
    data["features"].append({"kind": "confirmed", "by": "merchant_id", "half_lives": ["7d"]})
    data["calibration"]["window"] = 10_000
    data["store"]["url"] = f"sqlite:///{tmp_path / 'store.db'}"
    data["checkpoint"]["dir"] = str(tmp_path / "checkpoints")
    if supervised:
        data["supervised"] = {"enabled": True, "min_positives": 20, "refit_every": 20, "label_window": "2d"}
    return data


@pytest.fixture(scope="module")
def history(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("supervised")
    events = TransactionSimulator(users=300, merchants=400, fraud_rate=0.004, warmup_days=1.0, seed=3,
                                  compromised_merchants=8, compromised_share=1.0).generate(30_000)
    write_events(events, tmp / "h.parquet")
    return tmp / "h.parquet"


def run(tmp_path, history, supervised: bool):
    spec = parse_spec(spec_data(tmp_path / ("s" if supervised else "u"), supervised))
    (tmp_path / ("s" if supervised else "u")).mkdir(exist_ok=True)
    scores = tmp_path / f"scores-{supervised}.parquet"
    report = backtest(spec, history, "is_fraud", scores_path=scores, label_delay=2 * DAY, test_days=7)
    return report, pq.read_table(scores).to_pandas()


def test_labels_teach_the_ranker_what_the_detector_cannot_see(tmp_path, history) -> None:
    _plain, plain_rows = run(tmp_path, history, supervised=False)
    _learnt, rows = run(tmp_path, history, supervised=True)
    end = rows.event_time.max()
    final = rows.event_time >= end - 7 * DAY
    ap_plain = average_precision_score(plain_rows.label[final], plain_rows.score[final])
    ap_learnt = average_precision_score(rows.label[final], rows.score[final])
    assert ap_learnt > ap_plain + 0.05, (ap_plain, ap_learnt)
    # still calibrated after the ranker took over: about 1 % of the final week's events score 0.99 or more
    assert 0.004 < (rows.score[final] >= 0.99).mean() < 0.02, (rows.score[final] >= 0.99).mean()


def test_explanations_say_the_supervised_model_spoke_and_state_round_trips(tmp_path, history) -> None:
    data = spec_data(tmp_path, supervised=True)
    spec = parse_spec(data)
    table = pq.read_table(history).to_pylist()
    pipeline = Pipeline(spec)
    for start in range(0, 24_000, 2_000):
        scored = pipeline.process_records(table[start:start + 2_000], source="t")
        labelled = scored.events.take(np.flatnonzero(scored.events.labels == 1))
        pipeline.apply_labels(labelled, labelled.times, "t-labels", np.arange(start, start + len(labelled)))
    assert pipeline.supervised.is_fitted and pipeline.supervised.fits >= 1
    batch = table[24_000:26_000]
    restored = through_npz(pipeline.state_dict(), Pipeline(spec))
    a, b = pipeline.process_records(batch, source="t"), restored.process_records(batch, source="t")
    np.testing.assert_array_equal(a.score, b.score)
    texts = [items[0]["text"] for items in a.explanations.values() if items and items[0]["feature"] == "supervised"]
    assert texts and all(t.startswith("score raised by the supervised model") for t in texts)
    assert any("confirmed bad events" in t for t in texts), "the label evidence is named"


def test_refits_follow_confirmed_labels_even_when_the_remembered_ones_plateau() -> None:
    """With a full memory, old positives are forgotten as new ones arrive: the count remembered stays flat,
    and refits must still come every ``refit_every`` confirmations (they once stopped after the first)."""
    from tocsin.engine.supervised import SupervisedRanker
    from tocsin.spec.detection import SupervisedSpec

    ranker = SupervisedRanker(SupervisedSpec(enabled=True, min_positives=20, refit_every=20, label_window=100.0, memory=1_000))
    rng = np.random.default_rng(1)
    t = 0.0
    for _ in range(30):
        X = rng.normal(size=(500, 3))
        ids = np.array([f"e{t + i:.0f}" for i in range(500)], dtype=object)
        ranker.observe(ids, t + np.arange(500.0), X, np.zeros(500))
        bad = np.flatnonzero(X[:, 0] > 1.8)
        ranker.label(ids[bad], np.ones(len(bad), dtype=int))
        ranker.fit_if_due(now=t + 500.0, unsupervised=lambda raw: np.full(len(raw), 0.5))
        t += 500.0
    assert ranker.positives < 2 * 20 + 40, "the remembered positives plateau with the memory"
    assert ranker.fits >= 10 and ranker.confirmed_total > 300


def test_the_ranker_fits_and_predicts_on_one_openmp_thread(monkeypatch) -> None:
    """scikit-learn's thread per core, spinning beside a busy pipeline, once made one backtest's fits take
    minutes each: the ranker's trees run on one thread, whatever the machine."""
    from sklearn.ensemble import HistGradientBoostingClassifier
    from threadpoolctl import threadpool_info

    from tocsin.engine.supervised import SupervisedRanker
    from tocsin.spec.detection import SupervisedSpec

    def runtimes() -> list[dict]:
        """scikit-learn's own OpenMP runtime when it bundles one (torch, imported by other tests, brings another)."""
        openmp = [lib for lib in threadpool_info() if lib["user_api"] == "openmp"]
        return [lib for lib in openmp if "scikit_learn" in lib["filepath"]] or openmp

    if not runtimes():
        pytest.skip("no OpenMP runtime loaded: nothing to limit")
    seen: list[int] = []
    fit, predict = HistGradientBoostingClassifier.fit, HistGradientBoostingClassifier.predict_proba

    def threads() -> int:
        return max(lib["num_threads"] for lib in runtimes())

    before = threads()
    if before < 2:
        pytest.skip("OpenMP runs one thread here already")
    monkeypatch.setattr(HistGradientBoostingClassifier, "fit", lambda self, *a, **k: (seen.append(threads()), fit(self, *a, **k))[1])
    monkeypatch.setattr(HistGradientBoostingClassifier, "predict_proba", lambda self, *a, **k: (seen.append(threads()), predict(self, *a, **k))[1])
    ranker = SupervisedRanker(SupervisedSpec(enabled=True, min_positives=20, refit_every=20, label_window=100.0, memory=1_000))
    X = np.random.default_rng(2).normal(size=(500, 3))
    ids = np.array([f"e{i}" for i in range(500)], dtype=object)
    ranker.observe(ids, np.arange(500.0), X, np.zeros(500))
    ranker.label(ids[X[:, 0] > 1.0], np.ones(int((X[:, 0] > 1.0).sum()), dtype=int))
    assert ranker.fit_if_due(now=1_000.0, unsupervised=lambda raw: np.full(len(raw), 0.5))
    ranker.probability(X[:10], np.zeros(10))
    assert seen == [1, 1, 1], seen  # the fit, the blend's seeding, a segment's scores
    assert threads() == before, "the limit ends with the call"
