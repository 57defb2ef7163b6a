"""Pipeline.decode_ahead: the next batch scanned on the helper thread gives the same batch as decoding in line,
and a scan nobody takes is dropped, never used for another batch."""

from __future__ import annotations

import threading

import numpy as np
import pytest

import tocsin.engine.pipeline as pipeline_module
from tocsin.decode import Decoder
from tocsin.engine.pipeline import Pipeline
from tocsin.simulate import TransactionSimulator
from tocsin.sources.base import SourceBatch
from tocsin.spec import load_spec

SPEC = load_spec("examples/transactions.yaml")


def _batches(lines: list[bytes], size: int) -> list[SourceBatch]:
    return [SourceBatch(positions=np.arange(s, min(s + size, len(lines)), dtype=np.int64), next_position=min(s + size, len(lines)),
                        lines=lines[s:s + size]) for s in range(0, len(lines), size)]


@pytest.fixture(scope="module")
def lines() -> list[bytes]:
    import msgspec

    batch = TransactionSimulator.from_spec(SPEC.source).generate(3_000)
    records = [{"tx_id": i, "card_id": k, "ts": float(t), "amount": float(a), "merchant_id": m, "merchant_category": c,
                "city": city, "channel": ch, "is_fraud": int(f)}
               for i, k, t, a, m, c, city, ch, f in zip(batch.ids, batch.keys, batch.times, batch.numeric["amount"],
                                                       batch.categorical["merchant_id"], batch.categorical["merchant_category"],
                                                       batch.categorical["city"], batch.categorical["channel"], batch.labels)]
    return [msgspec.json.encode(r) for r in records]


@pytest.fixture
def scans(monkeypatch) -> list[str]:
    """The names of the threads that ran Decoder.scan_lines."""
    seen: list[str] = []
    original = Decoder.scan_lines

    def recording(self, batch_lines):
        seen.append(threading.current_thread().name)
        return original(self, batch_lines)

    monkeypatch.setattr(Decoder, "scan_lines", recording)
    return seen


def _outcome(pipeline: Pipeline, batches: list[SourceBatch], ahead: bool) -> list[tuple]:
    out = []
    for index, raw in enumerate(batches):
        if ahead and index + 1 < len(batches):
            pipeline.decode_ahead(batches[index + 1], "file")
        scored = pipeline.process_raw(raw, "file")
        out.append((scored.events.ids.tolist(), scored.raw_score.round(12).tobytes(), scored.is_anomaly.tolist(),
                    [(d.position, d.code) for d in scored.dead_letters]))
    return out


def test_batches_decoded_ahead_score_as_batches_decoded_in_line(lines, scans):
    if pipeline_module._decode_helper() is None:
        pytest.skip("one core: nothing is decoded ahead")
    bad = [*lines[:700], b'{"tx_id": "x", "card_id": 5', b"not json", *lines[700:]]  # dead letters in the second batch
    spec = SPEC.model_copy(update={"detector": SPEC.detector.model_copy(update={"warmup_events": 1_000})})
    in_line = _outcome(Pipeline(spec), _batches(bad, 500), ahead=False)
    scans.clear()
    decoded_ahead = _outcome(Pipeline(spec), _batches(bad, 500), ahead=True)
    assert decoded_ahead == in_line
    assert sum(len(b[3]) for b in in_line) == 2
    assert scans.count("MainThread") == 1 and len(scans) == len(in_line), scans  # all but the first on the helper


def test_a_scan_for_a_batch_never_processed_is_dropped_not_used_for_another(lines, scans):
    if pipeline_module._decode_helper() is None:
        pytest.skip("one core: nothing is decoded ahead")
    first, second, third = _batches(lines[:1500], 500)
    pipeline = Pipeline(SPEC)
    pipeline.decode_ahead(second, "file")
    pipeline.decode_ahead(third, "file")
    pipeline.decode_ahead(first, "file")  # three started: the oldest (second's) is dropped
    assert [a[0] for a in pipeline._ahead] == [third, first]
    scored = pipeline.process_raw(second, "file")  # not among those kept: decoded in line
    assert scored.events.ids.tolist() == Pipeline(SPEC).process_raw(second, "file").events.ids.tolist()
    assert scored.events.positions.tolist() == list(range(500, 1000))
    assert pipeline.process_raw(first, "file").events.positions.tolist() == list(range(500))  # its own scan
    assert pipeline._ahead == []  # third's, started before first's and skipped, was dropped with it


def test_a_profiled_source_and_other_inputs_are_decoded_in_line(lines, scans):
    pipeline = Pipeline(SPEC)
    records = SourceBatch(positions=np.arange(2), next_position=2, records=[{"tx_id": "a"}, {"tx_id": "b"}])
    pipeline.decode_ahead(records, "api")
    assert pipeline._ahead == [] and scans == []
