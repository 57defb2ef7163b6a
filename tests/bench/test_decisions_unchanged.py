"""The speed work (issue 19) must not change a decision: the reference pipeline over the benchmark's events
gives the same scores, flags, severities and explanations as the code before it, recorded in
``data/throughput_decisions.json`` by ``python tests/bench/test_decisions_unchanged.py --record`` at commit
4bbfa36 (before any of that work). Scores are compared after rounding to 10 decimals, so a summation order
that moves the 16th digit does not count as a change; any flip of a flag or a severity does.

A real change of decisions (a new feature in the reference spec, a better detector) re-records the file and
says so in its commit."""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

import numpy as np
import pytest

from tocsin.bench.throughput import SOURCE_NAME, generate_lines, reference_spec
from tocsin.engine.pipeline import Pipeline
from tocsin.sources.base import SourceBatch

GOLDEN = Path(__file__).parent / "data" / "throughput_decisions.json"
EVENTS, USERS, SEED, BATCH = 120_000, 20_000, 7, 5_000


def decisions(ahead: bool = False) -> dict:
    """``ahead``: each next batch's decoding started on the helper thread first, as the runner and the bench do."""
    spec = reference_spec(USERS, SEED)
    lines = generate_lines(spec, EVENTS)
    pipeline = Pipeline(spec)
    digests = {name: hashlib.sha256() for name in ("raw", "score", "is_anomaly", "severity", "explanations")}
    anomalies = scored = 0
    batches = [SourceBatch(positions=np.arange(start, min(start + BATCH, EVENTS), dtype=np.int64),
                           next_position=min(start + BATCH, EVENTS), lines=lines[start:start + BATCH])
               for start in range(0, EVENTS, BATCH)]
    for index, raw in enumerate(batches):
        if ahead and index + 1 < len(batches):
            pipeline.decode_ahead(batches[index + 1], SOURCE_NAME)
        batch = pipeline.process_raw(raw, SOURCE_NAME)
        digests["raw"].update(np.round(batch.raw_score, 10).tobytes())
        digests["score"].update(np.round(batch.score, 10).tobytes())
        digests["is_anomaly"].update(batch.is_anomaly.tobytes())
        digests["severity"].update(batch.severity.tobytes())
        digests["explanations"].update(json.dumps({str(k): v for k, v in sorted(batch.explanations.items())}).encode())
        anomalies += int(batch.is_anomaly.sum())
        scored += int(batch.scored.sum())
    return {"events": EVENTS, "scored": scored, "anomalies": anomalies, "refits": pipeline.fits,
            **{name: digest.hexdigest() for name, digest in digests.items()}}


@pytest.mark.parametrize("ahead", [False, True], ids=["in-line", "decoded-ahead"])
def test_the_reference_pipeline_decides_as_before_the_speed_work(ahead: bool) -> None:
    expected = json.loads(GOLDEN.read_text())
    got = decisions(ahead)
    assert got["anomalies"] > 100 and got["refits"] >= 2, "the run flags events and refits: the comparison means something"
    assert got == expected


if __name__ == "__main__" and sys.argv[1:] == ["--record"]:
    GOLDEN.write_text(json.dumps(decisions(), indent=1) + "\n")
    print(GOLDEN.read_text())
