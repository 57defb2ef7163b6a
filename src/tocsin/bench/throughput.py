"""``tocsin bench throughput``: the reference pipeline's events/s and batch latency, against two baselines.

What is measured, in one process on the same pre-generated JSON lines:

1. **tocsin**: the reference transaction pipeline (``specs/transactions.yaml``,
   source users set to ``users``) calling ``Pipeline.process_raw`` on
   micro-batches of ``batch_size`` lines — decode, features, score,
   calibrate, threshold and explanations, the whole hot path, with the next
   batch's decoding started on the helper thread first
   (``Pipeline.decode_ahead``), as the runner does. Reported: events/s over the
   wall time of the whole measured loop (what the helper thread does between
   batches counts), per-batch p50/p99 latency, a stage breakdown (the main
   thread's time in each stage: "decode" is the wait for the helper), and,
   from a second pass over the same events with a fresh pipeline, the runner's
   whole step: the batches run through the driver core
   (:class:`~tocsin.engine.core.DriverCore`), which after the pipeline groups
   each batch's anomalies into alerts, writes them in one transaction to an
   in-memory SQLite :class:`~tocsin.store.Store` and counts the batch in the
   run's statistics and metrics; the headline figure excludes that part,
   ``store`` reports it. The detector refits the spec
   schedules (``detector.refit_every``) run inline in ``process_raw`` and are
   measured with everything else; the batches holding one are counted, and
   p50/p99 are also given without them.
2. **microservice** baseline and 3. **River HST** baseline: see
   :mod:`tocsin.bench.baselines`. Both run on a sample of ``baseline_events``
   events taken right after the warm-up, one event at a time; their events/s
   is the sample divided by its time (extrapolated), latency is per event.

What is *not* measured: generating the events (the simulator), the warm-up
(the first ``detector.warmup_events`` events, 20,000 in the reference spec,
whose features train the detector before scoring starts — part of the
pipeline, run untimed, as are the baselines' fits on the same events), and
numba's JIT compilation, which happens on a throwaway pipeline before the
measured one starts so no measured batch pays for it.

Stage timings come from wrapping the pipeline's stage methods on the instance
(a few ``perf_counter`` calls per batch, negligible against a batch); "other"
is what ``process_raw`` spends outside them (column selection, result arrays).
CPU time over wall time of the measured loop says how many cores the hot path
actually kept busy; below 1 means something else took the CPU, and then the
``events_per_cpu_s`` figures (events per second of process CPU time, given for
tocsin and both baselines) compare better than wall-clock events/s.
"""

from __future__ import annotations

import functools
import gc
import os
import platform
import resource
import tempfile
import time
from collections.abc import Callable
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console
from rich.table import Table

from tocsin.bench.baselines import FEATURE_NAMES as BASELINE_FEATURES
from tocsin.bench.baselines import MicroserviceBaseline, RiverHSTBaseline, run_baseline
from tocsin.engine.pipeline import Pipeline
from tocsin.simulate import TransactionSimulator, write_events
from tocsin.sources.base import SourceBatch
from tocsin.spec import PipelineSpec, load_spec

REFERENCE_SPEC = Path(__file__).resolve().parent.parent / "specs" / "transactions.yaml"
SOURCE_NAME = "bench"
JIT_WARMUP_EVENTS = 500
"""Detector warm-up of the throwaway pipeline that triggers numba compilation (the spec's minimum is 100)."""
STAGES = ("decode", "features", "score", "calibrate", "threshold", "explain", "refit")


def reference_spec(users: int, seed: int, warmup_events: int | None = None) -> PipelineSpec:
    """The reference transaction spec with the simulator's users/seed (and optionally the detector warm-up) replaced."""
    spec = load_spec(REFERENCE_SPEC)
    update: dict[str, Any] = {"source": spec.source.model_copy(update={"users": users, "seed": seed})}
    if warmup_events is not None:
        update["detector"] = spec.detector.model_copy(update={"warmup_events": warmup_events})
    return spec.model_copy(update=update)


def generate_lines(spec: PipelineSpec, events: int) -> list[bytes]:
    """``events`` simulated transactions as JSON lines, exactly as ``tocsin simulate --out x.jsonl`` writes them."""
    batch = TransactionSimulator.from_spec(spec.source).generate(events)
    with tempfile.TemporaryDirectory(prefix="tocsin-bench-") as tmp:
        path = Path(tmp) / "transactions.jsonl"
        write_events(batch, path, "jsonl")
        del batch
        return path.read_bytes().splitlines()


def _source_batch(lines: list[bytes], start: int, stop: int) -> SourceBatch:
    return SourceBatch(positions=np.arange(start, stop, dtype=np.int64), next_position=stop, lines=lines[start:stop])


def _compile_kernels(spec: PipelineSpec, lines: list[bytes], batch_size: int) -> float:
    """Run a throwaway pipeline through every stage so numba compiles (or loads) its kernels; seconds taken."""
    started = time.perf_counter()
    n = min(len(lines), 3 * JIT_WARMUP_EVENTS)
    throwaway = Pipeline(spec.model_copy(update={"detector": spec.detector.model_copy(update={"warmup_events": JIT_WARMUP_EVENTS})}))
    step = min(batch_size, JIT_WARMUP_EVENTS)
    last = None
    for start in range(0, n, step):
        last = throwaway.process_raw(_source_batch(lines, start, min(start + step, n)), SOURCE_NAME)
    if last is not None and last.features is not None and throwaway.is_warm:
        # Explanations run only for flagged events; make sure their kernels compiled too.
        frame = last.features
        X = np.column_stack([frame.column(name)[:8] for name in throwaway.feature_names])
        throwaway.detector.explain(np.ascontiguousarray(X))
    return time.perf_counter() - started


class _StageClock:
    """Accumulates wall time per pipeline stage by wrapping the stage methods of one pipeline instance.

    Only the outermost timed call counts, so a refit's own scoring of its
    training rows is "refit", not "score". ``fit`` replaces the calibrator, so
    the new one is wrapped after each fit.
    """

    def __init__(self, pipeline: Pipeline) -> None:
        self.seconds = dict.fromkeys(STAGES, 0.0)
        self.calls = dict.fromkeys(STAGES, 0)
        self._depth = 0
        self._pipeline = pipeline
        self._restore: list[tuple[Any, str]] = []
        for stage, owner, name in (
            ("decode", pipeline, "decode"),
            ("features", pipeline.features, "transform_update"),
            ("score", pipeline.detector, "score_samples"),
            ("threshold", pipeline.threshold, "decide"),
            ("explain", pipeline, "_explain"),
            ("refit", pipeline, "fit"),
        ):
            self._wrap(stage, owner, name)
        self._wrap_calibrator()

    def _wrap(self, stage: str, owner: Any, name: str) -> None:
        try:
            setattr(owner, name, self._timed(stage, getattr(owner, name)))
            self._restore.append((owner, name))
        except AttributeError:  # e.g. __slots__ or a renamed method: that stage falls into "other"
            pass

    def _wrap_calibrator(self) -> None:
        for name in ("transform", "update"):
            self._wrap("calibrate", self._pipeline.calibrator, name)

    def _timed(self, stage: str, method: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(method)
        def timed(*args: Any, **kwargs: Any) -> Any:
            self._depth += 1
            started = time.perf_counter()
            try:
                return method(*args, **kwargs)
            finally:
                self._depth -= 1
                if self._depth == 0:
                    self.seconds[stage] += time.perf_counter() - started
                    self.calls[stage] += 1
                if stage == "refit":
                    self._wrap_calibrator()

        return timed

    def remove(self) -> None:
        for owner, name in self._restore:
            if name in vars(owner):
                delattr(owner, name)


def _machine() -> dict[str, Any]:
    cpu_model = platform.processor() or None
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    versions = {}
    for package in ("numpy", "numba", "msgspec", "scikit-learn", "river"):
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = None
    return {
        "cpu_count": os.cpu_count(),
        "cpu_model": cpu_model,
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "versions": versions,
    }


class _PipelineClock:
    """Wall and CPU time of the latest ``process_raw`` call of one pipeline (wrapped on the instance), so a
    step through the driver core splits into the pipeline's part and the rest."""

    def __init__(self, pipeline: Pipeline) -> None:
        self.pipeline = pipeline
        self.wall = self.cpu = 0.0
        inner = pipeline.process_raw

        @functools.wraps(inner)
        def timed(*args: Any, **kwargs: Any) -> Any:
            c0, t0 = time.process_time(), time.perf_counter()
            try:
                return inner(*args, **kwargs)
            finally:
                self.wall, self.cpu = time.perf_counter() - t0, time.process_time() - c0

        pipeline.process_raw = timed

    def remove(self) -> None:
        del self.pipeline.process_raw


def _measure(spec: PipelineSpec, lines: list[bytes], warmup: int, events: int, batch_size: int, *, store: bool) -> dict[str, Any]:
    """One timed pass: a fresh pipeline warmed up (untimed) on the first ``warmup`` lines, then the rest in
    batches as the runner steps them: the next batch's decoding started on the helper thread
    (:meth:`Pipeline.decode_ahead`), then this batch processed (``store``: through the driver core, with an
    in-memory SQLite store). Wall and process CPU time cover the whole loop."""
    pipeline = Pipeline(spec)
    started = time.perf_counter()
    for start in range(0, warmup, batch_size):
        pipeline.process_raw(_source_batch(lines, start, min(start + batch_size, warmup)), SOURCE_NAME)
    warmup_s = time.perf_counter() - started
    if not pipeline.is_warm:
        raise RuntimeError(f"the pipeline is not fitted after its {warmup:,} warm-up events")
    core = stream = None
    if store:  # the runner's step: the pipeline, then grouped alerts and the store in one transaction
        from tocsin.engine.core import DriverCore
        from tocsin.store import Store

        core = DriverCore(spec, driver="runner", store=Store("sqlite:///:memory:"), dispatch=False)
        stream = core.open_stream(SOURCE_NAME, SOURCE_NAME, pipeline=pipeline, resume=False)
    stages = _StageClock(pipeline)
    pipeline_seconds = _PipelineClock(pipeline)
    out: dict[str, Any] = {"pipeline": pipeline, "warmup_s": warmup_s, "batch_seconds": [], "batch_refits": [],
                           "store_seconds": [], "measured": 0, "scored_events": 0, "anomalies": 0, "dead_letters": 0}
    batches = [_source_batch(lines, start, min(start + batch_size, events)) for start in range(warmup, events, batch_size)]
    gc.collect()
    cpu_started, wall_started = time.process_time(), time.perf_counter()
    for index, raw in enumerate(batches):
        if index + 1 < len(batches):
            pipeline.decode_ahead(batches[index + 1], SOURCE_NAME)
        refits_before = stages.calls["refit"]
        t0 = time.perf_counter()
        if core is not None:
            scored = core.process([(stream, raw)], path="stream")[0].scored
        else:
            scored = pipeline.process_raw(raw, SOURCE_NAME)
        step_s = time.perf_counter() - t0
        out["batch_seconds"].append(pipeline_seconds.wall)
        out["store_seconds"].append(step_s - pipeline_seconds.wall)
        out["batch_refits"].append(stages.calls["refit"] > refits_before)
        out["measured"] += len(raw)
        out["scored_events"] += int(np.count_nonzero(scored.scored))
        out["anomalies"] += len(scored.anomaly_rows)
        out["dead_letters"] += len(scored.dead_letters)
    out["cpu_s"], out["wall_s"] = time.process_time() - cpu_started, time.perf_counter() - wall_started
    out["stages"] = dict(stages.seconds)
    stages.remove()
    pipeline_seconds.remove()
    if core is not None:
        core.close()
        core.store.close()
    return out


def _ms(seconds: np.ndarray, q: float) -> float:
    return float(np.quantile(seconds, q) * 1e3) if len(seconds) else float("nan")


def run_throughput_bench(
    events: int = 1_000_000,
    users: int = 100_000,
    batch_size: int = 5_000,
    baseline_events: int = 20_000,
    console: Console | None = None,
    *,
    warmup_events: int | None = None,
    seed: int = 7,
    store: bool = True,
) -> dict[str, Any]:
    """Run the benchmark and return its figures; prints progress and a table to ``console``.

    ``warmup_events`` overrides the reference spec's detector warm-up (20,000);
    ``store=False`` skips the separate in-memory SQLite store figure.
    """
    console = console if console is not None else Console(quiet=True)
    if batch_size < 1 or baseline_events < 1:
        raise ValueError(f"batch_size and baseline_events must be >= 1, got {batch_size} and {baseline_events}")
    spec = reference_spec(users, seed, warmup_events)
    warmup = spec.detector.warmup_events
    if events <= warmup:
        raise ValueError(f"events ({events:,}) must exceed the detector warm-up ({warmup:,}): nothing would be measured")
    sample = max(0, min(baseline_events, events - warmup))

    with console.status(f"generating {events:,} events for {users:,} cards (not timed)…"):
        started = time.perf_counter()
        lines = generate_lines(spec, events)
        generate_s = time.perf_counter() - started
    console.print(f"generated {len(lines):,} JSON lines ({sum(map(len, lines)) / len(lines):.0f} bytes each) in {generate_s:.1f}s")

    # --- tocsin ------------------------------------------------------------------
    with console.status("compiling numba kernels on a throwaway pipeline (not timed)…"):
        jit_s = _compile_kernels(spec, lines, batch_size)
    with console.status(f"tocsin: {events - warmup:,} events in batches of {batch_size:,} (warm-up on {warmup:,}, not timed)…"):
        run = _measure(spec, lines, warmup, events, batch_size, store=False)
    pipeline, warmup_s, measured = run["pipeline"], run["warmup_s"], run["measured"]
    scored_events, anomalies, dead_letters = run["scored_events"], run["anomalies"], run["dead_letters"]
    cpu_s, wall_s, batch_refits = run["cpu_s"], run["wall_s"], run["batch_refits"]
    batch_times = np.asarray(run["batch_seconds"])
    without_refit = batch_times[~np.asarray(batch_refits, dtype=bool)]
    pipeline_s = wall_s  # the whole loop's wall time: work the decoding thread does between batches counts too
    events_per_s = measured / pipeline_s
    events_per_cpu_s = measured / cpu_s
    stage_seconds = dict(run["stages"])
    stage_seconds["other"] = max(0.0, pipeline_s - sum(stage_seconds.values()))
    stage_report = {
        stage: {"seconds": round(s, 4), "share": round(s / pipeline_s, 4), "us_per_event": round(s / measured * 1e6, 3)}
        for stage, s in stage_seconds.items()
    }
    with_store = None
    if store:  # a second pass, a fresh pipeline through the driver core, as the runner steps
        with console.status("tocsin again, through the driver core with an in-memory SQLite store…"):
            with_store = _measure(spec, lines, warmup, events, batch_size, store=True)
    console.print(f"tocsin: {measured:,} events in {pipeline_s:.2f}s → {events_per_s:,.0f} events/s")

    # --- baselines ---------------------------------------------------------------
    # The baselines' models read the features the reference detector scores (those the baseline code computes).
    baseline_features = [name for name in pipeline.feature_names if name in BASELINE_FEATURES]
    missing_features = [name for name in pipeline.feature_names if name not in BASELINE_FEATURES]
    sample_lines = lines[warmup:warmup + sample]
    baseline_results = {}
    for baseline in (MicroserviceBaseline(baseline_features, seed=0), RiverHSTBaseline(baseline_features, seed=0)):
        with console.status(f"{baseline.name}: warm-up on {warmup:,} events (not timed), then {sample:,} events one by one…"):
            baseline.warm_up(lines[:warmup])
            gc.collect()
            result = run_baseline(baseline, sample_lines)
        baseline_results[baseline.name] = result
        console.print(f"{baseline.name}: {result.events:,} events in {result.seconds:.2f}s → {result.events_per_s:,.0f} events/s")
    del lines, sample_lines

    micro, river = baseline_results["microservice"], baseline_results["river_hst"]
    store_report = None
    if with_store is not None:
        store_times = np.asarray(with_store["store_seconds"])
        store_report = {
            "url": "sqlite:///:memory:",
            "what": "the runner's step after the pipeline, through the driver core: anomalies grouped into alerts, "
                    "one store transaction, run statistics and metrics (a second pass over the same events)",
            "seconds": round(float(store_times.sum()), 4),
            "p50_batch_ms": round(_ms(store_times, 0.5), 3),
            "p99_batch_ms": round(_ms(store_times, 0.99), 3),
            "events_per_s_with_store": round(with_store["measured"] / with_store["wall_s"], 1),
        }
    result: dict[str, Any] = {
        "benchmark": "throughput",
        "spec": spec.name,
        "detector": {**spec.detector.model_dump(mode="json"), "features": list(pipeline.feature_names)},
        "events": events,
        "users": users,
        "batch_size": batch_size,
        "seed": seed,
        "warmup_events": warmup,
        "measured_events": measured,
        "scored_events": scored_events,
        "batches": len(batch_times),
        "seconds": round(pipeline_s, 4),
        "events_per_s": round(events_per_s, 1),
        "us_per_event": round(1e6 / events_per_s, 3),
        "events_per_cpu_s": round(events_per_cpu_s, 1),
        "p50_batch_ms": round(_ms(batch_times, 0.5), 3),
        "p99_batch_ms": round(_ms(batch_times, 0.99), 3),
        "max_batch_ms": round(float(batch_times.max()) * 1e3, 3),
        "refits": int(np.count_nonzero(batch_refits)),
        "p50_batch_ms_without_refit": round(_ms(without_refit, 0.5), 3),
        "p99_batch_ms_without_refit": round(_ms(without_refit, 0.99), 3),
        "anomalies": anomalies,
        "dead_letters": dead_letters,
        "stages": stage_report,
        "cpu_cores_busy": round(cpu_s / wall_s, 2) if wall_s > 0 else None,
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "store": store_report,
        "untimed_seconds": {"generate": round(generate_s, 2), "jit_compile": round(jit_s, 2), "warmup": round(warmup_s, 2)},
        "baselines": {
            "sample_events": sample,
            "features": baseline_features,
            "microservice_events_per_s": round(micro.events_per_s, 1),
            "river_hst_events_per_s": round(river.events_per_s, 1),
            **{
                name: {
                    "description": r.description,
                    "events": r.events,
                    "seconds": round(r.seconds, 4),
                    "events_per_s": round(r.events_per_s, 1),
                    "events_per_cpu_s": round(r.events_per_cpu_s, 1),
                    "p50_event_ms": round(r.latency_ms(0.5), 4),
                    "p99_event_ms": round(r.latency_ms(0.99), 4),
                }
                for name, r in baseline_results.items()
            },
        },
        "ratios": {
            "vs_microservice": round(events_per_s / micro.events_per_s, 2),
            "vs_river_hst": round(events_per_s / river.events_per_s, 2),
            "vs_microservice_cpu": round(events_per_cpu_s / micro.events_per_cpu_s, 2),
            "vs_river_hst_cpu": round(events_per_cpu_s / river.events_per_cpu_s, 2),
        },
        "machine": _machine(),
        "notes": [
            "single process; the JSON lines are pre-generated in memory and generation is not timed",
            f"tocsin figures are the wall time of a loop of Pipeline.decode_ahead(next batch) + Pipeline.process_raw over "
            f"batches of {batch_size:,} lines (decode, features, score, "
            "calibrate, threshold, explanations, and the detector refits the spec schedules, which run inline: "
            f"{int(np.count_nonzero(batch_refits))} in this run, see p99_batch_ms_without_refit); store writes are "
            "excluded from events_per_s and reported under 'store', from a second pass with a fresh pipeline",
            f"warm-up excluded: the first {warmup:,} events train the detector (part of the pipeline, untimed), and numba "
            "kernels are compiled on a throwaway pipeline before timing starts",
            f"baselines run on a sample of {sample:,} events (the events right after the warm-up) and are extrapolated "
            "to events/s; they were fitted/learned on the same warm-up events, untimed",
            "tocsin latency is per batch; baseline latency is per event",
            f"the baselines compute the reference features in per-event Python and their models read the {len(baseline_features)} "
            "features the reference detector scores; the sklearn forest is fitted once and never refitted"
            + (f"; the baselines lack {missing_features}" if missing_features else ""),
            f"the hot path kept {cpu_s / wall_s:.2f} cores busy on average (process CPU time / wall time of the "
            f"measured loop; the next batch decodes on a helper thread and scoring shares its rows out between the cores) "
            f"on a {os.cpu_count()}-CPU machine; well below 1 means "
            "other processes took the CPU, and the *_cpu_s figures (events per second of process CPU time) are the "
            "ones to compare",
            f"load average at the end of the run: {', '.join(f'{x:.2f}' for x in os.getloadavg())}",
        ],
    }
    console.print(_table(result))
    return result


def _table(result: dict[str, Any]) -> Table:
    b = result["baselines"]
    table = Table(title=f"tocsin bench throughput: {result['measured_events']:,} events, {result['users']:,} cards, one process")
    for column in ("", "events/s", "per CPU-s", "p50 ms", "p99 ms", "tocsin × (CPU)"):
        table.add_column(column, justify="left" if not column else "right")
    table.add_row(
        f"tocsin, batches of {result['batch_size']:,}", f"{result['events_per_s']:,.0f}", f"{result['events_per_cpu_s']:,.0f}",
        f"{result['p50_batch_ms']:.2f}", f"{result['p99_batch_ms']:.2f}", "1",
    )
    if result["store"]:
        s = result["store"]
        table.add_row("  + SQLite store writes", f"{s['events_per_s_with_store']:,.0f}", "", f"+{s['p50_batch_ms']:.2f}", f"+{s['p99_batch_ms']:.2f}", "")
    for name, label, ratio in (("microservice", "microservice*", "vs_microservice"), ("river_hst", "River HST*", "vs_river_hst")):
        r = b[name]
        table.add_row(
            label, f"{r['events_per_s']:,.0f}", f"{r['events_per_cpu_s']:,.0f}", f"{r['p50_event_ms']:.3f}", f"{r['p99_event_ms']:.3f}",
            f"{result['ratios'][ratio]:,.1f} ({result['ratios'][ratio + '_cpu']:,.1f})",
        )
    stages = ", ".join(f"{k} {v['share']:.0%}" for k, v in result["stages"].items())
    table.caption = (
        "Latency: per batch for tocsin, per event for the baselines. "
        f"* per-event loop (json.loads, dict state; sklearn IsolationForest 1-row calls / River MinMaxScaler | "
        f"HalfSpaceTrees) on a sample of {b['sample_events']:,} events, extrapolated. Not timed: generation, warm-up "
        f"({result['warmup_events']:,} events), JIT. tocsin stages: {stages}. "
        f"{result['refits']} inline refits (p99 without them {result['p99_batch_ms_without_refit']:.2f} ms). "
        f"{result['cpu_cores_busy']} cores busy of {result['machine']['cpu_count']}."
    )
    return table
