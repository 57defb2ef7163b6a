"""Detector throughput bench: figures per kind, errors recorded, special input handled."""

import numpy as np
import pytest

import tocsin.detectors
from tocsin.bench import detectors as bench
from tocsin.detectors.base import Detector
from tocsin.detectors.ecod import ECOD
from tocsin.detectors.half_space_trees import HalfSpaceTrees


class _Broken(Detector):
    kind = "broken"

    def fit(self, X):
        raise RuntimeError("cannot fit a table")

    def score_samples(self, X):  # pragma: no cover
        return np.zeros(len(X))

    def explain(self, X):  # pragma: no cover
        return np.zeros(np.shape(X))

    def state_dict(self):  # pragma: no cover
        return {}

    def load_state_dict(self, state):  # pragma: no cover
        pass


class _Timed(Detector):
    kind = "timed"

    def fit(self, X, timestamps=None):
        assert timestamps is not None and len(timestamps) == len(X)
        self.seen_ = np.asarray(timestamps)[-1:]
        return self

    def score_samples(self, X, timestamps=None):
        assert timestamps is not None and np.all(np.asarray(timestamps) > self.seen_)
        return np.zeros(len(X))

    def explain(self, X, timestamps=None):  # pragma: no cover
        return np.zeros(np.shape(X))

    def state_dict(self):  # pragma: no cover
        return {"seen": self.seen_}

    def load_state_dict(self, state):  # pragma: no cover
        self.seen_ = state["seen"]


def test_figures_per_kind_errors_and_timestamps(monkeypatch):
    registry = {"ecod": ECOD, "half_space_trees": HalfSpaceTrees, "broken": _Broken, "timed": _Timed}
    monkeypatch.setattr(tocsin.detectors, "DETECTORS", registry)
    monkeypatch.setattr(tocsin.detectors, "UNAVAILABLE", {"gpu_thing": "No module named 'gpu'"})
    monkeypatch.setattr(bench, "LATENCY_CALLS", 20)
    monkeypatch.setattr(bench, "NEEDS_SPECIAL_INPUT", {"half_space_trees": "pretend it needs a series"})
    result = bench.run_detector_bench(rows=6_000, console=None)
    assert set(result) == {"ecod", "half_space_trees", "broken", "timed", "gpu_thing"}
    ecod = result["ecod"]
    assert ecod["status"] == "ok" and ecod["rows_per_s"] > 0 and ecod["fit_seconds"] >= 0
    assert ecod["latency_p50_us"] <= ecod["latency_p99_us"]
    assert ecod["score_and_learn_rows_per_s"] is None
    assert result["half_space_trees"] == {"status": "skipped", "note": "pretend it needs a series"}
    assert result["broken"]["status"] == "error" and "cannot fit a table" in result["broken"]["note"]
    assert result["timed"]["status"] == "ok" and "timestamps" in result["timed"]["note"]
    assert result["gpu_thing"]["status"] == "unavailable"


def test_online_detectors_get_a_score_and_learn_rate(monkeypatch):
    monkeypatch.setattr(tocsin.detectors, "DETECTORS", {"half_space_trees": HalfSpaceTrees})
    monkeypatch.setattr(tocsin.detectors, "UNAVAILABLE", {})
    monkeypatch.setattr(bench, "LATENCY_CALLS", 20)
    result = bench.run_detector_bench(rows=10_000, console=None)
    assert result["half_space_trees"]["score_and_learn_rows_per_s"] > 0


def test_synthetic_table_shape_and_rejects_no_rows():
    X = bench.synthetic_table(1_000)
    assert X.shape == (1_000, bench.N_FEATURES) and np.isfinite(X).all()
    with pytest.raises(ValueError):
        bench.run_detector_bench(rows=0)
