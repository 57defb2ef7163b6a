"""Cross-validated model selection: a fold never chooses with its held-out group; the JSON says so."""

import io
import sys
from pathlib import Path

import numpy as np
import pytest
from rich.console import Console

from tocsin.bench.crossval import choose, leave_one_group_out
from tocsin.bench.nab import run_nab_cv
from tocsin.bench.nab_cv import nested_cv, threshold_cv, union_score
from tocsin.bench.nab_scoring import CostWeights, prepare_file, score_at_threshold, score_corpus

sys.path.insert(0, str(Path(__file__).parent))
from test_nab import _write_nab_layout  # noqa: E402

STANDARD = {"standard": CostWeights(tp=1.0, fp=0.11, fn=1.0)}


def _file(name, scores, window=(60, 69)):
    stamps = np.datetime64("2024-01-01T00:00") + np.arange(len(scores)) * np.timedelta64(5, "m")
    windows = np.array([[stamps[window[0]], stamps[window[1]]]], dtype="datetime64[ns]")
    return prepare_file(name, stamps, np.asarray(scores, dtype=float), windows)


def _hit(level, at=62, n=100, noise=0.0, seed=0):
    scores = np.random.default_rng(seed).uniform(0, noise, n)
    scores[at] = level
    return scores


def test_leave_one_group_out_and_choose():
    folds = leave_one_group_out(["x", "y", "x", "z"])
    assert [(f.held_out, f.train) for f in folds] == [("x", ("y", "z")), ("y", ("x", "z")), ("z", ("x", "y"))]
    assert all(f.held_out not in f.train for f in folds)
    with pytest.raises(ValueError):
        leave_one_group_out(["only"])
    assert choose(["first", "second"], lambda name: 1.0) == "first"  # ties: the earlier candidate


def test_score_at_threshold_agrees_with_the_sweep_at_its_threshold():
    rng = np.random.default_rng(3)
    files = [_file(f"c/{k}.csv", np.round(rng.uniform(size=100), 2)) for k in range(4)]
    swept = score_corpus(files, STANDARD)["standard"]
    fixed = score_at_threshold(files, STANDARD["standard"], swept.threshold)
    assert fixed.raw == pytest.approx(swept.raw) and fixed.score == pytest.approx(swept.score)
    assert (fixed.true_positives, fixed.false_positives) == (swept.true_positives, swept.false_positives)


def test_a_fold_never_chooses_with_its_held_out_category():
    # "oracle" is perfect on category a and detects nothing elsewhere; "steady" finds every window.
    names = [f"{c}/{k}.csv" for c in "abc" for k in range(2)]
    prepared = {
        "oracle": {n: _file(n, _hit(0.9, at=60) if n.startswith("a/") else np.zeros(100)) for n in names},
        "steady": {n: _file(n, _hit(0.5, at=66, noise=0.1, seed=k)) for k, n in enumerate(names)},
    }
    nested = nested_cv(prepared, STANDARD, ["oracle", "steady"])
    # with a held out, the choice is made on b and c, where the oracle sees nothing
    assert nested["chosen"] == {"a": "steady", "b": "steady", "c": "steady"}
    held = nested["groups"]["standard"]["a"]
    train = [prepared["steady"][n] for n in names if not n.startswith("a/")]
    assert held.threshold == score_corpus(train, STANDARD)["standard"].threshold
    # the CV score is the union of the held-out results, each at its own fold's threshold
    assert nested["scores"]["standard"] == pytest.approx(union_score([h.score for h in nested["groups"]["standard"].values()]))
    # the oracle alone, thresholds cross-validated: swept on b and c (all zeros) the threshold
    # detects nothing, so its perfect score on a is never found
    alone = threshold_cv(prepared["oracle"], STANDARD)
    assert alone["groups"]["standard"]["a"].threshold > 1.0
    assert alone["groups"]["standard"]["a"].score.true_positives == 0
    assert alone["scores"]["standard"] < 50 < nested["scores"]["standard"]


def test_nab_cv_writes_the_promised_keys_and_a_sensitivity_table(tmp_path):
    _write_nab_layout(tmp_path / "nab", with_results=False)
    variants = {"suppress_halflife": (50.0, 200.0), "combine": ("max",)}
    result = run_nab_cv(tmp_path / "nab", Console(file=io.StringIO(), width=160), candidates=["tocsin-short", "rarity"], sensitivity=variants)
    assert {"cv_standard", "in_sample_standard", "sensitivity", "cv_low_fp", "default", "groups", "candidates", "chosen_per_fold"} <= set(result)
    assert result["default"] in ("tocsin-short", "rarity")
    assert set(result["groups"]) == {"artificialToy", "realToy"}
    assert set(result["chosen_per_fold"]) == {"artificialToy", "realToy"}
    rows = result["sensitivity"]
    assert [(r["parameter"], r["value"]) for r in rows] == [("suppress_halflife", 50.0), ("suppress_halflife", 200.0), ("combine", "max")]
    for row in rows:
        assert {"in_sample_standard", "cv_standard", "delta_in_sample", "delta_cv"} <= set(row)
        assert row["delta_in_sample"] == pytest.approx(row["in_sample_standard"] - result["candidates"][result["default"]]["in_sample"]["standard"], abs=0.011)
    assert result["max_sensitivity_in_sample"] == max(abs(r["delta_in_sample"]) for r in rows)
