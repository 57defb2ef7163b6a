"""``tocsin bench detectors``: fit time, batch scoring throughput and single-row latency of every detector.

Every kind in :data:`tocsin.detectors.DETECTORS` is built with the parameters
in :data:`BENCH_PARAMS` (its defaults otherwise), fitted on a synthetic table of
:data:`N_FEATURES` columns (:func:`synthetic_table`: correlated normal and
skewed columns, 1% planted outliers), then timed scoring ``rows`` rows in
batches of :data:`BATCH_SIZE` and scoring single rows one call at a time
(p50/p99 latency); detectors with ``partial_fit`` are also timed scoring then
learning batch by batch, as a stream runs them. The first calls of each kind
are untimed warm-up (numba compilation, imports). Time-series detectors whose
``fit`` takes ``timestamps=`` get regular synthetic timestamps (one row a
minute, scoring continuing after the fitting period); kinds listed in
:data:`NEEDS_SPECIAL_INPUT` are skipped with their note; any detector that
fails on the standard table is recorded with its error instead of stopping
the benchmark. Figures depend on the machine and on what else runs on it.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
from rich.console import Console
from rich.table import Table

N_FEATURES = 8
BATCH_SIZE = 5_000
#: Rows the detectors are fitted on.
FIT_ROWS = 20_000
#: Single-row calls timed per detector for latency percentiles.
LATENCY_CALLS = 500
#: Rows streamed through score-then-``partial_fit`` for online detectors.
LEARN_ROWS = 50_000
SEED = 0

#: Parameters for kinds that need some (or are too slow with their defaults for a benchmark).
BENCH_PARAMS: dict[str, dict[str, Any]] = {
    "rules": {
        "rules": ["f0 > 3 and f1 > 3", "abs(f2) > 4 or f7 > 10"],
        "features": [f"f{i}" for i in range(N_FEATURES)],
    },
    "autoencoder": {"epochs": 5},
    "lstm_forecaster": {"epochs": 1, "lookback": 16},
}

#: Kinds that need input the benchmark cannot synthesise: skipped, with the reason.
#: (Detectors whose ``fit`` takes ``timestamps=`` are run with :data:`STEP_SECONDS`-spaced timestamps.)
NEEDS_SPECIAL_INPUT: dict[str, str] = {}
#: Spacing of the synthetic timestamps given to time-series detectors (epoch seconds).
STEP_SECONDS = 60.0


def synthetic_table(rows: int, n_features: int = N_FEATURES, seed: int = SEED) -> np.ndarray:
    """A rows x n_features table: half correlated normal columns, half skewed (lognormal, counts), 1% outliers."""
    rng = np.random.default_rng(seed)
    base = rng.normal(size=(rows, 1))
    X = np.empty((rows, n_features))
    for j in range(n_features):
        if j % 2 == 0:
            X[:, j] = 0.7 * base[:, 0] + 0.7 * rng.normal(size=rows)
        elif j % 4 == 1:
            X[:, j] = rng.lognormal(mean=0.0, sigma=0.8, size=rows)
        else:
            X[:, j] = rng.poisson(3.0, size=rows)
    outliers = rng.choice(rows, size=max(1, rows // 100), replace=False)
    X[outliers] += rng.normal(scale=6.0, size=(len(outliers), n_features))
    return X


def _takes_timestamps(cls: type) -> bool:
    import inspect

    return "timestamps" in inspect.signature(cls.fit).parameters


def _bench_one(kind: str, cls: type, rows: int, fit_X: np.ndarray, score_X: np.ndarray) -> dict[str, Any]:
    import inspect

    params = dict(BENCH_PARAMS.get(kind, {}))
    if "random_state" in inspect.signature(cls.__init__).parameters:
        params.setdefault("random_state", SEED)
    timed = _takes_timestamps(cls)
    # Scoring continues the fitting period in time.
    fit_times = np.arange(fit_X.shape[0]) * STEP_SECONDS
    score_times = (fit_X.shape[0] + np.arange(score_X.shape[0])) * STEP_SECONDS

    def at(times: np.ndarray, start: int, stop: int) -> dict[str, Any]:
        return {"timestamps": times[start:stop]} if timed else {}

    # Warm-up on a throwaway instance: compilation and imports are not the detector's cost.
    warm = cls(**params)
    warm.fit(fit_X[:2_000], **at(fit_times, 0, 2_000))
    warm.score_samples(score_X[:BATCH_SIZE], **at(score_times, 0, BATCH_SIZE))
    warm.score_samples(score_X[:1], **at(score_times, 0, 1))

    detector = cls(**params)
    started = time.perf_counter()
    detector.fit(fit_X, **at(fit_times, 0, fit_X.shape[0]))
    fit_seconds = time.perf_counter() - started

    started = time.perf_counter()
    for start in range(0, rows, BATCH_SIZE):
        stop = min(start + BATCH_SIZE, rows)
        detector.score_samples(score_X[start:stop], **at(score_times, start, stop))
    score_seconds = time.perf_counter() - started

    learn_rows_per_s, learn_note = None, ""
    if hasattr(detector, "partial_fit"):
        # Online learners: score-then-learn, as a stream runs them, on up to LEARN_ROWS rows
        # (a fresh copy of the fitted state is not needed: the rows are new to it either way).
        learn_rows = min(rows, LEARN_ROWS)
        try:
            started = time.perf_counter()
            for start in range(0, learn_rows, BATCH_SIZE):
                stop = min(start + BATCH_SIZE, learn_rows)
                detector.score_samples(score_X[start:stop], **at(score_times, start, stop))
                detector.partial_fit(score_X[start:stop], **at(score_times, start, stop))
            learn_rows_per_s = learn_rows / (time.perf_counter() - started)
        except (TypeError, NotImplementedError) as error:  # e.g. an ensemble whose members cannot learn online
            learn_note = "no online learning: " + str(error).split(";")[0]

    calls = min(LATENCY_CALLS, rows)
    latencies = np.empty(calls)
    for i in range(calls):
        row, kwargs = score_X[i : i + 1], at(score_times, i, i + 1)
        tick = time.perf_counter()
        detector.score_samples(row, **kwargs)
        latencies[i] = time.perf_counter() - tick
    notes = [note for note in ("synthetic 1-minute timestamps" if timed else "", learn_note) if note]
    return {
        "status": "ok",
        "note": "; ".join(notes),
        "params": params,
        "fit_rows": int(fit_X.shape[0]),
        "fit_seconds": fit_seconds,
        "scored_rows": int(rows),
        "rows_per_s": rows / score_seconds if score_seconds > 0 else float("inf"),
        "score_and_learn_rows_per_s": learn_rows_per_s,
        "latency_p50_us": float(np.percentile(latencies, 50) * 1e6),
        "latency_p99_us": float(np.percentile(latencies, 99) * 1e6),
    }


def run_detector_bench(rows: int = 200_000, console: Console | None = None) -> dict[str, Any]:
    """Benchmark every registered detector; print a table and return figures keyed by detector kind."""
    from tocsin.detectors import DETECTORS, UNAVAILABLE

    console = console if console is not None else Console(quiet=True)
    if rows < 1:
        raise ValueError(f"rows must be >= 1, got {rows}")
    fit_X = synthetic_table(min(FIT_ROWS, max(rows, 2_000)), seed=SEED)
    score_X = synthetic_table(rows, seed=SEED + 1)
    results: dict[str, Any] = {}
    for kind in sorted(DETECTORS):
        if kind in NEEDS_SPECIAL_INPUT:
            results[kind] = {"status": "skipped", "note": NEEDS_SPECIAL_INPUT[kind]}
            continue
        with console.status(f"{kind}: fit on {fit_X.shape[0]:,} rows, score {rows:,}…"):
            try:
                results[kind] = _bench_one(kind, DETECTORS[kind], rows, fit_X, score_X)
            except Exception as error:  # a detector that cannot take the standard table is reported, not fatal
                results[kind] = {"status": "error", "note": f"{type(error).__name__}: {error}"}
    for module, reason in sorted(UNAVAILABLE.items()):
        results.setdefault(module, {"status": "unavailable", "note": reason})
    console.print(_table(results, rows))
    return results


def _table(results: dict[str, Any], rows: int) -> Table:
    table = Table(
        title=f"tocsin bench detectors: fit on {FIT_ROWS:,} x {N_FEATURES}, score {rows:,} rows in batches of {BATCH_SIZE:,}"
    )
    for column in ("detector", "fit s", "rows/s (batch)", "score+learn rows/s", "1-row p50 µs", "1-row p99 µs", "note"):
        table.add_column(column, justify="left" if column in ("detector", "note") else "right")
    for kind, figures in results.items():
        if figures["status"] != "ok":
            table.add_row(kind, "—", "—", "—", "—", "—", f"{figures['status']}: {figures['note']}")
            continue
        table.add_row(
            kind,
            f"{figures['fit_seconds']:.2f}",
            f"{figures['rows_per_s']:,.0f}",
            "—" if figures["score_and_learn_rows_per_s"] is None else f"{figures['score_and_learn_rows_per_s']:,.0f}",
            f"{figures['latency_p50_us']:,.0f}",
            f"{figures['latency_p99_us']:,.0f}",
            figures.get("note", ""),
        )
    return table
