"""The live terminal view of a run: throughput, anomalies, quality, latest alerts, in the pipeline's words
(hosts and incidents for host metrics, cards and fraud for payments: :class:`tocsin.vocabulary.Words`)."""

from __future__ import annotations

import datetime as dt
from collections import Counter, deque
from typing import Any

from rich.console import Group
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from tocsin.engine.pipeline import ScoredBatch
from tocsin.engine.runner import RunStats
from tocsin.vocabulary import Words

SEVERITY_STYLE = {"info": "cyan", "warning": "yellow", "critical": "bold red"}


class LiveView:
    """Keeps what the screen shows and renders it; fed by the runner's ``on_batch``."""

    def __init__(self, title: str, words: Words, events: str = "events", max_alerts: int = 8) -> None:
        self.title = title
        #: what the pipeline's schema calls its entities and its label
        self.words = words
        #: what the run's rows are called ("readings" where events are aggregated into readings)
        self.events = events
        self.alerts: deque[dict[str, Any]] = deque(maxlen=max_alerts)
        self.stats: RunStats | None = None
        self.warm = False
        self.truth_by_type: Counter[str] = Counter()
        self.caught_by_type: Counter[str] = Counter()

    def update(self, scored: ScoredBatch, stats: RunStats) -> None:
        self.stats = stats
        if scored.scored is not None and scored.scored.any():
            self.warm = True
        events, on_100 = scored.events, scored.score_100  # once: the property scales the whole batch
        for row in scored.anomaly_rows.tolist():
            self.alerts.appendleft(
                {
                    "time": float(events.times[row]),
                    "entity": str(events.keys[row]),
                    "score": float(on_100[row]),
                    "severity": scored.severity_name(row),
                    "why": "; ".join(item["text"] for item in scored.explanations.get(row, [])),
                    "truth": None if events.labels is None else int(events.labels[row]),
                }
            )
        for notice in scored.notices:  # an anomaly with no event: an entity gone quiet, a schema change
            self.alerts.appendleft({"time": float(notice["event_time"]), "entity": str(notice["entity"]),
                                    "score": float(notice["score_100"]), "severity": notice["severity"],
                                    "why": "; ".join(item["text"] for item in notice["explanation"]), "truth": None})
        types = next((events.extra[name] for name in self.words.label_kinds if name in events.extra), None)
        if types is not None and scored.scored is not None:
            rows = scored.scored & (events.labels == 1) if events.labels is not None else scored.scored
            self.truth_by_type.update(types[rows].tolist())
            self.caught_by_type.update(types[rows & scored.is_anomaly].tolist())

    def recall_by_type(self) -> dict[str, float]:
        return {t: self.caught_by_type[t] / n for t, n in sorted(self.truth_by_type.items()) if t and n}

    def render(self) -> Panel:
        stats = self.stats
        head = Table.grid(padding=(0, 3))
        if stats is None:
            return Panel(Text("starting…"), title=self.title)
        fmt = lambda v: "—" if v is None else f"{v:.3f}"  # noqa: E731
        head.add_row(
            f"[b]{stats.events:,}[/] {self.events}",
            f"[b]{stats.events_per_s:,.0f}[/] {self.events}/s",
            f"[b]{stats.anomalies:,}[/] anomalies",
            *(f"[{SEVERITY_STYLE[s]}]{s} {n:,}[/]" for s, n in stats.by_severity.items()),
        )
        status = "scoring live" if self.warm else "warming up: the detector trains on the first events"
        head.add_row(
            f"precision [b]{fmt(stats.precision)}[/]",
            f"recall [b]{fmt(stats.recall)}[/]",
            f"dead letters {stats.dead_letters:,}",
            f"batch p99 {stats.latency_ms(99):.1f} ms",
            status,
        )
        by_type = self.recall_by_type()
        if by_type:
            head.add_row(Text("recall by type: " + ", ".join(f"{t} {r:.2f}" for t, r in by_type.items()), style="dim"))
        alerts = Table(expand=True, show_edge=False, header_style="bold")
        for column, kwargs in (("event time", {"no_wrap": True}), (self.words.entity, {"no_wrap": True}), ("score", {"justify": "right"}),
                               ("severity", {}), ("why", {"ratio": 1}), ("label", {})):
            alerts.add_column(column, **kwargs)
        for alert in self.alerts:
            when = dt.datetime.fromtimestamp(alert["time"], dt.timezone.utc).strftime("%m-%d %H:%M:%S")
            label = {None: "", 1: f"[green]{self.words.label}[/]", 0: f"[dim]{self.words.negative}[/]"}[alert["truth"]]
            alerts.add_row(when, alert["entity"], f"{alert['score']:.2f}",
                           f"[{SEVERITY_STYLE[alert['severity']]}]{alert['severity']}[/]", alert["why"], label)
        return Panel(Group(head, Text(""), Text("latest anomalies", style="bold"), alerts), title=self.title)
