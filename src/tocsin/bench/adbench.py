"""``tocsin bench adbench``: unsupervised tabular detection on ADBench-format ``.npz`` files.

For every ``<name>.npz`` (arrays ``X``: rows x features, ``y``: 1 = anomaly) in
a directory, the chosen detector configuration is fitted on all of ``X``
*without labels*, scores all rows, and is judged by AUCROC and AUCPR (average
precision) against ``y``. One configuration serves every dataset: nothing is
tuned per dataset and no label is seen before scoring. The figures are printed
beside the IsolationForest and ECOD baselines measured the same way
(:data:`BASELINES`, from ``shared/data/README.md``).

Named configurations (``--detector NAME``; :data:`CONFIGURATIONS`):

- ``ensemble`` (default): mean of log-robust-z-scores of Isolation Forest
  (300 trees), ECOD and kNN (k = 50, largest distance, median/MAD scaling).
- ``ensemble_max`` / ``ensemble_rank``: the same members, combined by maximum
  / by mean calibrated rank.
- ``isolation_forest``, ``ecod``, ``knn`` (k = 50, robust scaling),
  ``half_space_trees`` (fitted by one pass over the rows, 25 trees),
  ``robust_zscore``, ``autoencoder`` (needs ``tocsin[deep]``).
- Any other registered detector kind runs with its default parameters.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console
from rich.table import Table

#: Seed given to every configuration that takes one, so runs repeat.
SEED = 0

#: ``--detector`` names: a detector kind and its parameters.
CONFIGURATIONS: dict[str, dict[str, Any]] = {
    "ensemble": {"kind": "ensemble", "params": {"combine": "mean"}},
    "ensemble_max": {"kind": "ensemble", "params": {"combine": "max"}},
    "ensemble_rank": {"kind": "ensemble", "params": {"combine": "rank"}},
    "isolation_forest": {"kind": "isolation_forest", "params": {}},
    "ecod": {"kind": "ecod", "params": {}},
    "knn": {"kind": "knn", "params": {"n_neighbors": 50, "scaling": "robust"}},
    "half_space_trees": {"kind": "half_space_trees", "params": {"n_trees": 25, "height": 10, "window_size": 1000}},
    "robust_zscore": {"kind": "robust_zscore", "params": {}},
    "autoencoder": {"kind": "autoencoder", "params": {}},
}
DEFAULT_CONFIGURATION = "ensemble"

#: Published unsupervised baselines on the ADBench classical datasets, measured on
#: all of X without labels (shared/data/README.md): (AUCROC, AUCPR).
#: IsolationForest: scikit-learn 1.9.1 defaults, mean of 3 seeds; ECOD: PyOD 3.6.7.
BASELINES: dict[str, dict[str, tuple[float, float]]] = {
    "IsolationForest": {
        "annthyroid": (0.832, 0.322),
        "cardio": (0.926, 0.544),
        "mammography": (0.861, 0.205),
        "PageBlocks": (0.904, 0.486),
        "pendigits": (0.947, 0.269),
        "satellite": (0.695, 0.658),
        "shuttle": (0.997, 0.977),
        "thyroid": (0.978, 0.527),
    },
    "ECOD": {
        "annthyroid": (0.789, 0.270),
        "cardio": (0.935, 0.567),
        "mammography": (0.906, 0.436),
        "PageBlocks": (0.914, 0.520),
        "pendigits": (0.927, 0.266),
        "satellite": (0.583, 0.526),
        "shuttle": (0.993, 0.904),
        "thyroid": (0.977, 0.468),
    },
}
#: The baselines' means over the 8 datasets, as published (AUCROC, AUCPR).
BASELINE_MEANS: dict[str, tuple[float, float]] = {"IsolationForest": (0.893, 0.498), "ECOD": (0.878, 0.495)}


def make_detector(name: str | None):
    """The detector a configuration name stands for (a registered kind works with default parameters)."""
    import inspect

    from tocsin.detectors import DETECTORS, UNAVAILABLE

    name = DEFAULT_CONFIGURATION if name is None else name
    config = CONFIGURATIONS.get(name, {"kind": name, "params": {}})
    kind = config["kind"]
    if kind not in DETECTORS:
        if kind in UNAVAILABLE:
            raise ValueError(f"detector {name!r} is not available here: {UNAVAILABLE[kind]}")
        known = sorted(set(CONFIGURATIONS) | set(DETECTORS))
        raise ValueError(f"unknown detector configuration {name!r}; known: {known}")
    cls = DETECTORS[kind]
    params = dict(config["params"])
    if "random_state" in inspect.signature(cls.__init__).parameters:
        params.setdefault("random_state", SEED)
    return cls(**params)


def load_dataset(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """``X`` (float64) and ``y`` (0/1) of one ADBench ``.npz``."""
    with np.load(path, allow_pickle=False) as data:
        if "X" not in data.files or "y" not in data.files:
            raise ValueError(f"{path} has no X and y arrays (it has {data.files})")
        X = np.asarray(data["X"], dtype=np.float64)
        y = np.asarray(data["y"]).astype(np.int64).ravel()
    if X.ndim != 2 or X.shape[0] != y.shape[0]:
        raise ValueError(f"{path}: X must be rows x features with one label per row, got {X.shape} and {y.shape}")
    return X, y


def evaluate(detector, X: np.ndarray, y: np.ndarray) -> dict[str, float]:
    """Fit without labels on all rows, score all rows: AUCROC, AUCPR and seconds."""
    from sklearn.metrics import average_precision_score, roc_auc_score

    started = time.perf_counter()
    scores = detector.fit(X).score_samples(X)
    seconds = time.perf_counter() - started
    scores = np.nan_to_num(np.asarray(scores, dtype=np.float64), nan=-np.inf)
    scores = np.where(np.isneginf(scores), np.nanmin(scores[np.isfinite(scores)], initial=0.0) - 1.0, scores)
    if len(np.unique(y)) < 2:
        return {"aucroc": float("nan"), "aucpr": float("nan"), "seconds": seconds}
    return {
        "aucroc": float(roc_auc_score(y, scores)),
        "aucpr": float(average_precision_score(y, scores)),
        "seconds": seconds,
    }


def run_adbench(data: Path, detector: str | None = None, console: Console | None = None) -> dict[str, Any]:
    """Run one configuration on every ``.npz`` in ``data``; print a table beside the baselines and return the figures."""
    console = console if console is not None else Console(quiet=True)
    name = DEFAULT_CONFIGURATION if detector is None else detector
    make_detector(name)  # fail on an unknown name before any work
    data = Path(data)
    files = sorted(data.glob("*.npz"), key=lambda p: p.stem.lower())
    if not files:
        raise FileNotFoundError(f"no .npz files in {data}")
    datasets: dict[str, dict[str, float]] = {}
    for path in files:
        X, y = load_dataset(path)
        with console.status(f"{name}: {path.stem} ({X.shape[0]:,} x {X.shape[1]})…"):
            datasets[path.stem] = evaluate(make_detector(name), X, y)
        figures = datasets[path.stem]
        console.print(f"{path.stem}: AUCROC {figures['aucroc']:.3f}  AUCPR {figures['aucpr']:.3f}  {figures['seconds']:.1f}s")
    mean = {
        metric: float(np.nanmean([figures[metric] for figures in datasets.values()]))
        for metric in ("aucroc", "aucpr", "seconds")
    }
    baselines = {
        baseline: {
            "datasets": {ds: {"aucroc": table[ds][0], "aucpr": table[ds][1]} for ds in datasets if ds in table},
            "mean": _baseline_mean(baseline, table, datasets),
        }
        for baseline, table in BASELINES.items()
    }
    config = CONFIGURATIONS.get(name, {"kind": name, "params": {}})
    result = {
        "detector": name,
        "configuration": config,
        "datasets": datasets,
        "mean": {"aucroc": mean["aucroc"], "aucpr": mean["aucpr"]},
        "total_seconds": float(sum(figures["seconds"] for figures in datasets.values())),
        "baselines": baselines,
    }
    console.print(_table(result))
    return result


def _baseline_mean(baseline: str, table: dict[str, tuple[float, float]], datasets: dict[str, Any]) -> dict[str, float] | None:
    """The baseline's mean over the datasets that were run, when it has them all (else None)."""
    if not datasets or any(ds not in table for ds in datasets):
        return None
    if set(datasets) == set(table):
        aucroc, aucpr = BASELINE_MEANS[baseline]
        return {"aucroc": aucroc, "aucpr": aucpr}
    return {
        "aucroc": float(np.mean([table[ds][0] for ds in datasets])),
        "aucpr": float(np.mean([table[ds][1] for ds in datasets])),
    }


def _pair(aucroc: float, aucpr: float) -> str:
    return f"{aucroc:.3f} / {aucpr:.3f}"


def _table(result: dict[str, Any]) -> Table:
    table = Table(title=f"tocsin bench adbench: {result['detector']} (unsupervised, fit and score on all rows)")
    table.add_column("dataset")
    table.add_column(f"{result['detector']}\nAUCROC / AUCPR", justify="right")
    table.add_column("seconds", justify="right")
    for baseline in BASELINES:
        table.add_column(f"{baseline}\nAUCROC / AUCPR", justify="right")
    for ds, figures in result["datasets"].items():
        cells = [
            _pair(*BASELINES[baseline][ds]) if ds in BASELINES[baseline] else "—" for baseline in BASELINES
        ]
        table.add_row(ds, _pair(figures["aucroc"], figures["aucpr"]), f"{figures['seconds']:.1f}", *cells)
    mean_cells = []
    for baseline in BASELINES:
        mean = result["baselines"][baseline]["mean"]
        mean_cells.append("—" if mean is None else _pair(mean["aucroc"], mean["aucpr"]))
    table.add_row(
        "mean",
        _pair(result["mean"]["aucroc"], result["mean"]["aucpr"]),
        f"{result['total_seconds']:.1f} total",
        *mean_cells,
        style="bold",
    )
    return table
