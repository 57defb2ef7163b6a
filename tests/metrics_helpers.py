"""What the Grafana dashboard (``deploy/grafana/tocsin.json``) queries, for the tests that check it is exported.

The dashboard's panels before its first row are the overview every driver feeds (the API included);
the panels under the row titled :data:`WORKERS_ROW` need a runner or a Kafka worker (consumer lag,
rebalances, partitions owned, ...).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

DEPLOY = Path(__file__).resolve().parents[1] / "deploy"
WORKERS_ROW = "Workers and runners"
#: the prefixes of the metric names a query can use: tocsin's own, and the process collector's
METRIC_PREFIXES = ("tocsin_", "process_")


def grafana_queries() -> dict[str, list[str]]:
    """Every query of the dashboard by the title of the row its panel sits under ("" before the first row;
    the template variables' queries there too)."""
    dashboard = json.loads((DEPLOY / "grafana" / "tocsin.json").read_text())
    queries: dict[str, list[str]] = {"": [v["query"] for v in dashboard["templating"]["list"] if v["type"] == "query"]}
    row = ""
    for panel in dashboard["panels"]:
        if panel["type"] == "row":
            row = panel["title"]
            panel_list = panel.get("panels", [])  # a collapsed row holds its panels
        else:
            panel_list = [panel]
        for p in panel_list:
            queries.setdefault(row, []).extend(t["expr"] for t in p.get("targets", []))
    return queries


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression reads (label matchers and ranges stripped)."""
    expr = re.sub(r"\{[^}]*\}", "", expr)  # label matchers
    expr = re.sub(r"\[[^]]*\]", "", expr)  # ranges
    return {w for w in re.findall(r"[a-zA-Z_:][a-zA-Z0-9_:]*", expr) if w.startswith(METRIC_PREFIXES)}


def grafana_metric_names(row: str | None = "") -> set[str]:
    """The metric names the panels under ``row`` query ("": the overview, every driver; None: all rows)."""
    queries = grafana_queries()
    exprs = [e for title, listed in queries.items() if row is None or title == row for e in listed]
    return set().union(*map(metric_names, exprs))
