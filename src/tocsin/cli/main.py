"""The ``tocsin`` command: demo, run, backtest, simulate, bench."""

from __future__ import annotations

import json
import shutil
import signal
from enum import Enum
from pathlib import Path
from typing import Any, Optional

import typer
from rich.live import Live
from rich.table import Table

from tocsin.cli.bench import bench_app
from tocsin.cli.models import models_app
from tocsin.cli.common import console, load_spec_or_exit, write_json
from tocsin.cli.serve import keys_create_command, serve_command
from tocsin.cli.stream import produce_command, run_workers
from tocsin.cli.train import train_command
from tocsin.durations import format_duration
from tocsin.vocabulary import Words

app = typer.Typer(help="tocsin: real-time anomaly detection over event streams.", no_args_is_help=True, add_completion=False)
app.add_typer(bench_app, name="bench")
app.add_typer(models_app, name="models")
app.command("serve")(serve_command)
keys_app = typer.Typer(help="API keys for `tocsin serve`.", no_args_is_help=True)
keys_app.command("create")(keys_create_command)
app.add_typer(keys_app, name="keys")
app.command("produce")(produce_command)
app.command("train")(train_command)

#: the reference specs packaged with tocsin (copies of examples/NAME.yaml), one per demo scenario
SPECS = Path(__file__).resolve().parent.parent / "specs"
REFERENCE_SPEC = SPECS / "transactions.yaml"


class Scenario(str, Enum):
    """A simulated use case: what `tocsin simulate` writes, and what `tocsin demo` runs (its reference spec,
    ``specs/NAME.yaml``, over its simulator); the names of ``tocsin.simulate.SCENARIOS``."""

    transactions = "transactions"
    hosts = "hosts"
    requests = "requests"
    sensors = "sensors"
    logins = "logins"
    behaviour = "behaviour"
    retail = "retail"
    quality = "quality"


#: each demo's subject (its title) and the simulator field that says how many entities it simulates
DEMO_SUBJECTS = {Scenario.transactions: ("card transactions", "users"), Scenario.hosts: ("host metrics", "hosts"),
                 Scenario.requests: ("request logs", "services"), Scenario.sensors: ("sensor readings", "sensors"),
                 Scenario.logins: ("logins and access", "accounts"), Scenario.behaviour: ("page views", "visitors"),
                 Scenario.retail: ("store sales", "stores"), Scenario.quality: ("table loads", "tables")}



def _summary_table(summary: dict[str, Any], title: str) -> Table:
    """One row per figure; a nested dict (``active``, ``final_7d`` …) as rows ``name.key``."""
    table = Table(title=title, show_header=False)
    flat = {k: v for k, v in summary.items() if not isinstance(v, dict)}
    flat.update({f"{k}.{name}": v for k, part in summary.items() if isinstance(part, dict) for name, v in part.items()})
    for key, value in flat.items():
        if isinstance(value, float):
            value = f"{value:,.4f}" if abs(value) < 100 else f"{value:,.1f}"
        elif isinstance(value, int):
            value = f"{value:,}"
        table.add_row(key, str(value))
    return table


def _incident_table(report: dict[str, Any]) -> Table:
    """The incident-level figures of a backtest: one row per incident kind, then the totals."""
    from rich import box

    scope, kinds = report["incident_scope"], report["incidents"]

    def number(value: Any) -> str:
        return "–" if value is None else f"{value:g}"

    def seconds(value: Any) -> str:
        return "–" if value is None else f"{value:,.0f} s"

    def pct(value: Any) -> str:
        return "–" if value is None else f"{100 * value:.1f} %"

    bucket = scope.get("bucket_s") or 0
    covers = (f" (a reading covers its {format_duration(bucket)} bucket: the one holding the start counts, and delays run "
              "to its end)") if bucket else ""
    caption = (f"caught: an anomaly (silences and schema changes count) on its entities within {scope['catch_within_s']:g} s "
               f"of its start{covers}; detected: one by its end; delays from its start, over the detected.\n"
               f"{scope['alerts']:,} alerts, {scope['entities']:,} entities, {scope['days']:g} days: "
               f"incident precision {pct(report['incident_precision'])}, "
               f"false alerts per 100 entities per day {number(report['false_alerts_per_100_entities_per_day'])}, "
               f"VUS-PR {number(report['vus_pr'])} (label rate {number(scope['label_rate'])})")
    table = Table(title="incidents", caption=caption, caption_justify="left", box=box.SIMPLE_HEAD,
                  collapse_padding=True, pad_edge=False)
    for name in ("kind", "incidents", "caught", "recall", "detected", "delay p50", "delay p90"):
        table.add_column(name, justify="left" if name == "kind" else "right", no_wrap=True)
    for kind, figures in kinds.items():
        table.add_row(kind, str(figures["incidents"]), str(figures["caught"]), pct(figures["recall"]), str(figures["detected"]),
                      seconds(figures["delay_median_s"]), seconds(figures["delay_p90_s"]))
    table.add_row("all", str(sum(f["incidents"] for f in kinds.values())), str(sum(f["caught"] for f in kinds.values())),
                  pct(report["incident_recall"]), str(sum(f["detected"] for f in kinds.values())), "", "", style="bold")
    return table


def _run_live(runner: Any, title: str) -> dict[str, Any]:
    """Run with the live view until the source ends or Ctrl-C; returns the summary."""
    from tocsin.cli.live import LiveView

    schema = runner.spec.event_schema
    view = LiveView(title, Words.of(schema.key_field, schema.label_field), "readings" if runner.spec.aggregate is not None else "events")
    with Live(view.render(), console=console, refresh_per_second=4, transient=False) as live:
        def on_batch(scored: Any, stats: Any) -> None:
            view.update(scored, stats)
            live.update(view.render())

        runner.on_batch = on_batch
        previous = signal.getsignal(signal.SIGTERM)
        signal.signal(signal.SIGTERM, lambda *_: runner.stop())
        try:
            if runner.restore():
                console.print(f"resuming at position {runner.resumed_at:,} from the last checkpoint (--fresh starts over)")
            runner.run()
        except KeyboardInterrupt:
            console.print("stopping…")
        finally:
            signal.signal(signal.SIGTERM, previous)
        live.update(view.render())
    summary = runner.stats.summary()
    by_type = view.recall_by_type()
    if by_type:
        summary["recall_by_type"] = {k: round(v, 4) for k, v in by_type.items()}
    return summary


def _fail_if_nothing_was_decided(runner: Any, summary: dict[str, Any], json_out: Path | None) -> None:
    """A run that scored nothing says why (top dead-letter reasons, a warm-up longer than the data,
    nothing after the checkpoint) and exits 1, so scripts and CI notice."""
    problem = runner.problem()
    if problem is None:
        return
    summary["problem"] = problem
    write_json(json_out, summary)
    console.print(f"[red]{problem}[/]")
    raise typer.Exit(1)


@app.command()
def demo(
    scenario: Scenario = typer.Option(Scenario.transactions, help="transactions: card payments with fraud; hosts: host "
                                          "metrics (cpu, memory, network) with incidents; requests: microservice request logs "
                                          "with incidents, as per-service readings each minute; sensors: IoT sensor readings "
                                          "(temperature, vibration) with incidents; logins: login and access events with attacks; "
                                          "behaviour: a shop's page views with bots; retail: store sales with incidents; quality: "
                                          "hourly table loads with data-quality incidents"),
    events: Optional[int] = typer.Option(None, help="stop after this many events (default: run until Ctrl-C)"),
    rate: float = typer.Option(20_000, help="events per second the simulator feeds (0 = as fast as possible)"),
    users: Optional[int] = typer.Option(None, min=1, help="transactions: simulated cards [default: the spec's, 5,000]"),
    hosts: Optional[int] = typer.Option(None, min=1, help="hosts: simulated hosts, one reading each a minute [default: the spec's, 200]"),
    services: Optional[int] = typer.Option(None, min=1, help="requests: simulated services [default: the spec's, 20]"),
    sensors: Optional[int] = typer.Option(None, min=1, help="sensors: simulated sensors, one reading each 10 s [default: the spec's, 40]"),
    accounts: Optional[int] = typer.Option(None, min=10, help="logins: simulated accounts [default: the spec's]"),
    visitors: Optional[int] = typer.Option(None, min=10, help="behaviour: people browsing in a day [default: the spec's]"),
    stores: Optional[int] = typer.Option(None, min=1, help="retail: simulated stores [default: the spec's]"),
    tables: Optional[int] = typer.Option(None, min=1, help="quality: simulated tables [default: the spec's]"),
    seed: int = typer.Option(7, help="simulator seed: the same seed gives the same stream"),
    state_dir: Path = typer.Option(Path(".tocsin/demo"), help="where the demo keeps its store and checkpoints (cleared at start)"),
    json_out: Optional[Path] = typer.Option(None, "--json", help="also write the summary to this file"),
    api_port: int = typer.Option(8000, help="serve the API and live dashboard on 127.0.0.1 at this port (0: off)"),
) -> None:
    """A simulated stream (card transactions by default; host metrics, request logs, sensor readings, logins, page views,
    store sales or table loads with --scenario) →
    the scenario's reference pipeline → SQLite store, with a live view and dashboard; Ctrl-C to stop."""
    from tocsin.engine.runner import Runner
    from tocsin.sources.simulator import SimulatorSource
    from tocsin.store.sql import Store

    subject, count_field = DEMO_SUBJECTS[scenario]
    spec = load_spec_or_exit(SPECS / f"{scenario.value}.yaml")
    count = {"users": users, "hosts": hosts, "services": services, "sensors": sensors, "accounts": accounts, "visitors": visitors,
             "stores": stores, "tables": tables}[count_field]
    source_spec = spec.source.model_copy(update={count_field: count if count is not None else getattr(spec.source, count_field), "seed": seed})
    shutil.rmtree(state_dir, ignore_errors=True)
    state_dir.mkdir(parents=True, exist_ok=True)
    spec = spec.model_copy(
        update={
            "source": source_spec,
            "store": spec.store.model_copy(update={"url": f"sqlite:///{state_dir / 'demo.db'}"}),
            "checkpoint": spec.checkpoint.model_copy(update={"dir": state_dir / "checkpoints"}),
        }
    )
    words = Words.of(spec.event_schema.key_field, spec.event_schema.label_field)
    rows = "events"
    if spec.aggregate is not None:  # request logs become readings, one per service per minute
        every = "minute" if spec.aggregate.every == 60 else f"{spec.aggregate.every:g} s"
        rows = f"readings (one per {words.entity} per {every})"
    elif spec.quality is not None:  # table rows become readings of their health, one per measure per table per hour
        rows = f"readings (one per measure per {words.entity} per {format_duration(spec.quality.every)})"
    console.print(
        f"[b]tocsin demo[/]: {getattr(source_spec, count_field):,} simulated {words.entities}, {words.labels} injected after "
        f"day {source_spec.warmup_days:g}; the detector trains on the first {spec.detector.warmup_events:,} {rows}, then scores live. "
        f"Store: {state_dir / 'demo.db'}"
    )
    source = SimulatorSource(source_spec, rate=rate, max_events=events)
    runner = Runner(spec, source, store=Store(spec.store.url))
    api = None
    if api_port:
        from tocsin.cli.serve import start_demo_api

        api = start_demo_api(runner, port=api_port)  # auth off, loopback only, shares the runner's pipeline and store
        console.print(f"dashboard: [b]{api.url}/dashboard/[/]   API docs: {api.url}/docs")
    try:
        summary = _run_live(runner, f"tocsin demo — {subject}")
    finally:
        if api is not None:
            api.stop()
    console.print(_summary_table(summary, "demo summary"))
    _fail_if_nothing_was_decided(runner, summary, json_out)
    write_json(json_out, summary)


@app.command()
def run(
    spec_path: Path = typer.Argument(..., metavar="SPEC", help="pipeline spec (YAML)"),
    events: Optional[int] = typer.Option(None, help="stop after this many events"),
    rate: float = typer.Option(0, help="simulator sources only: events per second (0 = as fast as possible)"),
    fresh: bool = typer.Option(False, help="ignore and replace existing checkpoints"),
    json_out: Optional[Path] = typer.Option(None, "--json", help="write the run summary to this file"),
    workers: int = typer.Option(1, help="worker processes in the consumer group (Kafka sources)"),
    metrics_port: Optional[int] = typer.Option(
        None, help="serve Prometheus metrics on this port (worker i of --workers N: port + i); default: the spec's metrics.port"),
) -> None:
    """Run a pipeline from its spec; resumes from the last checkpoint (Kafka sources: a group of workers)."""
    from tocsin.engine.runner import Runner
    from tocsin.sources.file import FileSource
    from tocsin.sources.simulator import SimulatorSource
    from tocsin.spec import FileSource as FileSourceSpec

    spec = load_spec_or_exit(spec_path)
    if metrics_port is not None:
        spec = spec.model_copy(update={"metrics": spec.metrics.model_copy(update={"port": metrics_port})})
    if spec.source.kind == "kafka":
        return run_workers(spec, workers)
    if isinstance(spec.source, FileSourceSpec):
        source = FileSource(spec.source.path, spec.source.format)
    else:
        source = SimulatorSource(spec.source, rate=rate, max_events=events)
    runner = Runner(spec, source)
    if fresh:
        runner.checkpoints.delete(runner.partition)
    server = runner.core.metrics.serve(spec.metrics.host, spec.metrics.port) if spec.metrics.port is not None else None
    if server is not None:
        console.print(f"metrics: {server.url}/metrics")
    try:
        summary = _run_live(runner, f"tocsin run — {spec.name}")
    finally:
        if server is not None:
            server.stop()
    console.print(_summary_table(summary, f"{spec.name} summary"))
    _fail_if_nothing_was_decided(runner, summary, json_out)
    write_json(json_out, summary)


@app.command()
def backtest(
    spec_path: Path = typer.Argument(..., metavar="SPEC", help="pipeline spec (YAML)"),
    data: Path = typer.Option(..., help="history to replay: .jsonl, .json, .csv or .parquet"),
    label_column: Optional[str] = typer.Option(None, help="column with ground truth (1 = anomaly)"),
    json_out: Optional[Path] = typer.Option(None, "--json", help="write the report to this file"),
    scores: Optional[Path] = typer.Option(None, help="write every scored event (id, entity, time, score, decision, label) to this .csv or .parquet"),
    label_delay: Optional[str] = typer.Option(None, help="with --scores: labels become known this long after the event (e.g. 7d)"),
    top_k: int = typer.Option(100, min=1, help="entity precision in each day's top K"),
    test_days: float = typer.Option(7.0, min=0.0, help="also report the metrics over the final N days of event time"),
    incidents: Optional[Path] = typer.Option(None, help="incident table (JSON, as `tocsin simulate` writes OUT.incidents.json): "
                                             "also report incident-level recall, detection delay, precision, false alerts and VUS-PR"),
    catch_within: str = typer.Option("5m", help="with --incidents: an incident is caught by an anomaly this soon after its start"),
    warmup_days: float = typer.Option(0.0, min=0.0, help="with --incidents: leave out incidents and alerts of the first N days"),
) -> None:
    """Replay history through the pipeline: precision, recall, F1, AUCPR, AUC-ROC, daily top-k precision,
    alerts per 1,000 events; with --incidents, the incident-level figures (docs/quality.md)."""
    from rich.progress import Progress

    from tocsin.engine.backtest import backtest as run_backtest
    from tocsin.engine.backtest import count_records
    from tocsin.engine.incidents import load_incidents

    from tocsin.durations import parse_duration

    spec = load_spec_or_exit(spec_path)
    if not data.exists():
        console.print(f"[red]--data {data}: no such file[/]")
        raise typer.Exit(2)
    incident_table = None
    if incidents is not None:
        try:
            incident_table = load_incidents(incidents)
            catch = parse_duration(catch_within)
        except (OSError, ValueError) as error:
            console.print(f"[red]--incidents / --catch-within: {error}[/]")
            raise typer.Exit(2) from None
    if scores is not None and scores.suffix.lower() not in (".csv", ".parquet", ".pq"):
        console.print(f"[red]--scores {scores}: name a .csv or .parquet file[/]")
        raise typer.Exit(2)
    try:
        delay = parse_duration(label_delay) if label_delay else 0.0
    except ValueError as error:
        console.print(f"[red]--label-delay: {error}[/]")
        raise typer.Exit(2) from None
    with Progress(console=console, transient=True) as progress:
        task = progress.add_task(f"replaying {data.name}", total=count_records(data))
        report = run_backtest(spec, data, label_column, progress=lambda n: progress.advance(task, n), scores_path=scores,
                              label_delay=delay, top_k=top_k, test_days=test_days, incidents=incident_table,
                              catch_within=catch if incident_table is not None else 300.0, warmup_days=warmup_days)
    shown = {k: v for k, v in report.items() if k not in ("problem", "incidents")}
    console.print(_summary_table(shown, f"backtest of {spec.name} on {data.name}"))
    if "incidents" in report:
        console.print(_incident_table(report))
    write_json(json_out, report)
    if report["problem"]:
        console.print(f"[red]{report['problem']}[/]")
        raise typer.Exit(1)


@app.command()
def simulate(
    out: Path = typer.Option(..., help="file to write: .jsonl, .csv or .parquet"),
    scenario: Scenario = typer.Option(Scenario.transactions, help="transactions: card payments with fraud; "
                                              "hosts: host metric readings, requests: microservice request logs, "
                                              "sensors: IoT sensor readings, each with incidents"),
    events: int = typer.Option(200_000, help="number of events"),
    users: int = typer.Option(5_000, help="transactions: simulated cards"),
    fraud_rate: float = typer.Option(0.004, help="transactions: share of events that are injected fraud"),
    compromised_merchants: int = typer.Option(0, min=0, help="transactions: merchants whose stolen-card fraud looks normal (only labels reveal it)"),
    compromised_share: float = typer.Option(0.3, min=0.001, max=1.0, help="transactions: share of a compromised merchant's transactions that are fraud"),
    hosts: int = typer.Option(200, min=1, help="hosts: simulated hosts (one reading each a minute)"),
    services: int = typer.Option(20, min=1, help="requests: simulated services"),
    request_rate: float = typer.Option(0.8, min=0.001, max=1_000.0, help="requests: requests per second of a typical service at its weekday peak"),
    sensors: int = typer.Option(40, min=1, help="sensors: simulated sensors (one reading each 10 s)"),
    accounts: int = typer.Option(2_000, min=10, help="logins: user accounts"),
    visitors: int = typer.Option(1_000, min=10, help="behaviour: people browsing the site in a day"),
    stores: int = typer.Option(20, min=1, help="retail: stores"),
    tables: int = typer.Option(12, min=1, help="quality: tables loading a batch of rows each hour (JSON lines only)"),
    incident_rate: Optional[float] = typer.Option(None, min=0.0, max=10.0, help="every scenario but transactions: incidents per entity "
                                                  "per day after the first day [default: the scenario's, e.g. 0.03 per host]"),
    seed: int = typer.Option(7),
) -> None:
    """Write a labelled dataset to a file: card transactions (is_fraud, fraud_type), or host metrics, request logs
    or sensor readings (is_incident, incident; the incident table goes to OUT.incidents.json)."""
    from tocsin.sources.file import infer_format
    from tocsin.simulate import TransactionSimulator, simulator_class, write_events
    from tocsin.simulate.daily import write_fields

    try:
        fmt = infer_format(out)
    except ValueError as error:
        console.print(f"[red]{error}[/]")
        raise typer.Exit(2) from None
    out.parent.mkdir(parents=True, exist_ok=True)
    fmt = "jsonl" if fmt == "json" else fmt
    if scenario is not Scenario.transactions:
        params: dict[str, float] = {
            Scenario.hosts: {"hosts": hosts},
            Scenario.requests: {"services": services, "request_rate": request_rate},
            Scenario.sensors: {"sensors": sensors},
            Scenario.logins: {"accounts": accounts},
            Scenario.behaviour: {"visitors": visitors},
            Scenario.retail: {"stores": stores},
            Scenario.quality: {"tables": tables},
        }[scenario]
        if incident_rate is not None:
            params["incident_rate"] = incident_rate
        incident_simulator = simulator_class(scenario.value)(**params, seed=seed)
        batch = incident_simulator.generate(events)
        if hasattr(incident_simulator, "write"):  # rows that change shape (quality) are written as they are
            try:
                incident_simulator.write(batch, out, fmt)
            except ValueError as error:
                console.print(f"[red]{error}[/]")
                raise typer.Exit(2) from None
        else:
            write_fields(batch, incident_simulator.FIELDS, out, fmt)
        incidents_path = Path(f"{out}.incidents.json")
        # the first and last event time (a stream in load order, quality's, is not in time order)
        span = (float(batch.times.min()), float(batch.times.max())) if len(batch) else (incident_simulator.start_time,) * 2
        # every incident that starts by the last event (times have millisecond resolution)
        table = incident_simulator.incidents(span[1] + 0.001) if len(batch) else []
        incidents_path.write_text(json.dumps({"from": span[0], "to": span[1], "events": len(batch), "incidents": table}, indent=1) + "\n")
        console.print(f"wrote {len(batch):,} events ({int(batch.labels.sum()):,} in incidents) to {out} "
                      f"and {len(table):,} incidents to {incidents_path}")
        return
    simulator = TransactionSimulator(users=users, fraud_rate=fraud_rate, seed=seed, compromised_merchants=compromised_merchants,
                                     compromised_share=compromised_share)
    batch = simulator.generate(events)
    write_events(batch, out, fmt)
    console.print(f"wrote {len(batch):,} events ({int(batch.labels.sum()):,} fraud) to {out}")


def main() -> None:  # pragma: no cover - console entry point
    app()


if __name__ == "__main__":  # pragma: no cover
    app()
