"""Backtests: the live pipeline replayed over a labelled file, with quality metrics.

The replay goes through the same :class:`Runner` and :class:`Pipeline` as a
live run (same features, same warm-up, same online calibration), so what a
backtest reports is what the live pipeline would have done on that history.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.metrics import average_precision_score, roc_auc_score

from tocsin.engine.pipeline import ScoredBatch
from tocsin.engine.runner import Runner, RunStats
from tocsin.sources.file import FileSource
from tocsin.spec import FileSource as FileSourceSpec
from tocsin.spec import PipelineSpec
from tocsin.store.sql import Store


def with_file_source(spec: PipelineSpec, path: Path, label_column: str | None) -> PipelineSpec:
    """The spec reading ``path`` instead of its own source, with ``label_column`` as ground truth."""
    schema = spec.event_schema
    if label_column:
        if label_column in {*schema.numeric, *schema.categorical, schema.id_field, schema.key_field, schema.time_field} - {None}:
            raise ValueError(f"--label-column {label_column!r} is also a scored field of the schema; labels must not be scored")
        schema = schema.model_copy(update={"label_field": label_column})
    source = FileSourceSpec(kind="file", path=Path(path))
    return spec.model_copy(update={"source": source, "event_schema": schema})


def count_records(path: Path) -> int | None:
    """Records in a file, cheaply (lines for JSON lines, row count for Parquet), or None if unknown."""
    suffix = path.suffix.lower()
    if suffix in (".jsonl", ".ndjson"):
        with open(path, "rb") as handle:
            return sum(chunk.count(b"\n") for chunk in iter(lambda: handle.read(1 << 20), b""))
    if suffix in (".parquet", ".pq"):
        import pyarrow.parquet as pq

        return pq.ParquetFile(path).metadata.num_rows
    return None


def backtest(
    spec: PipelineSpec,
    path: Path,
    label_column: str | None,
    store_url: str = "sqlite://",
    progress: Callable[[int], None] | None = None,
) -> dict[str, Any]:
    """Replay ``path`` through the pipeline from a fresh state and report quality and speed."""
    spec = with_file_source(spec, path, label_column)
    scores: list[np.ndarray] = []
    labels: list[np.ndarray] = []

    def collect(scored: ScoredBatch, stats: RunStats) -> None:
        if scored.events.labels is not None and scored.scored is not None:
            scores.append(scored.score[scored.scored])
            labels.append(scored.events.labels[scored.scored])
        if progress is not None:
            progress(len(scored) + len(scored.dead_letters))

    source = FileSource(path, spec.source.format)
    # history sends nothing and follows no registry: the pipeline's own fits, as it replays
    runner = Runner(spec, source, store=Store(store_url), checkpoints=False, on_batch=collect, dispatch=False, follow=False)
    stats = runner.run(resume=False)
    report: dict[str, Any] = stats.summary()
    report["warmup_events"] = stats.events - stats.scored
    report["alerts_per_1000"] = round(1000.0 * stats.anomalies / stats.scored, 3) if stats.scored else None
    y = np.concatenate(labels) if labels else np.empty(0)
    s = np.concatenate(scores) if scores else np.empty(0)
    report["aucpr"] = float(average_precision_score(y, s)) if len(y) and 0 < y.sum() < len(y) else None
    report["aucroc"] = float(roc_auc_score(y, s)) if len(y) and 0 < y.sum() < len(y) else None
    report["positives"] = int(y.sum()) if len(y) else 0
    report["problem"] = runner.problem()  # None, or why nothing was scored
    return report
