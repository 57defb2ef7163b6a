"""Hot reload: ``tocsin train`` then ``tocsin models promote`` changes the model a running runner and a running
HTTP service use within seconds, at a batch boundary, keeping per-entity state, with no event lost or scored
twice; the switch is in the checkpoint; a version trained for another spec is refused; a challenger scores in
shadow and ``compare`` sums what it saw."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import yaml
from fastapi.testclient import TestClient
from sqlalchemy import text
from typer.testing import CliRunner

from tocsin.api import AuthConfig, KeyStore, create_app
from tocsin.checkpoint import LocalCheckpointStore
from tocsin.cli.main import app as cli
from tocsin.engine.core import DriverCore
from tocsin.engine.runner import Runner
from tocsin.registry import CHALLENGER, CHAMPION, open_registry
from tocsin.simulate import TransactionSimulator, write_events
from tocsin.simulate.transactions import _columns
from tocsin.sources.simulator import SimulatorSource
from tocsin.sources.base import SourceBatch
from tocsin.spec import load_spec
from tocsin.store.sql import Store

REFERENCE = Path(__file__).resolve().parents[2] / "examples" / "transactions.yaml"


def spec_file(tmp_path, **updates) -> Path:
    tmp_path.mkdir(parents=True, exist_ok=True)
    data = yaml.safe_load(REFERENCE.read_text())
    data["source"].update({"users": 1_000})
    data["detector"].update({"warmup_events": 5_000, "refit_every": 10_000, "train_window": 10_000})
    data["detector"]["params"]["n_estimators"] = 60
    data["store"] = {"url": f"sqlite:///{tmp_path / 'store.db'}", "scored_events": True}
    data["checkpoint"] = {"dir": str(tmp_path / "checkpoints"), "interval": "1s"}
    data["registry"] = {"poll_interval": "200ms"}
    data.update(updates)
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def train(tmp_path, spec_path: Path, seed: int, events: int = 30_000, *extra: str) -> int:
    history = tmp_path / f"history-{seed}.jsonl"
    write_events(TransactionSimulator(users=1_000, seed=seed).generate(events), history, "jsonl")
    result = CliRunner().invoke(cli, ["train", str(spec_path), "--data", str(history), "--label-column", "is_fraud",
                                      "--json", str(tmp_path / "version.json"), *extra], catch_exceptions=False)
    assert result.exit_code == 0, result.output

    return json.loads((tmp_path / "version.json").read_text())["version"]


def test_train_registers_a_described_version(tmp_path) -> None:
    spec_path = spec_file(tmp_path)
    version = train(tmp_path, spec_path, seed=21)
    registry = open_registry(load_spec(spec_path))
    described = registry.get("transactions", version)
    assert version == 1 and described.rows == 24_000 and described.trained_from < described.trained_until
    assert described.metrics["aucroc"] > 0.8 and described.metrics["holdout_events"] == 6_000
    assert described.detector == "isolation_forest" and described.spec_hash and described.created_by
    assert set(registry.arrays("transactions", version)) >= {"detector/meta", "calibrator/reference", "model/meta"} or \
        any(name.startswith("detector/") for name in registry.arrays("transactions", version))


def test_a_running_runner_switches_to_the_promoted_champion_without_losing_an_event(tmp_path) -> None:
    spec_path = spec_file(tmp_path)
    spec = load_spec(spec_path)
    version = train(tmp_path, spec_path, seed=22)
    runner = Runner(spec, SimulatorSource(spec.source, rate=15_000, max_events=180_000))
    thread = threading.Thread(target=runner.run)
    thread.start()
    try:
        while runner.stats.events < 40_000:
            time.sleep(0.05)
        before = runner.pipeline.features.entity_state(runner.pipeline.features.interners["entity"].values()[0])
        promoted = time.monotonic()
        assert CliRunner().invoke(cli, ["models", "promote", str(spec_path), str(version)], catch_exceptions=False).exit_code == 0
        while runner.pipeline.model_version != version and time.monotonic() - promoted < 10:
            time.sleep(0.05)
        took = time.monotonic() - promoted
        assert runner.pipeline.model_version == version, "switched within 10 s"
        assert before and runner.pipeline.features.entity_state(runner.pipeline.features.interners["entity"].values()[0]), \
            "per-entity state kept"
        switch_position, switched_to = runner.pipeline.model_switches[-1]
        assert switched_to == version
    finally:
        runner.stop()
        thread.join(60)
    store = runner.store
    scored = store.fetch(text("SELECT count(*) AS n, count(DISTINCT event_id) AS d FROM scored_events"))[0]
    assert scored["n"] == scored["d"] == runner.stats.scored, "every scored event stored once"
    assert runner.stats.events + runner.stats.dead_letters == runner.position, "nothing lost"
    saved = LocalCheckpointStore(Path(spec.checkpoint.dir) / spec.name).load(runner.partition)

    meta = json.loads(str(saved.state["pipeline/meta"]))
    assert meta["model_version"] == version and [switch_position, version] in [list(s) for s in meta["model_switches"]]
    print(f"switched {took:.2f} s after the promotion, at position {switch_position + 1}")


def test_a_switch_waits_until_the_replay_of_what_a_previous_owner_may_have_emitted_is_done(tmp_path) -> None:
    """After a crash, events past the checkpoint are scored again and their first outputs stand (insert or
    ignore): a promotion switching inside that replay would score them, and all that follows, otherwise."""
    spec_path = spec_file(tmp_path)
    spec = load_spec(spec_path)
    version = train(tmp_path, spec_path, seed=23)
    open_registry(spec).promote(spec.name, version, CHAMPION, by="test")
    core = DriverCore(spec, driver="worker", store=Store(spec.store.url))
    try:
        core.follower.poll()
        assert core.follower.model(CHAMPION).version == version
        stream = core.open_stream("p0", "test:p0", resume=False)
        stream.replay_until = 5_999  # as a Kafka worker sets it: the partition's last offset when assigned
        lines = [json.dumps(r).encode() for r in _records(spec, 9_000)]
        switched_at = []
        for start in range(0, 9_000, 1_000):
            raw = SourceBatch(positions=np.arange(start, start + 1_000), next_position=start + 1_000,
                              lines=lines[start:start + 1_000])
            core.process([(stream, raw)], path="stream")
            switched_at.append(stream.pipeline.model_version)
        # the follower is consulted before each batch: at position 5,999 (after six batches) it switches
        assert switched_at == [0] * 6 + [version] * 3, switched_at
        assert stream.pipeline.model_switches == [(5_999, version)]
    finally:
        core.close()


def test_a_version_trained_for_another_spec_is_refused(tmp_path) -> None:
    spec_path = spec_file(tmp_path)
    other = spec_file(tmp_path / "other", features=[{"kind": "window", "windows": ["1m"]}])
    other_data = yaml.safe_load(other.read_text())
    other_data["store"] = yaml.safe_load(spec_path.read_text())["store"]  # the same registry
    other_data["detector"]["features"] = None
    other.write_text(yaml.safe_dump(other_data))
    version = train(tmp_path / "other", other, seed=23)
    spec = load_spec(spec_path)
    open_registry(spec).promote("transactions", version, CHAMPION)
    runner = Runner(spec, SimulatorSource(spec.source, max_events=12_000))
    runner.run()
    assert runner.pipeline.model_version == 0, "the running model keeps scoring"
    assert version in runner.core.follower.refused if runner.core.follower else True
    assert runner.core.health.components["registry"].ok is False
    assert "trained for" in (runner.core.health.components["registry"].error or "")


def test_the_http_service_switches_and_a_challenger_scores_in_shadow(tmp_path) -> None:
    spec_path = spec_file(tmp_path)
    spec = load_spec(spec_path)
    champion = train(tmp_path, spec_path, seed=24)
    challenger = train(tmp_path, spec_path, seed=25)
    records = _records(spec, 30_000)
    app = create_app(spec, AuthConfig(enabled=False, keys=KeyStore(None)))
    with TestClient(app, base_url="http://127.0.0.1") as client:
        service = app.state.service
        for start in range(0, 15_000, 1_000):
            assert client.post("/v1/score", json={"events": records[start : start + 1_000]}).status_code == 200
        registry = open_registry(spec)
        registry.promote(spec.name, champion, CHAMPION)
        registry.promote(spec.name, challenger, CHALLENGER)
        deadline = time.monotonic() + 10
        start = 15_000
        while service.pipeline.model_version != champion and time.monotonic() < deadline:
            assert client.post("/v1/score", json={"events": records[start : start + 200]}).status_code == 200
            start += 200
            time.sleep(0.05)
        assert service.pipeline.model_version == champion
        for start in range(start, 30_000, 1_000):
            assert client.post("/v1/score", json={"events": records[start : start + 1_000]}).status_code == 200
    stored = service.store.fetch(text("SELECT count(*) AS n, count(DISTINCT event_id) AS d FROM scored_events"))[0]
    assert service.core.stats.events == 30_000 and stored["n"] == stored["d"] == service.core.stats.scored == 30_000 - 5_000, "every posted event scored and stored once across the switch"
    result = CliRunner().invoke(cli, ["models", "compare", str(spec_path), "--json"], catch_exceptions=False)
    assert result.exit_code == 0, result.output

    compared = json.loads(result.stdout)
    assert compared["champion"] == champion and compared["challenger"] == challenger
    assert compared["events"] > 5_000 and 0 <= compared["overlap"] <= 1
    assert compared["champion_precision"] is not None and compared["challenger_precision"] is not None
    assert sum(compared["champion_scores"]) == sum(compared["challenger_scores"]) == compared["events"]
    table = CliRunner().invoke(cli, ["models", "compare", str(spec_path)], catch_exceptions=False)
    assert table.exit_code == 0 and f"challenger v{challenger}" in table.stdout and "precision" in table.stdout


def test_compare_without_a_challenger_says_so(tmp_path) -> None:
    spec_path = spec_file(tmp_path)
    result = CliRunner().invoke(cli, ["models", "compare", str(spec_path)], catch_exceptions=False)
    assert result.exit_code == 1 and "no events scored by a challenger" in result.stdout


def _records(spec, n: int) -> list[dict]:
    batch = TransactionSimulator(users=1_000, seed=spec.source.seed).generate(n)
    columns = {k: v.tolist() for k, v in _columns(batch).items()}
    names = list(columns)
    return [dict(zip(names, row)) for row in zip(*columns.values())]


@pytest.fixture(autouse=True)
def _no_env_overrides(monkeypatch):
    for name in ("TOCSIN_STORE_URL", "MLFLOW_TRACKING_URI"):
        monkeypatch.delenv(name, raising=False)
