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
:data:`tocsin.detectors.timeseries.CONFIGURATIONS`; the default, ``tocsin``
(hour-of-day and hour-of-week profiles + value rarity per series, each calibrated to
surprise against its own recent scores, summed, alarm echoes damped), is the
candidate with the best leave-one-category-out score.

``--cv`` (:func:`run_nab_cv`) cross-validates the choice of configuration and
threshold by category and prints the cross-validated scores beside NAB's
in-sample ones, and a sensitivity table. Measured figures, in-sample beside
cross-validated: ``docs/quality.md``.
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
    ScoredFile,
    load_profiles,
    load_windows,
    prepare_file,
    read_nab_csv,
    score_corpus,
    score_results_dir,
)
from tocsin.bench.crossval import choose
from tocsin.bench.nab_pipeline import PIPELINE, PipelineSeriesScorer
from tocsin.bench.nab_cv import category_of, in_sample, nested_cv, threshold_cv
from tocsin.detectors.timeseries import CONFIGURATIONS, CV_CANDIDATES, DEFAULT_CONFIGURATION, make_detector, sensitivity_variants

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


def run_configuration(
    data: Path, results_dir: Path | None, configuration: str, names: list[str], overrides: dict[str, Any] | None = None
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray], float, int]:
    """Run one configuration (with ``overrides`` of its parameters) over the files; returns
    (scores, timestamps, detector seconds, rows)."""
    scores: dict[str, np.ndarray] = {}
    stamps: dict[str, np.ndarray] = {}
    detector_seconds = 0.0
    rows = 0
    for name in names:
        columns = read_nab_csv(Path(data) / "data" / name)
        detector = (PipelineSeriesScorer(**(overrides or {})) if configuration == PIPELINE
                    else make_detector(configuration, **(overrides or {})))
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
    configurations = [*CONFIGURATIONS, PIPELINE] if detector == "all" else [detector or DEFAULT_CONFIGURATION]
    for configuration in configurations:
        if configuration not in CONFIGURATIONS and configuration != PIPELINE:
            raise ValueError(f"unknown detector {configuration!r}; choose from {sorted([*CONFIGURATIONS, PIPELINE])} or 'all'")

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


def _prepare_all(scores: dict[str, np.ndarray], stamps: dict[str, np.ndarray], windows: dict[str, np.ndarray]) -> dict[str, ScoredFile]:
    return {name: prepare_file(name, stamps[name], scores[name], windows[name]) for name in sorted(scores) if name in windows}


def run_nab_cv(
    data: Path,
    console: Console,
    candidates: list[str] | None = None,
    sensitivity: dict[str, tuple[Any, ...]] | None = None,
) -> dict[str, Any]:
    """``tocsin bench nab --cv``: leave-one-category-out cross-validation of the
    configuration choice and the thresholds, beside NAB's in-sample scores; the
    default chosen by cross-validated score; the sensitivity of that default.

    Every candidate (:data:`~tocsin.detectors.timeseries.CV_CANDIDATES`, fixed
    beforehand) runs once over every labelled file (a detector sees one file,
    online, so its scores do not depend on the other files); then, with
    :mod:`tocsin.bench.nab_cv`:

    - per candidate: NAB's in-sample score and its threshold-only CV score;
    - the **default**: the candidate with the best threshold-only CV standard
      score (earlier candidates win ties);
    - ``cv_*``: the nested estimate (in each fold the candidate is chosen the
      same way on the 4 training categories, the thresholds swept on them, the
      held-out category scored at them), the union of held-out predictions
      normalised as NAB does;
    - per category: the default's score at NAB's in-sample threshold beside the
      fold's held-out score;
    - **sensitivity**: the default with each parameter at x0.5 and x2, or its
      neighbouring choices (:func:`~tocsin.detectors.timeseries.sensitivity_variants`):
      in-sample and threshold-CV standard scores and their change.
    """
    started = time.perf_counter()
    data = Path(data)
    labels = data / "labels"
    windows = load_windows(labels / "combined_windows.json")
    profiles = load_profiles(labels / "profiles.json") if (labels / "profiles.json").exists() else dict(DEFAULT_PROFILES)
    names = [name for name in data_files(data) if name in windows]
    if not names:
        raise FileNotFoundError(f"no labelled CSV files under {data / 'data'}")
    candidates = list(CV_CANDIDATES if candidates is None else candidates)
    for name in candidates:
        if name not in CONFIGURATIONS and name != PIPELINE:
            raise ValueError(f"unknown detector {name!r}; choose from {sorted(CONFIGURATIONS)}")
    groups = sorted({category_of(name) for name in names})
    if len(groups) < 2:
        raise ValueError(f"cross-validation needs files in at least 2 categories, found {groups}")

    prepared: dict[str, dict[str, ScoredFile]] = {}
    per_candidate: dict[str, dict[str, Any]] = {}
    for name in candidates:
        with console.status(f"running {name} over {len(names)} files…"):
            scores, stamps, seconds, rows = run_configuration(data, None, name, names)
        prepared[name] = _prepare_all(scores, stamps, windows)
        own = in_sample(prepared[name], profiles)
        cv = threshold_cv(prepared[name], profiles, name)
        per_candidate[name] = {
            "in_sample": {p: round(v, 2) for p, v in own["scores"].items()},
            "cv": {p: round(v, 2) for p, v in cv["scores"].items()},
            "us_per_row": round(1e6 * seconds / max(rows, 1), 3),
        }
    default = choose(candidates, lambda name: per_candidate[name]["cv"]["standard"])
    nested = nested_cv(prepared, profiles, candidates)
    default_in_sample = in_sample(prepared[default], profiles)
    default_cv = threshold_cv(prepared[default], profiles, default)

    group_rows: dict[str, dict[str, Any]] = {}
    for group in groups:
        group_rows[group] = {
            "files": sum(1 for name in names if category_of(name) == group),
            "in_sample": {p: default_in_sample["groups"][p][group].as_dict() for p in profiles},
            "cv": {p: nested["groups"][p][group].as_dict() for p in profiles},
        }

    variants = sensitivity_variants(make_detector(default).get_params()) if sensitivity is None else sensitivity
    sensitivity_rows = _sensitivity(data, names, windows, profiles, default, variants, per_candidate[default], console)
    low_fp, low_fn = "reward_low_FP_rate", "reward_low_FN_rate"
    result: dict[str, Any] = {
        "files": len(names),
        "groups": group_rows,
        "candidates": per_candidate,
        "default": default,
        "default_parameters": make_detector(default).get_params(),
        "chosen_per_fold": nested["chosen"],
        "cv_standard": round(nested["scores"]["standard"], 2),
        "cv_low_fp": round(nested["scores"].get(low_fp, float("nan")), 2),
        "cv_low_fn": round(nested["scores"].get(low_fn, float("nan")), 2),
        "cv": {p: round(v, 2) for p, v in nested["scores"].items()},
        "default_threshold_cv": {p: round(v, 2) for p, v in default_cv["scores"].items()},
        "in_sample_standard": round(default_in_sample["scores"]["standard"], 2),
        "in_sample": {p: round(v, 2) for p, v in default_in_sample["scores"].items()},
        "in_sample_thresholds": {p: s.threshold for p, s in default_in_sample["corpus"].items()},
        "sensitivity": sensitivity_rows,
        "max_sensitivity_in_sample": max((abs(row["delta_in_sample"]) for row in sensitivity_rows), default=0.0),
        "max_sensitivity_cv": max((abs(row["delta_cv"]) for row in sensitivity_rows), default=0.0),
    }
    result["seconds"] = round(time.perf_counter() - started, 2)
    _print_cv(console, result, list(profiles))
    return result


def _sensitivity(
    data: Path, names: list[str], windows: dict[str, np.ndarray], profiles: dict[str, CostWeights],
    default: str, variants: dict[str, tuple[Any, ...]], base: dict[str, Any], console: Console,
) -> list[dict[str, Any]]:
    """The default with one parameter changed at a time: standard score in-sample and threshold-CV."""
    standard = {"standard": profiles["standard"]}
    rows = []
    for parameter, values in variants.items():
        for value in values:
            try:
                make_detector(default, **{parameter: value}).check_params()
            except ValueError as error:
                rows.append({"parameter": parameter, "value": _jsonable(value), "error": str(error), "in_sample_standard": None, "cv_standard": None, "delta_in_sample": 0.0, "delta_cv": 0.0})
                continue
            with console.status(f"sensitivity: {parameter} = {value}…"):
                scores, stamps, _, _ = run_configuration(data, None, default, names, {parameter: value})
            files = _prepare_all(scores, stamps, windows)
            own = in_sample(files, standard)["scores"]["standard"]
            cv = threshold_cv(files, standard)["scores"]["standard"]
            rows.append({
                "parameter": parameter,
                "value": _jsonable(value),
                "in_sample_standard": round(own, 2),
                "cv_standard": round(cv, 2),
                "delta_in_sample": round(own - base["in_sample"]["standard"], 2),
                "delta_cv": round(cv - base["cv"]["standard"], 2),
            })
    return rows


def _jsonable(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value


def _print_cv(console: Console, result: dict[str, Any], profiles: list[str]) -> None:
    short = {"standard": "std", "reward_low_FP_rate": "low FP", "reward_low_FN_rate": "low FN"}
    table = Table(title=f"NAB candidates, {result['files']} files: in-sample (threshold swept on all) vs leave-one-category-out CV")
    table.add_column("candidate")
    for p in profiles:
        table.add_column(f"in-sample\n{short.get(p, p)}", justify="right")
    for p in profiles:
        table.add_column(f"CV\n{short.get(p, p)}", justify="right")
    table.add_column("us/row", justify="right")
    for name, figures in result["candidates"].items():
        style = "bold green" if name == result["default"] else None
        table.add_row(name, *[f"{figures['in_sample'][p]:.2f}" for p in profiles], *[f"{figures['cv'][p]:.2f}" for p in profiles], f"{figures['us_per_row']:.2f}", style=style)
    console.print(table)

    table = Table(title=f"default {result['default']!r}, standard profile per held-out category (CV: candidate and threshold chosen on the other 4)")
    for header in ("category", "files", "in-sample score", "in-sample windows / FP", "CV candidate", "CV threshold", "CV score", "CV windows / FP"):
        table.add_column(header, justify="left" if header in ("category", "CV candidate") else "right")
    for group, row in result["groups"].items():
        ins, cv = row["in_sample"]["standard"], row["cv"]["standard"]

        def score(cell: dict[str, Any]) -> str:
            return f"{cell['score']:.2f}" if cell["score"] is not None else f"raw {cell['raw']:.2f}"

        table.add_row(
            group, str(row["files"]), score(ins), f"{ins['detected_windows']}/{ins['windows']} / {ins['false_positives']}",
            cv["candidate"], f"{cv['threshold']:.4f}", score(cv), f"{cv['detected_windows']}/{cv['windows']} / {cv['false_positives']}",
        )
    console.print(table)
    console.print(
        f"[bold]cross-validated[/bold] (union of held-out predictions): standard {result['cv_standard']:.2f}, "
        f"low FP {result['cv_low_fp']:.2f}, low FN {result['cv_low_fn']:.2f}; "
        f"[bold]in-sample[/bold] (NAB's protocol): standard {result['in_sample_standard']:.2f}, "
        f"low FP {result['in_sample'].get('reward_low_FP_rate', float('nan')):.2f}, low FN {result['in_sample'].get('reward_low_FN_rate', float('nan')):.2f}; "
        f"default {result['default']!r} alone, thresholds cross-validated: standard {result['default_threshold_cv']['standard']:.2f}"
    )
    if result["sensitivity"]:
        table = Table(title=f"sensitivity of {result['default']!r}: one parameter changed, standard profile")
        for header in ("parameter", "value", "in-sample", "change", "CV", "change"):
            table.add_column(header, justify="left" if header in ("parameter", "value") else "right")
        for row in result["sensitivity"]:
            if row.get("error"):
                table.add_row(row["parameter"], str(row["value"]), "-", "-", "-", row["error"])
                continue
            table.add_row(row["parameter"], str(row["value"]), f"{row['in_sample_standard']:.2f}", f"{row['delta_in_sample']:+.2f}", f"{row['cv_standard']:.2f}", f"{row['delta_cv']:+.2f}")
        console.print(table)
        console.print(f"largest change: {result['max_sensitivity_in_sample']:.2f} points in-sample, {result['max_sensitivity_cv']:.2f} cross-validated")
