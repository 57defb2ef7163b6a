"""Where each microsecond of the reference pipeline goes: a per-stage, per-event profile and the ceilings.

Three measurements, on the same simulated JSON lines as ``tocsin bench throughput``
(:func:`tocsin.bench.throughput.generate_lines`, the reference spec), none of them
changing the engine:

1. :func:`profile_pipeline` — the runner's step, batch by batch, through the driver
   core (pipeline, alert grouping, the in-memory SQLite store sink). Stage methods
   are wrapped on the *instances* (as :class:`tocsin.bench.throughput._StageClock`
   does) and each stage gets its **exclusive** time: a wrapped call's time minus
   the wrapped calls inside it. ``pipeline (rest)`` and ``core (rest)`` are what
   ``Pipeline.process_raw`` and ``DriverCore.process`` spend outside every
   wrapped stage (segment bookkeeping, result arrays, pending copies; locks,
   positions, stats and metrics). A refit's own scoring and calibration count as
   ``refit``. Shares are taken against the loop's wall time measured apart,
   outside every wrapper, so their sum being ~1 checks that nothing was missed or
   counted twice (the rest is the loop's own slicing of the input).
   A second pass over a few batches counts the Python-level calls (``call``
   events: Python functions) and builtin calls (``c_call``) made inside each
   stage with :func:`sys.setprofile` — the "Python calls per batch" figure.
2. :func:`isolated_stages` — each stage run alone over the whole stream
   (stage-major instead of batch-major), on inputs recorded from a pipelined
   pass: decode, admission, key interning plus feature kernels, scoring
   (one thread and the engine's two), calibration, explanation of the flagged
   rows, alert grouping, the store sink. The difference from (1) is what the
   stages cost each other (cold caches, the GIL hand-over of the scoring pool).
3. :func:`ceilings` and :func:`gil_scaling` — what the machine allows: msgspec
   typed decoding of the same lines alone, a numba per-key Welford update, the
   compiled Isolation Forest's rows/s on one and on every core, numpy memory
   bandwidth (a large copy), and, per stage, the speed-up of running two
   independent copies in two threads (2.0: the stage releases the GIL; 1.0:
   it holds it).

Not timed anywhere: generating the events, numba compilation (a throwaway
pipeline runs first, as in the throughput benchmark), the detector warm-up.

:func:`cprofile_pipeline` adds the classic view: cProfile over the runner's step, the top functions by
own time and the function calls per batch.

Run: ``python -m tocsin.bench.profile_stages --events 1000000 --batch-sizes 1000,5000,10000 --json out.json``;
``--cprofile 5000`` runs only the cProfile view at that batch size.
"""

from __future__ import annotations

import argparse
import copy
import functools
import gc
import json
import os
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

import msgspec
import numpy as np
from numba import njit

from tocsin.bench.throughput import (
    SOURCE_NAME,
    _compile_kernels,
    _machine,
    _source_batch,
    generate_lines,
    reference_spec,
)
from tocsin.decode import Decoder
from tocsin.engine.outputs import AlertGrouping
from tocsin.engine.pipeline import Pipeline, ScoredBatch
from tocsin.spec import PipelineSpec

PIPELINE_REST = "pipeline (rest)"
CORE_REST = "core (rest)"
#: top-level stages, in hot-path order (feature operators are reported apart under ``features_detail``)
STAGES = ("decode", "admission", "keys", "features", "score", "calibrate", "threshold", "explain", "training window",
          "drift", "refit", PIPELINE_REST, "alert grouping", "sinks", CORE_REST)


class StageProfiler:
    """Exclusive wall time, call count and (in counting mode) Python/builtin calls per stage, by wrapping
    methods on instances. Nested wrapped calls are subtracted from their caller; inside ``refit`` no
    other stage is opened (the refit's scoring is the refit's)."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self.cpu_seconds: dict[str, float] = {}  # CPU time of the calling thread (helper threads not included)
        self.calls: dict[str, int] = {}
        self.py_calls: dict[str, int] = {}
        self.c_calls: dict[str, int] = {}
        self._stack: list[list[Any]] = []  # [stage, started, child seconds, cpu started, child cpu seconds]
        self._restore: list[tuple[Any, str]] = []
        self.on_refit: Callable[[], None] | None = None

    def wrap(self, owner: Any, name: str, stage: str) -> None:
        method = getattr(owner, name)
        if getattr(method, "__tocsin_profiled__", False):
            return
        profiler = self

        @functools.wraps(method)
        def timed(*args: Any, **kwargs: Any) -> Any:
            stack = profiler._stack
            if stack and stack[-1][0] == "refit" and stage != "refit":
                return method(*args, **kwargs)
            frame = [stage, time.perf_counter(), 0.0, time.thread_time(), 0.0]
            stack.append(frame)
            try:
                return method(*args, **kwargs)
            finally:
                elapsed = time.perf_counter() - frame[1]
                cpu = time.thread_time() - frame[3]
                stack.pop()
                profiler.seconds[stage] = profiler.seconds.get(stage, 0.0) + elapsed - frame[2]
                profiler.cpu_seconds[stage] = profiler.cpu_seconds.get(stage, 0.0) + cpu - frame[4]
                profiler.calls[stage] = profiler.calls.get(stage, 0) + 1
                if stack:
                    stack[-1][2] += elapsed
                    stack[-1][4] += cpu
                if stage == "refit" and profiler.on_refit is not None:
                    profiler.on_refit()

        timed.__tocsin_profiled__ = True  # type: ignore[attr-defined]
        setattr(owner, name, timed)
        self._restore.append((owner, name))

    def remove(self) -> None:
        for owner, name in reversed(self._restore):
            if name in vars(owner):
                delattr(owner, name)
        self._restore = []

    # --- counting Python calls ----------------------------------------------------

    def _hook(self, frame: Any, event: str, arg: Any) -> None:
        if event == "call" or event == "c_call":
            stage = self._stack[-1][0] if self._stack else "(loop)"
            counts = self.py_calls if event == "call" else self.c_calls
            counts[stage] = counts.get(stage, 0) + 1

    def counting(self) -> _Counting:
        return _Counting(self)


class _Counting:
    def __init__(self, profiler: StageProfiler) -> None:
        self.profiler = profiler

    def __enter__(self) -> StageProfiler:
        sys.setprofile(self.profiler._hook)
        return self.profiler

    def __exit__(self, *exc: object) -> None:
        sys.setprofile(None)


def instrument(profiler: StageProfiler, core: Any, stream: Any) -> None:
    """Wrap the stages of one driver-core stream (its pipeline, alert grouping and the core's sinks)."""
    pipeline: Pipeline = stream.pipeline
    profiler.wrap(core, "process", CORE_REST)
    profiler.wrap(pipeline, "process_raw", PIPELINE_REST)
    profiler.wrap(pipeline, "decode", "decode")
    profiler.wrap(pipeline.admission, "admit", "admission")
    profiler.wrap(pipeline.features, "transform_update", "features")
    profiler.wrap(pipeline.features, "batch_keys", "keys")
    for i, op in enumerate(pipeline.features.operators):
        profiler.wrap(op, "transform_update", f"features.{i}:{_operator_label(op)}")
    profiler.wrap(pipeline.detector, "score_samples", "score")
    profiler.wrap(pipeline.threshold, "decide", "threshold")
    profiler.wrap(pipeline, "_explain", "explain")
    profiler.wrap(pipeline.training, "extend", "training window")
    profiler.wrap(pipeline.drift, "observe", "drift")
    profiler.wrap(pipeline, "fit", "refit")
    profiler.wrap(stream.alerts, "prepare", "alert grouping")
    for sink in core.sinks:
        profiler.wrap(sink, "send", "sinks")
        profiler.wrap(sink, "flush", "sinks")

    def wrap_calibrator() -> None:  # fit() replaces the calibrator
        for name in ("transform", "update"):
            profiler.wrap(pipeline.calibrator, name, "calibrate")

    wrap_calibrator()
    profiler.on_refit = wrap_calibrator


def _operator_label(op: Any) -> str:
    kind = type(op).__name__
    detail = [str(v) for v in (getattr(op, "field", None), getattr(op, "by", None)) if v not in (None, "entity")]
    return f"{kind}({', '.join(detail)})" if detail else kind


def _warm_core(spec: PipelineSpec, lines: list[bytes], batch_size: int) -> tuple[Any, Any]:
    from tocsin.engine.core import DriverCore
    from tocsin.store import Store

    pipeline = Pipeline(spec)
    warmup = spec.detector.warmup_events
    for start in range(0, warmup, batch_size):
        pipeline.process_raw(_source_batch(lines, start, min(start + batch_size, warmup)), SOURCE_NAME)
    core = DriverCore(spec, driver="runner", store=Store("sqlite:///:memory:"), dispatch=False)
    stream = core.open_stream(SOURCE_NAME, SOURCE_NAME, pipeline=pipeline, resume=False)
    return core, stream


def _close(core: Any) -> None:
    core.close()
    core.store.close()


def profile_pipeline(spec: PipelineSpec, lines: list[bytes], batch_size: int, count_batches: int = 20) -> dict[str, Any]:
    """Per-stage exclusive time of the runner's step over ``lines`` after the warm-up (see the module
    docstring), and the Python calls per batch of each stage over ``count_batches`` further batches."""
    warmup = spec.detector.warmup_events
    core, stream = _warm_core(spec, lines, batch_size)
    profiler = StageProfiler()
    instrument(profiler, core, stream)
    measured = batches = 0
    gc.collect()
    cpu0, wall0 = time.process_time(), time.perf_counter()
    for start in range(warmup, len(lines), batch_size):
        raw = _source_batch(lines, start, min(start + batch_size, len(lines)))
        core.process([(stream, raw)], path="stream")
        measured += len(raw)
        batches += 1
    wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    profiler.remove()
    _close(core)

    stage_seconds = {stage: profiler.seconds.get(stage, 0.0) for stage in STAGES}
    detail = {k: v for k, v in profiler.seconds.items() if k.startswith("features.")}
    stage_seconds["features"] += sum(detail.values())  # the operators' kernels are part of "features"
    stage_cpu = {stage: profiler.cpu_seconds.get(stage, 0.0) for stage in STAGES}
    stage_cpu["features"] += sum(v for k, v in profiler.cpu_seconds.items() if k.startswith("features."))
    total = sum(stage_seconds.values())
    stages = {
        stage: {"seconds": round(s, 5), "share": round(s / wall, 4), "us_per_event": round(s / measured * 1e6, 4),
                "thread_cpu_us_per_event": round(stage_cpu[stage] / measured * 1e6, 4),
                "calls_per_batch": round(profiler.calls.get(stage, 0) / batches, 2)}
        for stage, s in stage_seconds.items()
    }
    features_detail = {
        name: {"seconds": round(s, 5), "us_per_event": round(s / measured * 1e6, 4)}
        for name, s in sorted(detail.items(), key=lambda item: -item[1])
    }
    features_detail["features (own: finiteness check, column copies)"] = {
        "seconds": round(profiler.seconds.get("features", 0.0), 5),
        "us_per_event": round(profiler.seconds.get("features", 0.0) / measured * 1e6, 4),
    }

    # --- Python calls per batch, on a fresh warm core (the hook slows everything: not timed) -------------
    counted = _count_calls(spec, lines, batch_size, count_batches)
    return {
        "batch_size": batch_size,
        "measured_events": measured,
        "batches": batches,
        "loop_wall_s": round(wall, 4),
        "loop_cpu_s": round(cpu, 4),
        "cpu_cores_busy": round(cpu / wall, 3),
        "events_per_s": round(measured / wall, 1),
        "us_per_event": round(wall / measured * 1e6, 4),
        "stage_seconds_total": round(total, 4),
        "share_sum": round(total / wall, 4),
        "thread_cpu_note": "thread_cpu_us_per_event: CPU time of the calling thread in the stage; it does not grow when "
                           "another process takes the CPU (wall time does), and leaves out the scoring pool's helper thread",
        "stages": stages,
        "features_detail": features_detail,
        "python_calls": counted,
    }


def _count_calls(spec: PipelineSpec, lines: list[bytes], batch_size: int, count_batches: int) -> dict[str, Any]:
    warmup = spec.detector.warmup_events
    core, stream = _warm_core(spec, lines, batch_size)
    profiler = StageProfiler()
    instrument(profiler, core, stream)
    starts = list(range(warmup, len(lines), batch_size))[:count_batches]
    with profiler.counting():
        for start in starts:
            core.process([(stream, _source_batch(lines, start, min(start + batch_size, len(lines))))], path="stream")
    profiler.remove()
    _close(core)
    n = max(1, len(starts))
    stage_names = [s for s in STAGES] + sorted(k for k in {*profiler.py_calls, *profiler.c_calls} if k not in STAGES)
    per_stage = {
        stage: {"python_calls_per_batch": round(profiler.py_calls.get(stage, 0) / n, 1),
                "builtin_calls_per_batch": round(profiler.c_calls.get(stage, 0) / n, 1)}
        for stage in stage_names if profiler.py_calls.get(stage) or profiler.c_calls.get(stage)
    }
    return {
        "batches": len(starts),
        "python_calls_per_batch": round(sum(profiler.py_calls.values()) / n, 1),
        "builtin_calls_per_batch": round(sum(profiler.c_calls.values()) / n, 1),
        "per_stage": per_stage,
        "note": "sys.setprofile 'call' (Python functions, the profiler's wrappers included: ~1 per stage call) and "
                "'c_call' (builtins) events; numba dispatchers and numpy ufuncs called as objects are not counted",
    }


def cprofile_pipeline(spec: PipelineSpec, lines: list[bytes], batch_size: int, top: int = 25) -> dict[str, Any]:
    """cProfile of the runner's step (no stage wrappers) over ``lines`` after the warm-up: the ``top``
    functions by own time, with calls and seconds per batch (cProfile's overhead inflates Python-heavy
    parts, so read shares, not absolute times)."""
    import cProfile
    import pstats

    warmup = spec.detector.warmup_events
    core, stream = _warm_core(spec, lines, batch_size)
    starts = list(range(warmup, len(lines), batch_size))
    profile = cProfile.Profile()
    profile.enable()
    for start in starts:
        core.process([(stream, _source_batch(lines, start, min(start + batch_size, len(lines))))], path="stream")
    profile.disable()
    _close(core)
    stats = pstats.Stats(profile)
    total = stats.total_tt
    rows = []
    for (filename, line, name), (_cc, ncalls, tottime, cumtime, _callers) in stats.stats.items():
        rows.append({"function": f"{os.path.relpath(filename) if filename.startswith('/') else filename}:{line}({name})",
                     "calls_per_batch": round(ncalls / len(starts), 1), "own_ms_per_batch": round(tottime / len(starts) * 1e3, 3),
                     "own_share": round(tottime / total, 4), "cum_ms_per_batch": round(cumtime / len(starts) * 1e3, 3)})
    rows.sort(key=lambda r: -r["own_share"])
    return {"batch_size": batch_size, "batches": len(starts), "total_s_under_profiler": round(total, 3),
            "function_calls_per_batch": round(stats.total_calls / len(starts), 1), "top": rows[:top]}


# --- each stage alone ------------------------------------------------------------------------------


def _timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


def isolated_stages(spec: PipelineSpec, lines: list[bytes], batch_size: int) -> dict[str, Any]:
    """Each stage alone over the measured part of ``lines`` (stage-major), in µs/event."""
    from tocsin.detectors._iforest_kernels import path_length_sums
    from tocsin.detectors.isolation_forest import _as_float32_rows
    from tocsin.engine.core import DriverCore
    from tocsin.sinks.base import ProcessedBatch
    from tocsin.store import Store

    warmup = spec.detector.warmup_events
    # a warm pipeline: its detector, calibrator and threshold at the start of the measured part
    pipeline = Pipeline(spec)
    for start in range(0, warmup, batch_size):
        pipeline.process_raw(_source_batch(lines, start, min(start + batch_size, warmup)), SOURCE_NAME)
    raws = [_source_batch(lines, s, min(s + batch_size, len(lines))) for s in range(warmup, len(lines), batch_size)]
    measured = sum(len(r) for r in raws)
    out: dict[str, float] = {}

    decoder = Decoder(spec.event_schema, source=SOURCE_NAME)
    gc.collect()
    seconds, decoded = _timed(lambda: [decoder.decode_lines(r.lines, r.positions)[0] for r in raws])
    out["decode"] = seconds

    admission = copy.deepcopy(pipeline.admission)
    seconds, _ = _timed(lambda: [admission.admit(events) for events in decoded])
    out["admission"] = seconds

    features = copy.deepcopy(pipeline.features)
    seconds, _ = _timed(lambda: [features.batch_keys(events) for events in decoded])
    out["keys"] = seconds  # interning only (new keys inserted): re-interned below, then found
    features = copy.deepcopy(pipeline.features)
    seconds, frames = _timed(lambda: [features.transform_update(events) for events in decoded])
    out["features (keys + kernels)"] = seconds
    columns = pipeline._columns
    Xs = [np.ascontiguousarray(f.X[:, columns]) for f in frames]

    detector = pipeline.detector
    seconds, raw_scores = _timed(lambda: [detector.score_samples(X) for X in Xs])
    out["score (whole batch, 2 threads)"] = seconds
    step = spec.calibration.update_every
    seconds, _ = _timed(lambda: [detector.score_samples(np.ascontiguousarray(X[i:i + step])) for X in Xs for i in range(0, len(X), step)])
    out[f"score (segments of {step}, 2 threads, as the pipeline)"] = seconds
    X32 = [_as_float32_rows(X, X.shape[1]) for X in Xs]
    args = (detector.tree_offset_, detector.tree_depth_, detector.node_feature_, detector.node_threshold_,
            detector.node_left_, detector.node_nan_right_, detector.node_path_length_)
    seconds, _ = _timed(lambda: [path_length_sums(X, *args, np.empty(len(X))) for X in X32])
    out["score (whole batch, 1 thread kernel)"] = seconds

    calibrator = copy.deepcopy(pipeline.calibrator)

    split = {"transform": 0.0, "update": 0.0}

    def calibrate() -> list[np.ndarray]:
        scores = []
        for r in raw_scores:
            parts = []
            for i in range(0, len(r), step):
                t0 = time.perf_counter()
                parts.append(calibrator.transform(r[i:i + step]))
                t1 = time.perf_counter()
                calibrator.update(r[i:i + step])
                split["transform"] += t1 - t0
                split["update"] += time.perf_counter() - t1
            scores.append(np.concatenate(parts))
        return scores

    seconds, calibrated = _timed(calibrate)
    out[f"calibrate (transform + update per {step})"] = seconds
    out[f"  of which transform (searchsorted over {calibrator.window:,})"] = split["transform"]
    out[f"  of which update (sorted merge of {calibrator.window:,})"] = split["update"]
    drift = copy.deepcopy(pipeline.drift)
    seconds, _ = _timed(lambda: [drift.observe(X[i:i + step], r[i:i + step]) for X, r in zip(Xs, raw_scores)
                                 for i in range(0, len(X), step)])
    out[f"drift (observe per {step})"] = seconds

    threshold = pipeline.threshold.current
    flagged = [np.flatnonzero(c >= threshold) for c in calibrated]
    n_flagged = int(sum(len(f) for f in flagged))
    seconds, explanations = _timed(lambda: [pipeline._explain(X, frame, rows) if len(rows) else {}
                                            for X, frame, rows in zip(Xs, frames, flagged)])
    out["explain (flagged rows)"] = seconds

    scored_batches = []
    for events, frame, r, c, rows, expl in zip(decoded, frames, raw_scores, calibrated, flagged, explanations):
        n = len(events)
        is_anomaly = np.zeros(n, dtype=bool)
        is_anomaly[rows] = True
        severity = np.full(n, -1, dtype=np.int8)
        severity[rows] = 0
        scored_batches.append(ScoredBatch(events=events, features=frame, raw_score=r, score=c, is_anomaly=is_anomaly,
                                          severity=severity, explanations=expl, scored=np.ones(n, dtype=bool)))
    grouping = AlertGrouping(spec)
    watermarks = [float(np.max(e.times)) for e in decoded]
    seconds, outputs = _timed(lambda: [grouping.prepare(s, w) for s, w in zip(scored_batches, watermarks)])
    out["alert grouping"] = seconds

    core = DriverCore(spec, driver="runner", store=Store("sqlite:///:memory:"), dispatch=False)
    stream = core.open_stream(SOURCE_NAME, SOURCE_NAME, pipeline=pipeline, resume=False)

    def sinks() -> None:
        for raw, scored, outs in zip(raws, scored_batches, outputs):
            item = ProcessedBatch(stream, raw, scored, outs, None)
            for sink in core.sinks:
                sink.send(item)
            for sink in core.sinks:
                sink.flush()

    seconds, _ = _timed(sinks)
    out["sinks (store, one transaction per batch)"] = seconds
    _close(core)
    return {
        "batch_size": batch_size,
        "measured_events": measured,
        "flagged_rows": n_flagged,
        "stages": {k: {"seconds": round(v, 5), "us_per_event": round(v / measured * 1e6, 4)} for k, v in out.items()},
        "explain_us_per_flagged_row": round(out["explain (flagged rows)"] / max(1, n_flagged) * 1e6, 2),
    }


# --- ceilings ------------------------------------------------------------------------------------------


@njit(cache=True, nogil=True)
def welford_update(key_ids, values, count, mean, m2, out_z):
    """Per-key Welford update with the z-score of each value against its key's prior state (one pass)."""
    for i in range(key_ids.shape[0]):
        k = key_ids[i]
        n = count[k]
        x = values[i]
        if n > 1:
            var = m2[k] / (n - 1)
            out_z[i] = (x - mean[k]) / np.sqrt(var) if var > 0 else 0.0
        else:
            out_z[i] = 0.0
        n += 1
        delta = x - mean[k]
        mean[k] += delta / n
        m2[k] += delta * (x - mean[k])
        count[k] = n


def _best(fn: Callable[[], Any], repeat: int = 3) -> float:
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def ceilings(spec: PipelineSpec, lines: list[bytes], batch_size: int, keys: int, bandwidth_mb: int = 1024) -> dict[str, Any]:
    """What this machine allows, each measured alone (best of 3)."""
    from tocsin.detectors._iforest_kernels import path_length_sums
    from tocsin.detectors.isolation_forest import _as_float32_rows

    decoder = Decoder(spec.event_schema, source=SOURCE_NAME)
    struct_decoder = decoder._one_decoder
    batches = [lines[i:i + batch_size] for i in range(0, len(lines), batch_size)]
    joined = [b"\n".join(b) for b in batches]
    n = len(lines)
    result: dict[str, Any] = {"events": n}
    t = _best(lambda: [struct_decoder.decode_lines(j) for j in joined])
    result["msgspec_typed_decode"] = {"us_per_event": round(t / n * 1e6, 4), "events_per_s": round(n / t)}
    t = _best(lambda: [struct_decoder.decode_lines(b"\n".join(b)) for b in batches])
    result["msgspec_join_and_typed_decode"] = {"us_per_event": round(t / n * 1e6, 4), "events_per_s": round(n / t)}
    t = _best(lambda: [decoder.decode_lines(b) for b in batches])
    result["decoder_decode_lines"] = {"us_per_event": round(t / n * 1e6, 4), "events_per_s": round(n / t)}
    untyped = msgspec.json.Decoder()
    t = _best(lambda: [untyped.decode_lines(j) for j in joined])
    result["msgspec_untyped_decode_to_dicts"] = {"us_per_event": round(t / n * 1e6, 4), "events_per_s": round(n / t)}

    rng = np.random.default_rng(0)
    m = 1_000_000
    values = rng.gamma(2.0, 30.0, m)
    welford_update(np.zeros(10, np.int64), values[:10], np.zeros(1, np.int64), np.zeros(1), np.zeros(1), np.empty(10))  # compile
    # the stream's key count (state in cache) and 10M keys (240 MB of state: every event a DRAM miss)
    for n_keys, name in ((keys, "numba_welford_per_key"), (10_000_000, "numba_welford_per_key_10M_keys")):
        key_ids = rng.integers(0, n_keys, m).astype(np.int64)
        arrays = (np.zeros(n_keys, np.int64), np.zeros(n_keys), np.zeros(n_keys), np.empty(m))
        t = _best(lambda k=key_ids, a=arrays: welford_update(k, values, *a))
        result[name] = {"keys": n_keys, "us_per_event": round(t / m * 1e6, 4), "events_per_s": round(m / t)}

    pipeline = Pipeline(spec)
    warmup = spec.detector.warmup_events
    for start in range(0, warmup, batch_size):
        pipeline.process_raw(_source_batch(lines, start, min(start + batch_size, warmup)), SOURCE_NAME)
    detector = pipeline.detector
    X = np.ascontiguousarray(pipeline.training.rows())
    X = np.ascontiguousarray(np.tile(X, (max(1, 200_000 // len(X)), 1)))
    rows = len(X)
    t = _best(lambda: detector.score_samples(X))
    result["iforest_score_threaded"] = {"rows": rows, "rows_per_s": round(rows / t), "us_per_row": round(t / rows * 1e6, 4)}
    X32 = _as_float32_rows(X, X.shape[1])
    args = (detector.tree_offset_, detector.tree_depth_, detector.node_feature_, detector.node_threshold_,
            detector.node_left_, detector.node_nan_right_, detector.node_path_length_)
    t = _best(lambda: path_length_sums(X32, *args, np.empty(rows)))
    result["iforest_score_one_thread"] = {"rows": rows, "rows_per_s": round(rows / t), "us_per_row": round(t / rows * 1e6, 4)}

    size = bandwidth_mb * (1 << 20) // 8
    src = np.ones(size)
    dst = np.empty_like(src)
    np.copyto(dst, src)
    t = _best(lambda: np.copyto(dst, src))
    result["numpy_copy"] = {"mb": bandwidth_mb, "copy_gb_per_s": round(src.nbytes / t / 1e9, 2),
                            "read_plus_write_gb_per_s": round(2 * src.nbytes / t / 1e9, 2)}
    t = _best(lambda: src.sum())
    result["numpy_sum"] = {"mb": bandwidth_mb, "read_gb_per_s": round(src.nbytes / t / 1e9, 2)}
    result["bytes_per_event_json"] = round(sum(map(len, lines)) / n, 1)
    return result


def gil_scaling(spec: PipelineSpec, lines: list[bytes], batch_size: int) -> dict[str, Any]:
    """Per stage: the time of two independent copies run one after the other over the time of the same two
    run at once in two threads. 2.0 = the stage runs without the GIL (both cores), 1.0 = it holds it."""
    from tocsin.detectors._iforest_kernels import path_length_sums
    from tocsin.detectors.isolation_forest import _as_float32_rows

    warmup = spec.detector.warmup_events
    pipeline = Pipeline(spec)
    for start in range(0, warmup, batch_size):
        pipeline.process_raw(_source_batch(lines, start, min(start + batch_size, warmup)), SOURCE_NAME)
    batches = [lines[i:i + batch_size] for i in range(warmup, len(lines), batch_size)]
    decoder_a, decoder_b = Decoder(spec.event_schema), Decoder(spec.event_schema)
    decoded = [decoder_a.decode_lines(b)[0] for b in batches]
    fs_a, fs_b = copy.deepcopy(pipeline.features), copy.deepcopy(pipeline.features)
    frames = [copy.deepcopy(pipeline.features).transform_update(e) for e in decoded]
    Xs = [np.ascontiguousarray(f.X[:, pipeline._columns]) for f in frames]
    d = pipeline.detector
    args = (d.tree_offset_, d.tree_depth_, d.node_feature_, d.node_threshold_, d.node_left_, d.node_nan_right_, d.node_path_length_)
    X32 = [_as_float32_rows(X, X.shape[1]) for X in Xs]
    cal_a, cal_b = copy.deepcopy(pipeline.calibrator), copy.deepcopy(pipeline.calibrator)
    raws = [d.score_samples(X) for X in Xs]
    work: dict[str, tuple[Callable[[], Any], Callable[[], Any]]] = {
        "decode (msgspec + columns)": (lambda: [decoder_a.decode_lines(b) for b in batches],
                                       lambda: [decoder_b.decode_lines(b) for b in batches]),
        "features (keys + kernels)": (lambda: [fs_a.transform_update(e) for e in decoded],
                                      lambda: [fs_b.transform_update(e) for e in decoded]),
        "score kernel (1 thread each)": (lambda: [path_length_sums(X, *args, np.empty(len(X))) for X in X32],
                                         lambda: [path_length_sums(X, *args, np.empty(len(X))) for X in X32]),
        "calibrate transform": (lambda: [cal_a.transform(r) for r in raws], lambda: [cal_b.transform(r) for r in raws]),
    }
    out = {}
    for name, (a, b) in work.items():
        sequential = _timed(a)[0] + _timed(b)[0]
        threads = [threading.Thread(target=a), threading.Thread(target=b)]
        t0 = time.perf_counter()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        concurrent = time.perf_counter() - t0
        out[name] = {"sequential_s": round(sequential, 4), "two_threads_s": round(concurrent, 4),
                     "speedup": round(sequential / concurrent, 2)}
    return {"batch_size": batch_size, "events": sum(map(len, batches)), "stages": out}


# --- entry point ---------------------------------------------------------------------------------------


def run_profile(events: int = 400_000, users: int = 100_000, batch_sizes: tuple[int, ...] = (1_000, 10_000),
                *, warmup_events: int | None = None, seed: int = 7, count_batches: int = 20,
                isolated: bool = True, with_ceilings: bool = True, bandwidth_mb: int = 1024) -> dict[str, Any]:
    """Everything above on one generated stream; returns JSON-ready figures."""
    spec = reference_spec(users, seed, warmup_events)
    if events <= spec.detector.warmup_events:
        raise ValueError(f"events ({events:,}) must exceed the detector warm-up ({spec.detector.warmup_events:,})")
    lines = generate_lines(spec, events)
    jit_s = _compile_kernels(spec, lines, min(batch_sizes))
    result: dict[str, Any] = {
        "benchmark": "profile_stages", "events": events, "users": users, "seed": seed,
        "warmup_events": spec.detector.warmup_events, "update_every": spec.calibration.update_every,
        "jit_compile_s_untimed": round(jit_s, 2), "machine": _machine(), "load_average_start": os.getloadavg(),
        "pipelined": {}, "isolated": {},
    }
    for batch_size in batch_sizes:
        result["pipelined"][str(batch_size)] = profile_pipeline(spec, lines, batch_size, count_batches)
        if isolated:
            result["isolated"][str(batch_size)] = isolated_stages(spec, lines, batch_size)
    if with_ceilings:
        result["ceilings"] = ceilings(spec, lines, max(batch_sizes), users, bandwidth_mb)
        result["gil_scaling"] = gil_scaling(spec, lines, max(batch_sizes))
    result["load_average_end"] = os.getloadavg()
    return result


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--events", type=int, default=400_000)
    parser.add_argument("--users", type=int, default=100_000)
    parser.add_argument("--batch-sizes", default="1000,10000")
    parser.add_argument("--count-batches", type=int, default=20)
    parser.add_argument("--no-isolated", action="store_true")
    parser.add_argument("--no-ceilings", action="store_true")
    parser.add_argument("--json", default=None)
    parser.add_argument("--cprofile", type=int, default=None, metavar="BATCH_SIZE",
                        help="only run cProfile over the runner's step at this batch size")
    args = parser.parse_args(argv)
    if args.cprofile:
        spec = reference_spec(args.users, 7)
        lines = generate_lines(spec, args.events)
        _compile_kernels(spec, lines, args.cprofile)
        result = cprofile_pipeline(spec, lines, args.cprofile)
        text = json.dumps(result, indent=2)
        if args.json:
            with open(args.json, "w") as f:
                f.write(text)
        print(text)
        return
    result = run_profile(args.events, args.users, tuple(int(b) for b in args.batch_sizes.split(",")),
                         count_batches=args.count_batches, isolated=not args.no_isolated, with_ceilings=not args.no_ceilings)
    text = json.dumps(result, indent=2)
    if args.json:
        with open(args.json, "w") as f:
            f.write(text)
    print(text)


if __name__ == "__main__":
    main()
