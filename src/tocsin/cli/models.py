"""``tocsin models list | show | promote | rollback``: the versions in a pipeline's registry and the aliases
(``champion`` scores live, ``challenger`` in shadow) that running drivers follow. The pipeline's name and its
registry come from the spec (``registry:``; by default the tables beside ``store.url``)."""

from __future__ import annotations

import getpass
import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import typer
from rich import box
from rich.table import Table

from tocsin.cli.common import console, load_spec_or_exit

models_app = typer.Typer(help="Model versions: list, show, promote (champion/challenger), roll back.", no_args_is_help=True)

SPEC = typer.Argument(..., metavar="SPEC", help="pipeline spec (YAML): its name and `registry` section")
JSON = typer.Option(False, "--json", help="print JSON instead of a table")


@contextmanager
def _registry(spec_path: Path) -> Iterator[tuple[Any, str]]:
    """The spec's registry and pipeline name; a spec or registry mistake prints why and exits 2 (1 for a
    version or alias that is not there, or nothing to roll back to)."""
    from tocsin.registry import RegistryError, open_registry

    spec = load_spec_or_exit(spec_path)
    try:
        registry = open_registry(spec)
    except RegistryError as error:
        console.print(f"[red]{error}[/]")
        raise typer.Exit(2) from None
    try:
        yield registry, spec.name
    except RegistryError as error:
        console.print(f"[red]{error}[/]")
        raise typer.Exit(1) from None
    finally:
        registry.close()


def _user() -> str:
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):
        return "cli"


def _when(seconds: float | None, spec: str = "%Y-%m-%d %H:%M:%S") -> str:
    return "–" if seconds is None else time.strftime(spec, time.gmtime(seconds))


def _metrics(metrics: dict[str, float | None], separator: str = ", ") -> str:
    return separator.join(f"{name} {'–' if value is None else f'{value:.4g}'}" for name, value in metrics.items()) or "–"


def _print_json(data: Any) -> None:
    print(json.dumps(data, indent=2, default=str))


@models_app.command("list")
def list_command(spec_path: Path = SPEC, json_out: bool = JSON) -> None:
    """Every version of the spec's pipeline, oldest first, with its aliases, metrics and training range."""
    with _registry(spec_path) as (registry, pipeline):
        versions = registry.versions(pipeline)
    if json_out:
        _print_json([v.as_dict() for v in versions])
        return
    if not versions:
        console.print(f"no model versions of {pipeline!r} yet: `tocsin train SPEC --data FILE` registers one")
        return
    minute = "%Y-%m-%d %H:%M"
    table = Table(title=f"model versions of {pipeline} (times UTC)", box=box.SIMPLE_HEAD)
    table.add_column("version", justify="right", no_wrap=True)
    table.add_column("aliases", no_wrap=True)
    table.add_column("trained on", no_wrap=True)
    table.add_column("rows", justify="right", no_wrap=True)
    table.add_column("metrics", no_wrap=True)
    table.add_column("created, detector", overflow="fold")
    for v in versions:
        table.add_row(str(v.version), "\n".join(v.aliases) or "–", f"{_when(v.trained_from, minute)}\n{_when(v.trained_until, minute)}",
                      f"{v.rows:,}", _metrics(v.metrics, "\n"), f"{_when(v.created_at, minute)}\nby {v.created_by}\n{v.detector}")
    console.print(table)


@models_app.command("show")
def show_command(spec_path: Path = SPEC, version: int = typer.Argument(..., metavar="V", help="version number"),
                 json_out: bool = JSON) -> None:
    """One version: features, detector, training range and rows, metrics, aliases, who created it and when."""
    with _registry(spec_path) as (registry, pipeline):
        found = registry.get(pipeline, version)
    if json_out:
        _print_json(found.as_dict())
        return
    detector = found.sections.get("detector", {}) if isinstance(found.sections, dict) else {}
    table = Table(title=f"{pipeline} model version {found.version}", show_header=False)
    rows = [
        ("aliases", ", ".join(found.aliases) or "–"),
        ("detector", f"{found.detector} {json.dumps(detector.get('params') or {}, sort_keys=True)}"),
        ("features", f"{len(found.feature_names)}: {', '.join(found.feature_names)}"),
        ("spec hash", found.spec_hash),
        ("trained on (UTC)", f"{_when(found.trained_from)} → {_when(found.trained_until)}"),
        ("rows", f"{found.rows:,}"),
        ("metrics", _metrics(found.metrics)),
        ("created", f"{_when(found.created_at)} UTC by {found.created_by} (tocsin {found.tocsin_version})"),
        ("note", found.note or "–"),
    ]
    for key, value in rows:
        table.add_row(key, value)
    console.print(table)


@models_app.command("promote")
def promote_command(
    spec_path: Path = SPEC,
    version: int = typer.Argument(..., metavar="V", help="version number"),
    alias: str = typer.Option("champion", "--as", help="champion (scores live) or challenger (scores in shadow)"),
    json_out: bool = JSON,
) -> None:
    """Point an alias at version V; running drivers that follow the registry pick it up at a batch boundary."""
    with _registry(spec_path) as (registry, pipeline):
        before = registry.alias(pipeline, alias)
        promoted = registry.promote(pipeline, version, alias, by=_user())
    if json_out:
        _print_json({"alias": alias, "version": promoted.version, "previous": before})
        return
    console.print(f"{pipeline}: {alias} is now version {promoted.version}" + (f" (was {before})" if before is not None else ""))


@models_app.command("rollback")
def rollback_command(
    spec_path: Path = SPEC,
    alias: str = typer.Option("champion", "--alias", help="the alias to point back at the version it named before"),
    json_out: bool = JSON,
) -> None:
    """Point an alias back at the version it named before its latest promotion (again: one further back)."""
    with _registry(spec_path) as (registry, pipeline):
        before = registry.alias(pipeline, alias)
        version = registry.rollback(pipeline, alias, by=_user())
    if json_out:
        _print_json({"alias": alias, "version": version, "previous": before})
        return
    console.print(f"{pipeline}: {alias} rolled back from version {before} to version {version}")


def _rate(value: float | None) -> str:
    return "–" if value is None else f"{value:.3f}"


def _sparkline(counts: list[int]) -> str:
    """A score histogram as one line of block characters (each bin against the largest)."""
    blocks = " ▁▂▃▄▅▆▇█"
    top = max(counts) if counts else 0
    return "".join(blocks[0 if not top else max(1 if c else 0, round(8 * c / top))] for c in counts)


@models_app.command("compare")
def compare_command(
    spec_path: Path = SPEC,
    challenger: int | None = typer.Option(None, "--challenger", help="version to compare (default: the latest challenger that scored)"),
    json_out: bool = JSON,
) -> None:
    """What the challenger saw in shadow beside the champion, over the same events: both score
    distributions, the overlap of their anomalies, and precision/recall where the events had labels."""
    from tocsin.engine.shadow import comparison
    from tocsin.store import Store

    spec = load_spec_or_exit(spec_path)
    store = Store(spec.store.url)
    try:
        compared = comparison(store, spec.name, challenger)
    finally:
        store.close()
    if compared is None:
        which = f"version {challenger}" if challenger is not None else "a challenger"
        console.print(f"[red]{spec.name}: no events scored by {which} in shadow yet[/]: promote one with "
                      "`tocsin models promote SPEC V --as challenger` and let a running driver score events")
        raise typer.Exit(1)
    if json_out:
        _print_json(compared)
        return
    table = Table(title=f"{spec.name}: challenger v{compared['challenger']} beside champion "
                        f"v{', v'.join(map(str, compared['champions']))} over {compared['events']:,} events", box=box.SIMPLE_HEAD)
    table.add_column("")
    table.add_column(f"champion v{compared['champion']}", justify="right")
    table.add_column(f"challenger v{compared['challenger']}", justify="right")
    table.add_row("anomalies", f"{compared['champion_anomalies']:,}", f"{compared['challenger_anomalies']:,}")
    table.add_row("precision", _rate(compared["champion_precision"]), _rate(compared["challenger_precision"]))
    table.add_row("recall", _rate(compared["champion_recall"]), _rate(compared["challenger_recall"]))
    table.add_row("scores 0 → 1", _sparkline(compared["champion_scores"]), _sparkline(compared["challenger_scores"]))
    console.print(table)
    overlap = compared["overlap"]
    console.print(f"flagged by both: {compared['both_anomalies']:,}"
                  + ("" if overlap is None else f" ({overlap:.1%} of the events either flagged)")
                  + (f"; labelled events: {compared['labelled']:,}, of them anomalous {compared['positives']:,}" if compared["labelled"] else
                     "; no labels, so no precision or recall"))
