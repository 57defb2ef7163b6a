"""Training a model version from history: the live pipeline replayed, its detector fitted, a tail held out.

``tocsin train SPEC --data FILE`` replays the file through the same
:class:`~tocsin.engine.pipeline.Pipeline` as a live run (same decoding, admission,
features, warm-up and refits: no train/serve skew), then fits the detector and
its calibration on the most recent ``detector.train_window`` feature rows of the
training part. With labels, the last ``holdout`` share of the records is held
out: the frozen model scores it (no refits, no peeking) and its quality is the
version's metrics. ``until`` stops the training part at an event time, for
training on the past and evaluating later.

The result is a :class:`~tocsin.registry.ModelVersion` (what it was trained for,
on what, how well) and its arrays, ready for :meth:`tocsin.registry.Registry.register`.
"""

from __future__ import annotations

import getpass
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.metrics import average_precision_score, roc_auc_score

from tocsin import __version__
from tocsin.engine.backtest import count_records, with_file_source
from tocsin.engine.pipeline import Pipeline
from tocsin.registry import ModelVersion, model_sections, spec_hash
from tocsin.sources.file import FileSource
from tocsin.spec import PipelineSpec


def train_model(
    spec: PipelineSpec,
    data: Path,
    *,
    label_column: str | None = None,
    until: float | None = None,
    holdout: float = 0.2,
    created_by: str | None = None,
    note: str = "",
    progress: Callable[[int], None] | None = None,
) -> tuple[ModelVersion, dict[str, np.ndarray]]:
    """Replay ``data``, fit, evaluate on the held-out tail (when labelled): the version and its arrays."""
    if not 0 <= holdout < 1:
        raise ValueError(f"holdout must be in [0, 1), got {holdout}")
    spec = with_file_source(spec, Path(data), label_column)
    records = count_records(Path(data))
    labelled = spec.event_schema.label_field is not None
    train_records = int(records * (1 - holdout)) if labelled and records and holdout else None
    pipeline = Pipeline(spec)
    source = FileSource(Path(data), spec.source.format)
    batch_size = spec.runner.batch_size
    trained = {"rows": 0, "first": np.inf, "last": -np.inf}
    reference = _Reservoir(REFERENCE_ROWS)
    held_scores: list[np.ndarray] = []
    held_labels: list[np.ndarray] = []
    training = True
    while True:
        raw = source.read(batch_size, 0.0)
        if raw is None:
            break
        if not len(raw):
            continue
        events, dead = pipeline.decode(raw, source.name)
        if training and (until is not None or train_records is not None):
            cut = np.ones(len(events), dtype=bool)
            if until is not None:
                cut &= events.times < until
            if train_records is not None:
                cut &= events.positions < train_records
            if not cut.all():
                if cut.any():
                    _fold(pipeline, events.take(cut), trained, source.name, reference)
                _finish_training(pipeline, reference)
                training = False
                events = events.take(~cut)
                if train_records is None:  # --until without a holdout: the rest is not used
                    break
        if training:
            _fold(pipeline, events, trained, source.name, reference)
        else:
            scored = pipeline.process(events, source.name)
            if scored.events.labels is not None and scored.scored is not None:
                held_scores.append(scored.score[scored.scored])
                held_labels.append(scored.events.labels[scored.scored])
        if progress is not None:
            progress(len(raw))
    if training:
        _finish_training(pipeline, reference)
    arrays = pipeline.model_arrays()
    metrics = _metrics(held_scores, held_labels, pipeline)
    version = ModelVersion(
        pipeline=spec.name, spec_hash=spec_hash(spec), feature_names=list(pipeline.feature_names),
        detector=spec.detector.kind, sections=model_sections(spec),
        trained_from=float(trained["first"]) if trained["rows"] else None,
        trained_until=float(trained["last"]) if trained["rows"] else None,
        rows=int(trained["rows"]), metrics=metrics, tocsin_version=__version__,
        created_by=created_by or _whoami(), created_at=time.time(), note=note,
    )
    return version, arrays


def _fold(pipeline: Pipeline, events: Any, trained: dict[str, float], source: str, reference: _Reservoir) -> None:
    scored = pipeline.process(events, source)
    if scored.features is not None and scored.scored is not None and scored.scored.any():
        X = scored.features.X[scored.scored]  # after the warm-up: entity state has begun to mature
        reference.add(X[:, pipeline._columns] if len(pipeline._columns) != X.shape[1] else X)
    if len(scored):
        trained["rows"] += len(scored)
        trained["first"] = min(trained["first"], float(scored.events.times.min()))
        trained["last"] = max(trained["last"], float(scored.events.times.max()))


def _finish_training(pipeline: Pipeline, reference: _Reservoir) -> None:
    """Fit on the most recent training rows (what the live pipeline would refit on now), freeze, and make
    the whole history (a sample of it: weekly cycles included) the reference drift is measured against."""
    if len(pipeline.training) < pipeline.spec.detector.warmup_events:
        raise ValueError(
            f"the training part held {len(pipeline.training):,} events, fewer than detector.warmup_events "
            f"({pipeline.spec.detector.warmup_events:,}): give more history, or a later --until / a smaller --holdout"
        )
    pipeline.fit(pipeline.training.rows())
    pipeline.frozen = True
    rows = reference.rows()
    pipeline.drift.set_reference(rows, pipeline.detector.score_samples(np.ascontiguousarray(rows)))


#: feature rows of the whole training part kept as the drift reference (a uniform sample)
REFERENCE_ROWS = 20_000


class _Reservoir:
    """A uniform sample of at most ``size`` rows of a stream of row blocks (reservoir sampling, seeded:
    the same history gives the same sample)."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.seen = 0
        self.kept: np.ndarray | None = None
        self.rng = np.random.default_rng(0)

    def add(self, X: np.ndarray) -> None:
        if self.kept is None:
            self.kept = np.empty((0, X.shape[1]))
        room = self.size - len(self.kept)
        if room > 0:
            self.kept = np.vstack([self.kept, X[:room]])
            self.seen += min(room, len(X))
            X = X[room:]
        if not len(X):
            return
        # each later row replaces a kept one with probability size / (rows seen so far)
        index = self.seen + np.arange(1, len(X) + 1)
        slots = (self.rng.random(len(X)) * index).astype(np.int64)
        for row in np.flatnonzero(slots < self.size).tolist():
            self.kept[slots[row]] = X[row]
        self.seen += len(X)

    def rows(self) -> np.ndarray:
        return self.kept if self.kept is not None else np.empty((0, 0))


def _metrics(scores: list[np.ndarray], labels: list[np.ndarray], pipeline: Pipeline) -> dict[str, float | None]:
    if not scores:
        return {}
    s, y = np.concatenate(scores), np.concatenate(labels).astype(bool)
    flagged = s >= pipeline.threshold.current
    positives = int(y.sum())
    metrics: dict[str, float | None] = {"holdout_events": float(len(s)), "holdout_positives": float(positives)}
    both = 0 < positives < len(y)
    metrics["aucroc"] = float(roc_auc_score(y, s)) if both else None
    metrics["aucpr"] = float(average_precision_score(y, s)) if both else None
    metrics["precision"] = float((flagged & y).sum() / flagged.sum()) if flagged.any() else None
    metrics["recall"] = float((flagged & y).sum() / positives) if positives else None
    metrics["alerts_per_1000"] = float(1000 * flagged.mean())
    return metrics


def _whoami() -> str:
    try:
        return getpass.getuser()
    except Exception:  # noqa: BLE001 - no user name in some containers
        return "unknown"
