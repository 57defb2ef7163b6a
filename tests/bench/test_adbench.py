"""ADBench runner on a tiny directory of .npz files."""

import numpy as np
import pytest
from rich.console import Console

from tocsin.bench.adbench import BASELINES, CONFIGURATIONS, make_detector, run_adbench


def _write(path, seed, rows=300):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(rows, 3)).astype(np.float32)
    y = np.zeros(rows, dtype=np.int8)
    y[:6] = 1
    X[:6] += 6.0
    np.savez(path, X=X, y=y)


def test_runs_on_any_directory_and_shows_dash_for_unknown_datasets(tmp_path):
    _write(tmp_path / "thyroid.npz", 0)  # a name the baseline table knows
    _write(tmp_path / "mine.npz", 1)
    console = Console(record=True, width=160)
    result = run_adbench(tmp_path, "ecod", console)
    assert result["detector"] == "ecod"
    assert set(result["datasets"]) == {"thyroid", "mine"}
    for figures in result["datasets"].values():
        assert figures["aucroc"] > 0.95 and figures["aucpr"] > 0.8 and figures["seconds"] >= 0
    assert result["mean"]["aucroc"] == pytest.approx(np.mean([f["aucroc"] for f in result["datasets"].values()]))
    assert result["baselines"]["IsolationForest"]["datasets"] == {"thyroid": {"aucroc": 0.978, "aucpr": 0.527}}
    assert result["baselines"]["ECOD"]["mean"] is None  # not every dataset has a baseline
    text = console.export_text()
    assert "—" in text and "0.978 / 0.527" in text


def test_default_configuration_is_the_ensemble_and_unknown_names_fail(tmp_path):
    assert type(make_detector(None)).kind == "ensemble"
    with pytest.raises(ValueError, match="unknown detector configuration"):
        run_adbench(tmp_path, "no_such_detector", None)
    with pytest.raises(FileNotFoundError):
        run_adbench(tmp_path, None, None)


def test_configurations_name_registered_kinds():
    from tocsin.detectors import DETECTORS, UNAVAILABLE

    for name, config in CONFIGURATIONS.items():
        assert config["kind"] in DETECTORS or config["kind"] in UNAVAILABLE, name
    assert set(BASELINES) == {"IsolationForest", "ECOD"}
    assert len(BASELINES["ECOD"]) == 8


def test_cv_chooses_on_the_other_datasets_and_reports_held_out_means(tmp_path):
    from tocsin.bench.adbench import run_adbench_cv

    for seed, name in enumerate(["a", "b", "c"]):
        _write(tmp_path / f"{name}.npz", seed)
    result = run_adbench_cv(tmp_path, Console(record=True, width=160), candidates=["ecod", "robust_zscore"])
    assert {"cv_mean_aucroc", "cv_mean_aucpr", "in_sample_mean_aucroc", "in_sample_mean_aucpr", "default", "chosen_per_fold"} <= set(result)
    assert set(result["chosen_per_fold"]) == {"a", "b", "c"}
    rows = result["datasets"].values()
    assert result["cv_mean_aucroc"] == pytest.approx(np.mean([row["cv_aucroc"] for row in rows]))
    assert all(row["fit_score_seconds"] >= 0 and row["chosen"] in ("ecod", "robust_zscore") for row in rows)


def test_default_members_are_sub_quadratic_and_a_large_table_is_timed():
    from tocsin.bench.adbench import CV_CANDIDATES, DEFAULT_CONFIGURATION, time_large_table

    assert DEFAULT_CONFIGURATION in CV_CANDIDATES and "ensemble_full_knn" not in CV_CANDIDATES
    for member in make_detector(None)._build_members():
        assert getattr(member, "max_samples", None) is not None or type(member).__name__ == "IsolationForest"
    timed = time_large_table(rows=3_000, columns=5)
    assert timed["finite_scores"] and timed["fit_score_seconds"] >= 0
