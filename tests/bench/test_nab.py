"""NAB scoring reproduces the published table; the runner works on any NAB-layout directory."""

import io
import json
import math
from pathlib import Path

import numpy as np
import pytest
from rich.console import Console

from tocsin.bench.nab import README_PUBLISHED_31_FILES, run_nab_bench
from tocsin.bench.nab_scoring import (
    CostWeights,
    prepare_file,
    probationary_rows,
    read_nab_csv,
    scaled_sigmoid,
    score_corpus,
    score_results_dir,
)

NAB = Path(__file__).resolve().parents[3] / "shared" / "data" / "nab"
STANDARD = {"standard": CostWeights(tp=1.0, fp=0.11, fn=1.0)}
PROFILES = {
    "standard": CostWeights(tp=1.0, fp=0.11, fn=1.0),
    "reward_low_FP_rate": CostWeights(tp=1.0, fp=0.22, fn=1.0),
    "reward_low_FN_rate": CostWeights(tp=1.0, fp=0.11, fn=2.0),
}


@pytest.mark.skipif(not (NAB / "results").is_dir(), reason="shared NAB data not available")
@pytest.mark.parametrize(
    "folder, published",
    [
        ("numenta", README_PUBLISHED_31_FILES["Numenta HTM"]),
        ("contextOSE", README_PUBLISHED_31_FILES["CAD OSE"]),
        ("windowedGaussian", README_PUBLISHED_31_FILES["Windowed Gaussian"]),
    ],
)
def test_reproduces_the_published_scores(folder, published):
    scores = score_results_dir(NAB / "results" / folder, NAB / "labels")
    got = tuple(round(scores[p].score, 2) for p in ("standard", "reward_low_FP_rate", "reward_low_FN_rate"))
    assert got == published


def _stamps(n):
    return np.datetime64("2024-01-01T00:00") + np.arange(n) * np.timedelta64(5, "m")


def _one_file(scores, windows_rows):
    stamps = _stamps(len(scores))
    windows = np.array([[stamps[a], stamps[b]] for a, b in windows_rows], dtype="datetime64[ns]").reshape(-1, 2)
    return prepare_file("toy.csv", stamps, np.asarray(scores, dtype=float), windows)


def sigma(y):
    return 2 / (1 + math.exp(5 * y)) - 1


def test_scaled_sigmoid_and_probation():
    assert scaled_sigmoid(0.0) == 0.0
    assert scaled_sigmoid(-1.0) == pytest.approx(sigma(-1.0))
    assert scaled_sigmoid(3.5) == -1.0
    assert probationary_rows(100) == 15 and probationary_rows(10_000) == 750


def test_earliest_detection_in_a_window_counts_and_later_ones_tie_to_the_higher_threshold():
    scores = np.zeros(100)
    scores[45] = 0.9  # window rows 40..49: R = 49, W = 10
    scores[47] = 0.5  # a later detection in the same window adds nothing
    scores[5] = 0.95  # probationary: ignored
    result = score_corpus([_one_file(scores, [(40, 49)])], STANDARD)["standard"]
    tp = sigma(-(49 - 45 + 1) / 10) / sigma(-1)
    assert result.raw == pytest.approx(tp)
    assert result.threshold == 0.9
    assert result.score == pytest.approx(100 * (tp + 1) / 2)
    assert (result.true_positives, result.false_negatives, result.false_positives) == (1, 0, 0)


def test_false_positives_cost_relative_to_the_previous_window():
    scores = np.zeros(200)
    scores[42] = 0.9  # detects window 40..49
    scores[55] = 0.9  # 6 rows past R=49: cheap (sigma(6/9))
    scores[35] = 0.9  # before any window (and after the 30 probationary rows): a full -fpWeight
    scores[190] = 0.9  # far past the window (> 3 widths): a full -fpWeight
    result = score_corpus([_one_file(scores, [(40, 49)])], STANDARD)["standard"]
    expected = sigma(-(49 - 42 + 1) / 10) / sigma(-1) + 0.11 * (sigma(6 / 9) - 1 - 1)
    # detecting (at 0.9) beats detecting nothing (-1), so the sweep keeps 0.9
    assert result.raw == pytest.approx(expected)
    assert result.false_positives == 3


def test_detecting_nothing_is_the_null_score():
    result = score_corpus([_one_file(np.zeros(100), [(40, 49), (70, 79)])], PROFILES)
    assert result["standard"].score == pytest.approx(0.0)  # detecting everything at 0 is worse than nothing
    assert result["reward_low_FN_rate"].null == -4.0 and result["reward_low_FN_rate"].perfect == 2.0


def _brute_force(files, weights):
    """Re-score every candidate threshold directly (NAB's definition)."""
    thresholds = sorted({s for f in files for s in f.anomaly_score}, reverse=True)
    best = (-math.inf, None)
    for t in [math.inf] + thresholds:
        total = 0.0
        for f in files:
            detected = f.anomaly_score >= t
            total += weights.fp * f.fp_unit[detected & (f.window < 0)].sum()
            for w in range(f.window.max() + 1 if f.window.size else 0):
                hits = detected & (f.window == w)
                if (f.window == w).any():
                    total += weights.tp * f.tp_unit[hits].max() if hits.any() else -weights.fn
        if total > best[0] + 1e-12:
            best = (total, t)
    return best


@pytest.mark.parametrize("seed", range(5))
def test_vectorised_sweep_equals_brute_force(seed):
    rng = np.random.default_rng(seed)
    files = []
    for k in range(3):
        n = 300
        scores = np.round(rng.uniform(size=n), 2)  # many ties
        starts = sorted(rng.choice(np.arange(50, 260, 40), size=2, replace=False))
        files.append(_one_file(scores, [(a, a + int(rng.integers(3, 30))) for a in starts]))
    for weights in PROFILES.values():
        result = score_corpus(files, {"p": weights})["p"]
        total, threshold = _brute_force(files, weights)
        assert result.raw == pytest.approx(total)
        if math.isfinite(threshold):
            assert result.threshold == threshold


def _write_nab_layout(root: Path, with_results: bool):
    rng = np.random.default_rng(0)
    windows = {}
    for category, name, n in [("realToy", "a.csv", 900), ("artificialToy", "b.csv", 700)]:
        stamps = _stamps(n)
        values = 10 + np.sin(np.arange(n) / 20) + rng.normal(0, 0.1, n)
        values[600:620] += 8
        folder = root / "data" / category
        folder.mkdir(parents=True, exist_ok=True)
        text = [f"{str(t).replace('T', ' ')}:00,{v}" for t, v in zip(stamps, values)]
        (folder / name).write_text("timestamp,value\n" + "\n".join(text) + "\n")
        windows[f"{category}/{name}"] = [[f"{str(stamps[580]).replace('T', ' ')}:00.000000", f"{str(stamps[640]).replace('T', ' ')}:00.000000"]]
        if with_results:
            out = root / "results" / "spike" / category
            out.mkdir(parents=True, exist_ok=True)
            score = np.zeros(n)
            score[600] = 1.0
            lines = [f"{str(t).replace('T', ' ')}:00,{v},{s}" for t, v, s in zip(stamps, values, score)]
            (out / name).write_text("timestamp,value,anomaly_score\n" + "\n".join(lines) + "\n")
    (root / "labels").mkdir(parents=True)
    (root / "labels" / "combined_windows.json").write_text(json.dumps(windows))


def test_runner_on_a_small_nab_layout_directory(tmp_path):
    _write_nab_layout(tmp_path / "nab", with_results=True)
    buffer = io.StringIO()
    result = run_nab_bench(tmp_path / "nab", tmp_path / "out", None, Console(file=buffer, width=150))
    assert result["detector"] == "tocsin" and result["files"] == 2
    assert set(result["scores"]) == set(PROFILES)
    assert result["seconds"] > 0
    # the published detector is re-scored with the same scorer: one early detection per window
    assert result["published"]["spike"]["standard"] == pytest.approx(100 * (sigma(-41 / 61) / sigma(-1) + 1) / 2, abs=0.01)
    written = read_nab_csv(tmp_path / "out" / "realToy" / "a.csv")
    assert written["anomaly_score"].size == 900
    assert ((written["anomaly_score"] >= 0) & (written["anomaly_score"] < 1)).all()
    assert "tocsin" in buffer.getvalue() and "spike" in buffer.getvalue()


def test_runner_without_published_results_shows_the_readme_table(tmp_path):
    _write_nab_layout(tmp_path / "nab", with_results=False)
    result = run_nab_bench(tmp_path / "nab", tmp_path / "out", "tocsin-max", Console(file=io.StringIO()))
    assert result["detector"] == "tocsin-max"
    assert result["published"]["Numenta HTM"]["standard"] == 69.52
    assert "README" in result["published_source"]
    with pytest.raises(ValueError, match="unknown detector"):
        run_nab_bench(tmp_path / "nab", tmp_path / "out", "nope", Console(file=io.StringIO()))
