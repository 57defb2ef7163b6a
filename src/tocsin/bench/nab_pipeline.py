"""NAB through the real Pipeline: each file is one entity's series, scored the way users' events are.

The side-path configurations of :mod:`tocsin.detectors.timeseries` score a
file's values directly; this one builds a :class:`~tocsin.engine.pipeline.Pipeline`
from a spec (``schema`` with no id field, ``features: [{kind: series}]``,
``detector: max_surprise`` over the series' surprise) and feeds it the file as
records ``{ts, value, series}`` in micro-batches, so the figure measures the
decode, per-series state, detector, calibration and batch cuts users get. A
file's rows before the detector's warm-up score 0 (NAB's probationary period
covers them).

Good at: telling whether the per-series family, as shipped, holds up on real
series. Where it fails: one pipeline per file (NAB files span different
years; the admission clock of one shared stream would refuse them).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from tocsin.engine.pipeline import Pipeline
from tocsin.spec import PipelineSpec, parse_spec

#: the configuration name under ``tocsin bench nab --detector``
PIPELINE = "pipeline"
#: the series feature's settings for NAB (defaults of ``kind: series`` unless named)
DEFAULT_SERIES: dict[str, Any] = {"season": "daily"}
BATCH = 500


def nab_spec(series: dict[str, Any] | None = None, warmup: int = 100) -> PipelineSpec:
    """The spec each NAB file runs under: one series per file, scored by its surprise (max_surprise)."""
    return parse_spec({
        "name": "nab",
        "source": {"kind": "file", "path": "nab.csv"},
        "schema": {"id_field": None, "key_field": "series", "numeric": ["value"]},
        "admission": {"max_ahead": None, "max_behind": None, "dedup_ids": None},
        "features": [{"kind": "series", "field": "value", **DEFAULT_SERIES, **(series or {})}],
        "detector": {"kind": "max_surprise", "warmup_events": warmup, "refit_every": None, "train_window": warmup},
        "calibration": {"update_every": 50, "window": 5_000},
    })  # fmt: skip


class PipelineSeriesScorer:
    """A NAB configuration whose scores come from a fresh Pipeline per file (see the module docstring)."""

    def __init__(self, **series: Any) -> None:
        self.series = series

    def get_params(self) -> dict[str, Any]:
        return {**DEFAULT_SERIES, **self.series}

    def score_partial_fit(self, values: np.ndarray, timestamps: np.ndarray) -> np.ndarray:
        pipeline = Pipeline(nab_spec(self.series))
        seconds = np.asarray(timestamps, dtype="datetime64[s]").astype(np.int64).astype(float)
        records = [{"ts": t, "value": v, "series": "nab"} for t, v in zip(seconds.tolist(), np.asarray(values, float).tolist())]
        scores = np.zeros(len(records))
        for start in range(0, len(records), BATCH):
            scored = pipeline.process_records(records[start:start + BATCH], source="nab")
            if scored.dead_letters:
                raise ValueError(f"NAB rows refused by the pipeline: {scored.dead_letters[0].reason}")
            scores[start:start + len(scored)] = np.nan_to_num(scored.score, nan=0.0)
        return scores
