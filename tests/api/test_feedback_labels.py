"""Verdicts as labels: a true-positive verdict through the API raises the confirmed risk of the anomaly's
merchant in the service's own pipeline at once, a restart does not apply it again, and the embedded runner
on the same store picks it up too (exactly once per pipeline state)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from fastapi.testclient import TestClient

from tests.alerting.helpers import BatchSource
from tests.api.conftest import WARM_EVENTS, spec_dict
from tocsin.api import create_app
from tocsin.checkpoint.local import LocalCheckpointStore
from tocsin.engine.feedback_labels import SOURCE
from tocsin.engine.pipeline import Pipeline
from tocsin.engine.runner import Runner
from tocsin.features.labels import ConfirmedRisk
from tocsin.simulate import TransactionSimulator
from tocsin.spec import parse_spec


def confirmed_spec(tmp_path: Path):
    data = spec_dict(f"sqlite:///{tmp_path / 'store.db'}", str(tmp_path / "checkpoints"))
    data["features"].append({"kind": "confirmed", "by": "merchant_id", "half_lives": ["7d"]})
    return parse_spec(data)


def risk_of(pipeline: Pipeline, merchant: str) -> float:
    op = next(op for op in pipeline.features.operators if isinstance(op, ConfirmedRisk))
    key = pipeline.features.interners["merchant_id"].lookup(merchant)
    return 0.0 if key is None or key >= len(op._positives) else float(op._positives[key, 0])


def test_a_verdict_becomes_a_label_once(tmp_path, auth, keys, records) -> None:
    spec = confirmed_spec(tmp_path)
    warm = Pipeline(spec)
    warm.process_records(records[:WARM_EVENTS], source="warm")
    analyst = keys.headers("analyst")
    checkpoints = tmp_path / "service-checkpoints"
    with TestClient(create_app(spec, auth, pipeline=warm, checkpoints=LocalCheckpointStore(checkpoints))) as client:
        scored = client.post("/v1/score", json={"events": records[WARM_EVENTS:9_000]}, headers=analyst)
        assert scored.status_code == 200, scored.text
        anomalies = client.get("/v1/anomalies", params={"limit": 50}, headers=analyst).json()["items"]
        pipeline = client.app.state.service.stream.pipeline
        target = anomalies[0]
        merchant = target["fields"]["merchant_id"]
        before = risk_of(pipeline, merchant)
        verdict = client.post("/v1/feedback", json={"event_id": target["event_id"], "label": "true_positive"}, headers=analyst)
        assert verdict.status_code == 200, verdict.text
        after = risk_of(pipeline, merchant)
        assert after == before + 1.0, "the service's own features saw the verdict at once"
        other = next(a for a in anomalies if a["fields"]["merchant_id"] != merchant)
        other_before = risk_of(pipeline, other["fields"]["merchant_id"])
        client.post("/v1/feedback", json={"event_id": other["event_id"], "label": "false_positive"}, headers=analyst)
        assert risk_of(pipeline, other["fields"]["merchant_id"]) == other_before, "a false positive confirms nothing"
        applied = dict(pipeline.labels_applied)
        assert applied[SOURCE] == 3, "two verdicts, the next one is row 3"
    # a restart from the service's checkpoint: the verdicts are not applied again
    with TestClient(create_app(spec, auth, checkpoints=LocalCheckpointStore(checkpoints))) as client:
        again = client.app.state.service.stream.pipeline
        assert again.labels_applied[SOURCE] == 3, "restored from the checkpoint, with the verdicts' position"
        client.post("/v1/score", json={"events": records[9_000:9_100]}, headers=analyst)  # a batch: the core reads verdicts
        assert again.labels_applied[SOURCE] == 3 and np.isclose(risk_of(again, merchant), after, rtol=1e-3)
    # the embedded runner on the same store reads the same verdicts into its own pipeline
    events = TransactionSimulator(users=300, merchants=2_000, fraud_rate=0.02, warmup_days=0.5, seed=3).generate(4_000)
    runner = Runner(spec, BatchSource(events), checkpoints=False, dispatch=False)
    runner.run()
    assert runner.pipeline.labels_applied[SOURCE] == 3 and risk_of(runner.pipeline, merchant) > 0
