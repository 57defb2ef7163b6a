"""``tocsin bench series``: many per-series models in one process, in readings/s and bytes per series, against River.

What is measured, in one process on the same pre-generated JSON lines:

1. **tocsin**: a spec built in code (:func:`series_spec`): hosts report ``cpu``
   once a minute (wide events, key ``host``, no id field), one ``kind: series``
   feature with a daily profile (:class:`~tocsin.features.series.SeriesModel`)
   and ``max_surprise`` on its ``cpu_surprise``, fitted once on the smallest
   warm-up the spec allows (100 events) and never refitted. Every reading of
   every series goes through ``Pipeline.process_raw`` in micro-batches of
   ``batch_size`` raw JSON lines — decode, admission, key interning, the
   series kernel, score, calibrate, threshold and explanations — and **all of
   it is timed**, the first sighting of each series and the detector's one
   fit on the first 100 readings included (those 100 are the only readings
   left unscored). Reported: readings/s over the whole stream, p50/p99 batch
   latency, the stage split (:class:`tocsin.bench.throughput._StageClock`).
2. **bytes per series**: the state one series holds in the pipeline: the
   series model's row in its per-series arrays
   (``SeriesModel.bytes_per_series``), plus the entity key interner's share
   (its hash table, hash, offset and code-point arrays' ``nbytes``, and the
   Python list of key strings it keeps, divided by the number of keys). The
   detector, calibration window and admission's id memory are fixed-size,
   not per series. What the series arrays have allocated (capacity doubles
   on growth) is reported beside it.
3. **River** the way its users write it: a dict of one
   ``river.anomaly.GaussianScorer`` per series (River's univariate anomaly
   model), and per reading ``json.loads``, a dict lookup, ``score_one`` then
   ``learn_one``. It runs on a sample of ``river_series`` whole series (all
   their readings, in the same event-time order) and is extrapolated to
   readings/s. ``grace_period`` is lowered from River's 100 to 10 (its
   default would return 0 without computing anything for the first 100
   readings, i.e. for the whole of a 100-reading stream). GaussianScorer
   keeps a running mean and variance, with no time-of-day profile: it does
   less per reading than tocsin's series model, so the comparison favours
   River. Its bytes per series are measured with :mod:`tracemalloc` (dict
   entry, key string, model), untimed.

Not timed: generating the lines (:func:`generate_lines`) and numba's JIT
compilation, which runs on a throwaway pipeline first. The input is held in
memory as a list of ``bytes`` (one per line); the garbage collector is told to
leave that list alone (``gc.freeze``) for both contenders, since no real
source holds ten million lines at once.
"""

from __future__ import annotations

import gc
import math
import os
import resource
import sys
import time
import tracemalloc
from collections.abc import Sequence
from typing import Any

import numpy as np
from rich.console import Console
from rich.table import Table

from tocsin.bench.throughput import _machine, _ms, _source_batch, _StageClock
from tocsin.engine.pipeline import Pipeline
from tocsin.features.featureset import ENTITY
from tocsin.features.series import SeriesModel
from tocsin.spec import PipelineSpec, parse_spec

SOURCE_NAME = "bench-series"
START = 1_767_225_600  # 2026-01-01T00:00:00Z
EVERY = 60
"""Seconds between two readings of a host."""
DAY = 86_400.0
SPIKE_SHARE = 0.001
"""Share of readings with a spike added (+30 to +60 cpu): something for the detector to flag and explain."""
RIVER_GRACE_PERIOD = 10
JIT_LINES = 5_000


def series_spec(warmup_events: int = 100) -> PipelineSpec:
    """The benchmark's spec: per-host ``cpu`` series with a daily profile, scored by ``max_surprise``."""
    return parse_spec({
        "name": "bench-series",
        "source": {"kind": "file", "path": "bench-series.jsonl", "format": "jsonl"},  # never read: lines are fed in
        "schema": {"id_field": None, "key_field": "host", "numeric": ["cpu"]},
        "features": [{"kind": "series", "field": "cpu", "season": "daily"}],
        "detector": {"kind": "max_surprise", "features": ["cpu_surprise"], "warmup_events": warmup_events,
                     "refit_every": None, "train_window": warmup_events},
    }, "tocsin.bench.series")  # fmt: skip


def host_names(series: int) -> list[bytes]:
    width = max(6, len(str(series - 1)))
    return [b"host-%0*d" % (width, i) for i in range(series)]


def generate_lines(series: int, readings: int, seed: int = 7, sample: int = 0) -> tuple[list[bytes], list[bytes]]:
    """``series`` hosts × ``readings`` readings as JSON lines in event-time order, and the lines of the first
    ``sample`` hosts (the same lines, in the same order).

    Host ``h`` reports at ``START + phase_h + r * 60`` (``phase_h`` in 0–59 s), so reading ``r`` of every
    host comes before reading ``r + 1`` of any. ``cpu`` is a per-host level (15–60) plus a daily wave
    (amplitude 3–20, peak at a per-host hour) plus normal noise (sd 0.5–4), with a spike in
    :data:`SPIKE_SHARE` of readings, clipped to 0–100 and given with 2 decimals.
    """
    if series < 1 or readings < 1:
        raise ValueError(f"series and readings must be >= 1, got {series} and {readings}")
    rng = np.random.default_rng(seed)
    phase = rng.integers(0, EVERY, series)
    level = rng.uniform(15.0, 60.0, series)
    amplitude = rng.uniform(3.0, 20.0, series)
    peak = rng.uniform(0.0, DAY, series)
    noise = rng.uniform(0.5, 4.0, series)
    order = np.argsort(phase, kind="stable")  # hosts in the order they report within each minute
    names = host_names(series)
    ordered_names = [names[h] for h in order.tolist()]
    in_sample = np.flatnonzero(order < sample)
    lines: list[bytes] = []
    sample_lines: list[bytes] = []
    line = b'{"host":"%s","ts":%d,"cpu":%.2f}'
    for r in range(readings):
        ts = START + r * EVERY + phase[order]
        cpu = level[order] + amplitude[order] * np.cos(2 * np.pi * (ts - peak[order]) / DAY)
        cpu += noise[order] * rng.standard_normal(series)
        spikes = rng.random(series) < SPIKE_SHARE
        cpu[spikes] += rng.uniform(30.0, 60.0, int(spikes.sum()))
        np.clip(cpu, 0.0, 100.0, out=cpu)
        block = [line % row for row in zip(ordered_names, ts.tolist(), cpu.tolist())]
        lines.extend(block)
        sample_lines.extend(block[i] for i in in_sample.tolist())
    return lines, sample_lines


def _compile_kernels(spec: PipelineSpec, lines: list[bytes]) -> float:
    """Every stage once on a throwaway pipeline (numba compiles or loads its kernels); seconds taken."""
    started = time.perf_counter()
    throwaway = Pipeline(spec)
    n = min(len(lines), JIT_LINES)
    for start in range(0, n, 1_000):
        throwaway.process_raw(_source_batch(lines, start, min(start + 1_000, n)), SOURCE_NAME)
    return time.perf_counter() - started


def state_bytes(pipeline: Pipeline) -> dict[str, Any]:
    """Bytes of pipeline state per series: the series model's row plus the entity key interner's share."""
    (model,) = [op for op in pipeline.features.operators if isinstance(op, SeriesModel)]
    interner = pipeline.features.interners[ENTITY]
    keys = len(interner)
    if keys == 0:
        raise ValueError("no series seen yet")
    arrays = sum(a.nbytes for a in (interner._table, interner._id_hash, interner._arena, interner._offsets))
    strings = sys.getsizeof(interner._values) + sum(map(sys.getsizeof, interner._values))
    allocated = sum(a.nbytes for a in (model._series, *model._day, *model._week))
    per_series = model.bytes_per_series + (arrays + strings) / keys
    return {
        "bytes_per_series": round(per_series, 1),
        "series_model": model.bytes_per_series,
        "key_interner_arrays": round(arrays / keys, 1),
        "key_strings": round(strings / keys, 1),
        "series_arrays_allocated": round(allocated / keys, 1),
        "series": keys,
        "how": "SeriesModel.bytes_per_series (its row in the per-series arrays) + (nbytes of the entity key "
               "interner's table, hash, offset and code-point arrays + sys.getsizeof of its list of key strings "
               "and of each string) / number of keys",
    }


def river_readings(lines: Sequence[bytes], key: str = "host", field: str = "cpu") -> tuple[float, float, int]:
    """River as its users write it: a dict of one GaussianScorer per series; per reading json.loads, score_one,
    learn_one. Returns wall seconds, CPU seconds and readings flagged (score > 0.999)."""
    import json

    from river import anomaly

    models: dict[str, anomaly.GaussianScorer] = {}
    flagged = 0
    cpu_started, started = time.process_time(), time.perf_counter()
    for line in lines:
        event = json.loads(line)
        model = models.get(event[key])
        if model is None:
            model = models[event[key]] = anomaly.GaussianScorer(grace_period=RIVER_GRACE_PERIOD)
        y = event[field]
        if model.score_one(None, y) > 0.999:
            flagged += 1
        model.learn_one(None, y)
    return time.perf_counter() - started, time.process_time() - cpu_started, flagged


def river_bytes_per_series(series: int = 1_000) -> float:
    """Bytes River's dict of GaussianScorers holds per series (after one reading each), with tracemalloc."""
    from river import anomaly

    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        models: dict[str, Any] = {}
        for i in range(series):
            model = models[f"host-{i:06d}"] = anomaly.GaussianScorer(grace_period=RIVER_GRACE_PERIOD)
            model.learn_one(None, 50.0)
        used = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    return used / series


def run_series_bench(
    series: int = 100_000,
    readings: int = 100,
    batch_size: int = 50_000,
    river_series: int = 2_000,
    console: Console | None = None,
    *,
    seed: int = 7,
) -> dict[str, Any]:
    """Run the benchmark and return its figures; prints progress and a table to ``console``."""
    console = console if console is not None else Console(quiet=True)
    if batch_size < 1 or river_series < 1:
        raise ValueError(f"batch_size and river_series must be >= 1, got {batch_size} and {river_series}")
    spec = series_spec()
    total = series * readings
    if total <= spec.detector.warmup_events:
        raise ValueError(f"{series:,} series × {readings:,} readings is not more than the detector warm-up "
                         f"({spec.detector.warmup_events}): nothing would be scored")
    river_series = min(river_series, series)

    with console.status(f"generating {series:,} series × {readings:,} readings as JSON lines (not timed)…"):
        started = time.perf_counter()
        lines, river_lines = generate_lines(series, readings, seed, sample=river_series)
        generate_s = time.perf_counter() - started
    console.print(f"generated {len(lines):,} JSON lines ({sum(map(len, lines)) / len(lines):.0f} bytes each) in {generate_s:.1f}s")

    with console.status("compiling numba kernels on a throwaway pipeline (not timed)…"):
        jit_s = _compile_kernels(spec, lines)

    # --- tocsin ------------------------------------------------------------------
    pipeline = Pipeline(spec)
    stages = _StageClock(pipeline)
    batch_seconds: list[float] = []
    scored_readings = anomalies = dead_letters = 0
    gc.collect()
    gc.freeze()  # the input list is not the pipeline's: keep the collector from walking it
    try:
        with console.status(f"tocsin: {total:,} readings in batches of {batch_size:,}…"):
            cpu_started, wall_started = time.process_time(), time.perf_counter()
            for start in range(0, total, batch_size):
                raw = _source_batch(lines, start, min(start + batch_size, total))
                t0 = time.perf_counter()
                scored = pipeline.process_raw(raw, SOURCE_NAME)
                batch_seconds.append(time.perf_counter() - t0)
                scored_readings += int(np.count_nonzero(scored.scored))
                anomalies += len(scored.anomaly_rows)
                dead_letters += len(scored.dead_letters)
            cpu_s, wall_s = time.process_time() - cpu_started, time.perf_counter() - wall_started
        stages.remove()
        batch_times = np.asarray(batch_seconds)
        seconds = float(batch_times.sum())
        readings_per_s = total / seconds
        readings_per_cpu_s = total / cpu_s
        memory = state_bytes(pipeline)
        console.print(f"tocsin: {total:,} readings in {seconds:.2f}s → {readings_per_s:,.0f} readings/s")

        # --- River -------------------------------------------------------------------
        with console.status(f"River: {river_series:,} series × {readings:,} readings, one by one…"):
            river_s, river_cpu_s, river_flagged = river_readings(river_lines)
    finally:
        gc.unfreeze()
    del lines
    river_bytes = river_bytes_per_series(min(series, 1_000))
    river_per_s = len(river_lines) / river_s
    river_per_cpu_s = len(river_lines) / river_cpu_s if river_cpu_s > 0 else float("nan")
    console.print(f"River: {len(river_lines):,} readings in {river_s:.2f}s → {river_per_s:,.0f} readings/s")

    stage_seconds = dict(stages.seconds)
    stage_seconds["other"] = max(0.0, seconds - sum(stage_seconds.values()))
    result: dict[str, Any] = {
        "benchmark": "series",
        "spec": spec.name,
        "features": [f.model_dump(mode="json", exclude_none=True) for f in spec.features],
        "detector": {**spec.detector.model_dump(mode="json")},
        "series": series,
        "readings": readings,
        "batch": batch_size,
        "seed": seed,
        "total_readings": total,
        "scored_readings": scored_readings,
        "batches": len(batch_times),
        "seconds": round(seconds, 6),
        "readings_per_s": round(readings_per_s, 1),
        "us_per_reading": round(1e6 / readings_per_s, 4),
        "readings_per_cpu_s": round(readings_per_cpu_s, 1),
        **{f"{name}_batch_ms": round(ms, 3) for name, ms in _latencies(batch_times).items()},
        "anomalies": anomalies,
        "dead_letters": dead_letters,
        "bytes_per_series": memory["bytes_per_series"],
        "memory": memory,
        "stages": {
            stage: {"seconds": round(s, 6), "share": round(s / seconds, 4), "us_per_reading": round(s / total * 1e6, 4)}
            for stage, s in stage_seconds.items()
        },
        "cpu_cores_busy": round(cpu_s / wall_s, 2) if wall_s > 0 else None,
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "untimed_seconds": {"generate": round(generate_s, 2), "jit_compile": round(jit_s, 2)},
        "baselines": {
            "river_per_series_readings_per_s": round(river_per_s, 1),
            "river_per_series_readings_per_cpu_s": round(river_per_cpu_s, 1),
            "river_model": f"river.anomaly.GaussianScorer(grace_period={RIVER_GRACE_PERIOD}), one per series in a dict",
            "river_version": _machine()["versions"]["river"],
            "description": "per reading: json.loads, dict lookup (a new model for a new series), score_one then learn_one",
            "sample_series": river_series,
            "sample_readings": len(river_lines),
            "seconds": round(river_s, 4),
            "flagged": river_flagged,
            "bytes_per_series": round(river_bytes, 1),
        },
        "ratio_to_river": round(readings_per_s / river_per_s, 2),
        "ratio_to_river_cpu": round(readings_per_cpu_s / river_per_cpu_s, 2) if math.isfinite(river_per_cpu_s) else None,
        "machine": _machine(),
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "notes": [
            ("single process; the JSON lines are pre-generated in memory and generation is not timed; numba kernels are "
             "compiled on a throwaway pipeline before timing starts"),
            (f"tocsin figures are Pipeline.process_raw over all {total:,} readings in batches of {batch_size:,} raw lines "
             "(decode, admission, key interning, series model, score, calibrate, threshold, explanations), the first "
             f"sighting of every series and the detector's one fit on the first {spec.detector.warmup_events} readings "
             "included (those are the only unscored readings)"),
            f"bytes_per_series: {memory['how']}",
            (f"River runs on a sample of {river_series:,} whole series ({len(river_lines):,} readings, the same lines) "
             "and is extrapolated to readings/s; GaussianScorer has no seasonal profile, so it does less per reading "
             "than tocsin's series model"),
            (f"the measured loop kept {cpu_s / wall_s:.2f} cores busy (process CPU time / wall time) on a "
             f"{os.cpu_count()}-CPU machine; well below 1 means other processes took the CPU"),
            f"load average at the end of the run: {', '.join(f'{x:.2f}' for x in os.getloadavg())}",
        ],
    }
    console.print(_table(result))
    return result


def _latencies(batch_seconds: np.ndarray) -> dict[str, float]:
    """p50, p99 and max of the batch latencies, in ms."""
    return {"p50": _ms(batch_seconds, 0.5), "p99": _ms(batch_seconds, 0.99), "max": float(batch_seconds.max()) * 1e3}


def _table(result: dict[str, Any]) -> Table:
    b, m = result["baselines"], result["memory"]
    table = Table(title=f"tocsin bench series: {result['series']:,} series × {result['readings']:,} readings, "
                        f"batches of {result['batch']:,} lines, one process")
    for column in ("", "readings/s", "per CPU-s", "p50 ms", "p99 ms", "B/series", "tocsin ×"):
        table.add_column(column, justify="left" if not column else "right")
    table.add_row(
        "tocsin", f"{result['readings_per_s']:,.0f}", f"{result['readings_per_cpu_s']:,.0f}",
        f"{result['p50_batch_ms']:.1f}", f"{result['p99_batch_ms']:.1f}", f"{result['bytes_per_series']:,.0f}", "1",
    )
    table.add_row(
        "River*", f"{b['river_per_series_readings_per_s']:,.0f}",
        f"{b['river_per_series_readings_per_cpu_s']:,.0f}", "", "", f"{b['bytes_per_series']:,.0f}",
        f"{result['ratio_to_river']:,.1f}",
    )
    stages = ", ".join(f"{k} {v['share']:.0%}" for k, v in result["stages"].items())
    table.caption = (
        f"Latency per batch. Bytes per series: model {m['series_model']} + key interner arrays "
        f"{m['key_interner_arrays']:.0f} + key strings {m['key_strings']:.0f} (series arrays allocated: "
        f"{m['series_arrays_allocated']:.0f}). * River GaussianScorer: a dict of one model per series, json.loads + score_one + learn_one per "
        f"reading, on {b['sample_series']:,} series ({b['sample_readings']:,} readings), extrapolated. "
        f"Not timed: generation, JIT. tocsin stages: {stages}. {result['cpu_cores_busy']} cores busy of "
        f"{result['machine']['cpu_count']}."
    )
    return table
