"""``tocsin bench nab``: run a time-series configuration online over a NAB-layout directory and score it.

Any directory in NAB layout works (``data/<category>/<file>.csv`` with
``timestamp,value``; ``labels/combined_windows.json``; optionally
``labels/profiles.json`` and published detectors under ``results/<name>/``).

What happens, per data file, in file-name order:

1. a fresh detector of the chosen configuration
   (:data:`tocsin.detectors.timeseries.CONFIGURATIONS`) scores the rows with
   ``score_partial_fit``: each row is scored from the rows before it, then
   learned. That is the streaming semantics row by row, run as one batch per
   file because the result is identical (the detectors' tests check it). No
   labels reach the detector and every file gets the same parameters;
2. ``results_dir/<category>/<file>.csv`` is written with
   ``timestamp,value,anomaly_score`` (NAB's result format);
3. all files are scored together with :mod:`tocsin.bench.nab_scoring` (one
   threshold per profile over the corpus, as NAB does).

The published detectors are re-scored from ``DIR/results/*`` with the same
scorer when those results cover every labelled file; otherwise the table shows
the README's published numbers for NAB's 31-file subset, labelled as such.

Named configurations (``--detector NAME``, ``--detector all`` runs each):

- ``tocsin`` (default): seasonal time-of-day profile + value rarity, each
  calibrated to surprise against its own recent scores, summed, alarm echoes
  damped;
- ``tocsin-max``: the same, the larger surprise instead of the sum;
- ``seasonal``: the seasonal profile alone;
- ``forecast``: online Holt-Winters residual + value rarity;
- ``ewma-likelihood``: EWMA z-score with Numenta's anomaly likelihood.

Measured on the 31-file set (standard / low FP / low FN): tocsin 70.73 / 57.75 /
77.17 (Numenta HTM 69.5, CAD OSE 66.1, ARTime 73.6); run the command for the
alternatives.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console
from rich.table import Table

from tocsin.bench.nab_scoring import (
    CostWeights,
    ProfileScore,
    load_profiles,
    load_windows,
    prepare_file,
    read_nab_csv,
    score_corpus,
    score_results_dir,
)
from tocsin.detectors.timeseries import CONFIGURATIONS, DEFAULT_CONFIGURATION, make_detector

PROFILES = ("standard", "reward_low_FP_rate", "reward_low_FN_rate")

#: NAB's application profiles, used when the directory has no labels/profiles.json.
DEFAULT_PROFILES = {
    "standard": CostWeights(tp=1.0, fp=0.11, fn=1.0),
    "reward_low_FP_rate": CostWeights(tp=1.0, fp=0.22, fn=1.0),
    "reward_low_FN_rate": CostWeights(tp=1.0, fp=0.11, fn=2.0),
}

#: Published scores on NAB's 31-file subset (shared data README), shown when the
#: directory holds no per-row results to re-score: (standard, low FP, low FN).
README_PUBLISHED_31_FILES = {
    "ARTime": (73.55, 65.59, 78.59),
    "Numenta HTM": (69.52, 62.88, 74.02),
    "CAD OSE": (66.13, 62.76, 69.74),
    "Random Cut Forest": (61.26, 50.68, 68.51),
    "Relative Entropy": (54.07, 45.04, 59.32),
    "KNN CAD": (52.54, 38.72, 59.56),
    "earthgecko Skyline": (51.57, 47.28, 54.50),
    "Twitter ADVec": (44.10, 36.83, 48.27),
    "Etsy Skyline": (43.01, 31.84, 48.17),
    "Windowed Gaussian": (37.70, 32.72, 40.86),
    "random": (17.16, 12.38, 25.91),
}


def data_files(data: Path) -> list[str]:
    """Every ``data/**/*.csv`` of a NAB-layout directory, as ``category/file.csv`` names, sorted."""
    root = Path(data) / "data"
    if not root.is_dir():
        raise FileNotFoundError(f"{root} does not exist: expected a NAB layout (data/<category>/<file>.csv, labels/)")
    return sorted(path.relative_to(root).as_posix() for path in root.rglob("*.csv"))


def run_configuration(data: Path, results_dir: Path | None, configuration: str, names: list[str]) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray], float, int]:
    """Run one configuration over the files; returns (scores, timestamps, detector seconds, rows)."""
    scores: dict[str, np.ndarray] = {}
    stamps: dict[str, np.ndarray] = {}
    detector_seconds = 0.0
    rows = 0
    for name in names:
        columns = read_nab_csv(Path(data) / "data" / name)
        detector = make_detector(configuration)
        started = time.perf_counter()
        score = detector.score_partial_fit(columns["value"], timestamps=columns["timestamp"])
        detector_seconds += time.perf_counter() - started
        rows += score.size
        scores[name], stamps[name] = score, columns["timestamp"]
        if results_dir is not None:
            write_result(Path(results_dir) / name, columns["timestamp"], columns["value"], score)
    return scores, stamps, detector_seconds, rows


def write_result(path: Path, timestamps: np.ndarray, values: np.ndarray, scores: np.ndarray) -> None:
    """One NAB result file: ``timestamp,value,anomaly_score``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    text_stamps = np.char.replace(np.datetime_as_string(np.asarray(timestamps, dtype="datetime64[s]"), unit="s"), "T", " ")
    lines = ["timestamp,value,anomaly_score"]
    lines.extend(f"{t},{v!r},{s!r}" for t, v, s in zip(text_stamps.tolist(), values.tolist(), scores.tolist()))
    path.write_text("\n".join(lines) + "\n")


def score_run(scores: dict[str, np.ndarray], stamps: dict[str, np.ndarray], windows: dict[str, np.ndarray], profiles: dict[str, CostWeights]) -> dict[str, ProfileScore]:
    prepared = [prepare_file(name, stamps[name], scores[name], windows[name]) for name in sorted(scores) if name in windows]
    return score_corpus(prepared, profiles)


def published_scores(data: Path, labels: Path, profiles: dict[str, CostWeights]) -> tuple[dict[str, dict[str, float]], str]:
    """Published detectors' scores: re-scored from ``DIR/results/*`` when complete, else the README constants."""
    results = Path(data) / "results"
    rescored: dict[str, dict[str, float]] = {}
    if results.is_dir() and (labels / "combined_windows.json").exists():
        for folder in sorted(p for p in results.iterdir() if p.is_dir()):
            try:
                profile_scores = score_results_dir(folder, labels, profiles)
            except (FileNotFoundError, KeyError, ValueError):
                continue  # incomplete or foreign results: not comparable
            rescored[folder.name] = {name: round(s.score, 2) for name, s in profile_scores.items()}
    if rescored:
        return rescored, f"re-scored from {results}"
    constants = {name: dict(zip(PROFILES, values)) for name, values in README_PUBLISHED_31_FILES.items()}
    return constants, "published on NAB's 31-file subset (shared data README), not re-scored here"


def run_nab_bench(data: Path, results_dir: Path, detector: str | None, console: Console) -> dict[str, Any]:
    """Run, write, score and print; returns the figures (see the module docstring)."""
    started = time.perf_counter()
    data = Path(data)
    labels = data / "labels"
    names = data_files(data)
    if not names:
        raise FileNotFoundError(f"no CSV files under {data / 'data'}")
    windows = load_windows(labels / "combined_windows.json")
    profiles = load_profiles(labels / "profiles.json") if (labels / "profiles.json").exists() else dict(DEFAULT_PROFILES)
    unlabelled = [name for name in names if name not in windows]
    configurations = list(CONFIGURATIONS) if detector == "all" else [detector or DEFAULT_CONFIGURATION]
    for configuration in configurations:
        if configuration not in CONFIGURATIONS:
            raise ValueError(f"unknown detector {configuration!r}; choose from {sorted(CONFIGURATIONS)} or 'all'")

    runs = []
    for configuration in configurations:
        run_started = time.perf_counter()
        out_dir = Path(results_dir) if len(configurations) == 1 else Path(results_dir) / configuration
        scores, stamps, detector_seconds, rows = run_configuration(data, out_dir, configuration, names)
        profile_scores = score_run(scores, stamps, windows, profiles)
        runs.append(
            {
                "detector": configuration,
                "scores": {name: round(s.score, 2) for name, s in profile_scores.items()},
                "thresholds": {name: s.threshold for name, s in profile_scores.items()},
                "detected_windows": {name: s.true_positives for name, s in profile_scores.items()},
                "windows": profile_scores[next(iter(profile_scores))].true_positives + profile_scores[next(iter(profile_scores))].false_negatives if profile_scores else 0,
                "false_positives": {name: s.false_positives for name, s in profile_scores.items()},
                "rows": rows,
                "detector_seconds": round(detector_seconds, 3),
                "us_per_row": round(1e6 * detector_seconds / max(rows, 1), 3),
                "seconds": round(time.perf_counter() - run_started, 3),
                "results_dir": str(out_dir),
            }
        )

    published, published_source = published_scores(data, labels, profiles)
    _print_table(console, runs, published, published_source, len(names), unlabelled)
    best = runs[0]
    result = {
        **best,
        "files": len(names),
        "unlabelled_files": unlabelled,
        "seconds": round(time.perf_counter() - started, 3),
        "published": published,
        "published_source": published_source,
    }
    if len(runs) > 1:
        result["runs"] = runs
    return result


def _print_table(console: Console, runs: list[dict[str, Any]], published: dict[str, dict[str, float]], source: str, n_files: int, unlabelled: list[str]) -> None:
    table = Table(title=f"NAB scores, {n_files} files (normalised: 0 = detect nothing, 100 = perfect)")
    table.add_column("detector")
    for header in ("standard", "low FP", "low FN"):
        table.add_column(header, justify="right")
    table.add_column("note")
    rows: list[tuple[str, dict[str, float], str, bool]] = []
    for run in runs:
        note = f"{run['us_per_row']:.2f} us/row, {run['detected_windows'].get('standard', 0)}/{run['windows']} windows, {run['false_positives'].get('standard', 0)} FP"
        rows.append((f"tocsin: {run['detector']}", run["scores"], note, True))
    for name, values in published.items():
        rows.append((name, values, "published", False))
    rows.sort(key=lambda row: -row[1].get("standard", float("-inf")))
    for name, values, note, ours in rows:
        cells = [f"{values[p]:.2f}" if p in values else "-" for p in PROFILES]
        style = "bold green" if ours else None
        table.add_row(name, *cells, note, style=style)
    console.print(table)
    console.print(f"published rows: {source}")
    if unlabelled:
        console.print(f"[yellow]{len(unlabelled)} file(s) without labels were run but not scored: {', '.join(unlabelled[:5])}[/yellow]")
