"""A challenger in shadow: it scores every event beside the champion and raises no alert.

The challenger (the version the registry's ``challenger`` alias names) scores the
same feature rows as the champion, with its own frozen calibration and threshold.
What each batch tells about the two — how many anomalies each flagged and how
many both did, the distributions of their calibrated scores, and with labels how
many of each one's anomalies were real — is one row of ``model_comparisons``,
keyed by the stream and the batch's last position, so a replay rewrites the
same rows. ``tocsin models compare`` and the dashboard sum them.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from tocsin.detectors import build_detector
from tocsin.detectors.calibration import ScoreCalibrator
from tocsin.detectors.thresholds import build_threshold
from tocsin.engine.pipeline import Pipeline, ScoredBatch
from tocsin.spec import PipelineSpec

#: score distributions are kept as counts in this many bins of [0, 1]
SCORE_BINS = 20


class ShadowModel:
    """A model version's detector, calibration and threshold, frozen, scoring beside the champion."""

    def __init__(self, spec: PipelineSpec, feature_names: list[str], version: int, arrays: dict[str, np.ndarray]) -> None:
        self.version = version

        def part(prefix: str) -> dict[str, np.ndarray]:
            return {k[len(prefix) + 1:]: v for k, v in arrays.items() if k.startswith(prefix + "/")}

        self.detector = build_detector(spec.detector.kind, spec.detector.params, feature_names)
        self.detector.load_state_dict(part("detector"))
        self.calibrator = ScoreCalibrator(window=spec.calibration.window, tail_quantile=spec.calibration.tail_quantile)
        self.calibrator.load_state_dict(part("calibrator"))
        self.threshold = build_threshold(spec.threshold)
        self.threshold.load_state_dict(part("threshold"))

    def compare(self, pipeline: Pipeline, scored: ScoredBatch, stream: str, position: int) -> dict[str, Any] | None:
        """The comparison row of one batch (None when the champion scored nothing in it)."""
        if scored.scored is None or scored.features is None or not scored.scored.any():
            return None
        rows = np.flatnonzero(scored.scored)
        X = scored.features.X[:, pipeline._columns] if len(pipeline._columns) != scored.features.X.shape[1] else scored.features.X
        shadow = self.calibrator.transform(self.detector.score_samples(np.ascontiguousarray(X[rows])))
        champion = scored.score[rows]
        mine, theirs = scored.is_anomaly[rows], shadow >= self.threshold.current
        labels = scored.events.labels
        labelled = labels is not None
        truth = labels[rows].astype(bool) if labelled else np.zeros(len(rows), dtype=bool)
        return {
            "stream": stream, "position": int(position), "champion": int(pipeline.model_version), "challenger": int(self.version),
            "events": len(rows), "champion_anomalies": int(mine.sum()), "challenger_anomalies": int(theirs.sum()),
            "both_anomalies": int((mine & theirs).sum()), "labelled": len(rows) if labelled else 0,
            "positives": int(truth.sum()), "champion_true": int((mine & truth).sum()), "challenger_true": int((theirs & truth).sum()),
            "champion_scores": _histogram(champion), "challenger_scores": _histogram(shadow),
        }


def _histogram(scores: np.ndarray) -> list[int]:
    return np.histogram(np.clip(scores, 0.0, 1.0), bins=SCORE_BINS, range=(0.0, 1.0))[0].tolist()


def summarize(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Comparison rows (of one champion/challenger pair) summed: overlap, rates, and precision/recall
    where labels exist."""
    keys = ("events", "champion_anomalies", "challenger_anomalies", "both_anomalies", "labelled", "positives",
            "champion_true", "challenger_true")
    total = {k: int(sum(r[k] for r in rows)) for k in keys}
    total["champion_scores"] = np.sum([r["champion_scores"] for r in rows], axis=0).astype(int).tolist() if rows else [0] * SCORE_BINS
    total["challenger_scores"] = np.sum([r["challenger_scores"] for r in rows], axis=0).astype(int).tolist() if rows else [0] * SCORE_BINS
    either = total["champion_anomalies"] + total["challenger_anomalies"] - total["both_anomalies"]
    total["overlap"] = total["both_anomalies"] / either if either else None
    for side in ("champion", "challenger"):
        flagged, true = total[f"{side}_anomalies"], total[f"{side}_true"]
        total[f"{side}_precision"] = true / flagged if total["labelled"] and flagged else None
        total[f"{side}_recall"] = true / total["positives"] if total["labelled"] and total["positives"] else None
    return total


def comparison(store: Any, pipeline: str, challenger: int | None = None) -> dict[str, Any] | None:
    """The latest challenger's comparison with the champion(s) it ran beside (or ``challenger``'s), summed
    over every batch it scored; None when no challenger has scored yet."""
    rows = store.model_comparisons(pipeline, challenger)
    if not rows:
        return None
    latest = rows[-1]["challenger"] if challenger is None else challenger
    mine = [row for row in rows if row["challenger"] == latest]
    champions = sorted({row["champion"] for row in mine})
    return {"pipeline": pipeline, "challenger": latest, "champion": champions[-1], "champions": champions,
            "batches": len(mine), **summarize(mine)}
