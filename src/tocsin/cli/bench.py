"""``tocsin bench ...``: each benchmark prints its figures and writes them with ``--json FILE``."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from tocsin.cli.common import console, write_json

bench_app = typer.Typer(help="Benchmarks: each prints its figures and writes them with --json FILE.", no_args_is_help=True)


@bench_app.command("throughput")
def bench_throughput(
    events: int = typer.Option(1_000_000, help="events in the pre-generated JSON lines"),
    users: int = typer.Option(100_000, help="simulated cards"),
    batch_size: int = typer.Option(5_000, help="micro-batch size"),
    baseline_events: int = typer.Option(20_000, help="events each baseline runs on (extrapolated to events/s)"),
    json_out: Optional[Path] = typer.Option(None, "--json", help="write the figures to this file"),
) -> None:
    """The reference pipeline in one process vs a per-event microservice loop and River's HalfSpaceTrees."""
    from tocsin.bench.throughput import run_throughput_bench

    result = run_throughput_bench(events=events, users=users, batch_size=batch_size, baseline_events=baseline_events, console=console)
    write_json(json_out, result)


@bench_app.command("series")
def bench_series(
    series: int = typer.Option(100_000, help="series (hosts), each with its own model"),
    readings: int = typer.Option(100, help="readings per series, one a minute"),
    batch: int = typer.Option(50_000, help="micro-batch size in raw JSON lines"),
    river_series: int = typer.Option(2_000, help="series River runs on (all their readings; extrapolated to readings/s)"),
    json_out: Optional[Path] = typer.Option(None, "--json", help="write the figures to this file"),
) -> None:
    """Per-series models (kind: series) from raw JSON lines: readings/s, bytes per series, p99 batch latency, vs River."""
    from tocsin.bench.series import run_series_bench

    write_json(json_out, run_series_bench(series=series, readings=readings, batch_size=batch, river_series=river_series, console=console))


@bench_app.command("detectors")
def bench_detectors(
    rows: int = typer.Option(200_000, help="rows scored per detector"),
    json_out: Optional[Path] = typer.Option(None, "--json", help="write the figures to this file"),
) -> None:
    """Fit and scoring throughput of every registered detector, in rows per second."""
    from tocsin.bench.detectors import run_detector_bench

    write_json(json_out, run_detector_bench(rows=rows, console=console))


@bench_app.command("nab")
def bench_nab(
    data: Path = typer.Option(Path("../shared/data/nab"), help="a directory in NAB layout (data/, labels/)"),
    results_dir: Path = typer.Option(Path("bench-results/nab"), help="where per-file score CSVs are written"),
    detector: Optional[str] = typer.Option(None, help="time-series detector configuration (default: tocsin's)"),
    cv: bool = typer.Option(False, "--cv", help="leave-one-category-out cross-validation of the configuration and thresholds, with a sensitivity table"),
    json_out: Optional[Path] = typer.Option(None, "--json", help="write the scores to this file"),
) -> None:
    """Online NAB run and NAB scoring, printed beside the published detectors (--cv: cross-validated beside in-sample)."""
    from tocsin.bench.nab import run_nab_bench, run_nab_cv

    if cv:
        write_json(json_out, run_nab_cv(data=data, console=console, candidates=[detector] if detector else None))
        return
    write_json(json_out, run_nab_bench(data=data, results_dir=results_dir, detector=detector, console=console))


@bench_app.command("adbench")
def bench_adbench(
    data: Path = typer.Option(Path("../shared/data/adbench"), help="a directory of .npz files with X and y"),
    detector: Optional[str] = typer.Option(None, help="tabular detector configuration (default: tocsin's)"),
    cv: bool = typer.Option(False, "--cv", help="leave-one-dataset-out cross-validation of the configuration choice"),
    scale_rows: int = typer.Option(0, "--scale-rows", help="also time fit+score of a synthetic table of this many rows x 50 columns"),
    json_out: Optional[Path] = typer.Option(None, "--json", help="write the scores to this file"),
) -> None:
    """Unsupervised ADBench run: AUCROC, AUCPR and time per dataset beside the baselines (--cv: cross-validated beside in-sample)."""
    from tocsin.bench.adbench import run_adbench, run_adbench_cv, time_large_table

    if cv:
        result = run_adbench_cv(data=data, console=console)
        if scale_rows:
            result["large_table"] = time_large_table(scale_rows, 50, result["default"], console)
        write_json(json_out, result)
        return
    if scale_rows:
        write_json(json_out, {**run_adbench(data=data, detector=detector, console=console), "large_table": time_large_table(scale_rows, 50, detector, console)})
        return
    write_json(json_out, run_adbench(data=data, detector=detector, console=console))


from tocsin.cli.serve import bench_http_command  # noqa: E402  (its options live beside the server code)

bench_app.command("http")(bench_http_command)

from tocsin.cli.stream import bench_kafka_command  # noqa: E402

bench_app.command("kafka")(bench_kafka_command)
