"""``tocsin train``: a model version from history, registered (and, with ``--promote``, made champion)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from tocsin.cli.common import console, load_spec_or_exit, write_json


def train_command(
    spec_path: Path = typer.Argument(..., metavar="SPEC", help="pipeline spec (YAML)"),
    data: Path = typer.Option(..., help="history to replay: .jsonl, .json, .csv or .parquet"),
    label_column: Optional[str] = typer.Option(None, help="ground truth column (1 = anomaly): the held-out tail is evaluated"),
    until: Optional[str] = typer.Option(None, help="train only on events before this time (ISO 8601 or epoch seconds)"),
    holdout: float = typer.Option(0.2, min=0.0, max=0.9, help="share of the records (the tail) held out for evaluation, with labels"),
    note: str = typer.Option("", help="a note kept with the version"),
    promote: Optional[str] = typer.Option(None, help="also point this alias at the new version: champion or challenger"),
    json_out: Optional[Path] = typer.Option(None, "--json", help="write the version's description to this file"),
) -> None:
    """Replay history through the pipeline, fit the detector and calibration, evaluate on the held-out
    tail, and register the result as a new model version."""
    from rich.progress import Progress

    from tocsin.engine.backtest import count_records
    from tocsin.engine.train import train_model
    from tocsin.registry import RegistryError, open_registry

    spec = load_spec_or_exit(spec_path)
    if not data.exists():
        console.print(f"[red]--data {data}: no such file[/]")
        raise typer.Exit(2)
    try:
        cutoff = _parse_time(until) if until else None
    except ValueError as error:
        console.print(f"[red]--until: {error}[/]")
        raise typer.Exit(2) from None
    with Progress(console=console, transient=True) as progress:
        task = progress.add_task(f"replaying {data.name}", total=count_records(data))
        try:
            version, arrays = train_model(spec, data, label_column=label_column, until=cutoff, holdout=holdout, note=note,
                                          progress=lambda n: progress.advance(task, n))
        except ValueError as error:
            console.print(f"[red]{error}[/]")
            raise typer.Exit(1) from None
    registry = open_registry(spec)
    try:
        stored = registry.register(version, arrays)
        if promote:
            stored = registry.promote(spec.name, stored.version, promote, by=stored.created_by)
    except RegistryError as error:
        console.print(f"[red]{error}[/]")
        raise typer.Exit(2) from None
    finally:
        registry.close()
    metrics = ", ".join(f"{k} {v:.4g}" for k, v in stored.metrics.items() if isinstance(v, float)) or "no labels: no metrics"
    console.print(f"registered model version [b]{stored.version}[/] of {spec.name}: {stored.rows:,} training events "
                  f"({stored.detector}); {metrics}" + (f"; now the {promote}" if promote else ""))
    write_json(json_out, stored.as_dict())


def _parse_time(text: str) -> float:
    """Epoch seconds from ``text``: a number, or an ISO 8601 date/time (UTC when it names no zone)."""
    import datetime as dt

    try:
        return float(text)
    except ValueError:
        pass
    try:
        stamp = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"{text!r} is neither epoch seconds nor an ISO 8601 time (2026-03-01T00:00:00Z)") from None
    if stamp.tzinfo is None:
        stamp = stamp.replace(tzinfo=dt.timezone.utc)
    return stamp.timestamp()
