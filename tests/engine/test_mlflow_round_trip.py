"""The MLflow round trip against a real ``mlflow server``: ``tocsin train`` logs a run with params and metrics
and registers the version; ``tocsin models promote`` moves MLflow's ``champion`` alias; a running HTTP service
loads that version by the alias within seconds and scores every event once."""

from __future__ import annotations

import json
import time

import pytest
import yaml
from fastapi.testclient import TestClient
from sqlalchemy import text
from typer.testing import CliRunner

from tocsin.api import AuthConfig, KeyStore, create_app
from tocsin.cli.main import app as cli
from tocsin.spec import load_spec

from .test_hot_reload import _records, spec_file, train

pytestmark = pytest.mark.mlflow


def test_train_registers_in_mlflow_and_the_service_loads_the_champion_by_alias(tmp_path, mlflow_server, monkeypatch) -> None:
    from mlflow import MlflowClient

    spec_path = spec_file(tmp_path)
    data = yaml.safe_load(spec_path.read_text())
    data["registry"] = {"kind": "mlflow", "tracking_uri": mlflow_server.url, "poll_interval": "200ms"}
    spec_path.write_text(yaml.safe_dump(data))
    spec = load_spec(spec_path)
    version = train(tmp_path, spec_path, seed=31)

    client = MlflowClient(mlflow_server.url)
    registered = client.get_model_version(spec.name, str(version))
    run = client.get_run(registered.run_id)
    assert run.data.params["detector"] == "isolation_forest" and run.data.params["detector.n_estimators"] == "60"
    assert run.data.metrics["aucroc"] > 0.8 and run.data.metrics["holdout_events"] == 6_000
    assert run.data.tags["tocsin.rows"] == "24000"

    records = _records(spec, 20_000)
    app = create_app(spec, AuthConfig(enabled=False, keys=KeyStore(None)))
    with TestClient(app, base_url="http://127.0.0.1") as http:
        service = app.state.service
        for start in range(0, 10_000, 1_000):
            assert http.post("/v1/score", json={"events": records[start : start + 1_000]}).status_code == 200
        assert service.pipeline.model_version == 0, "no champion yet: the pipeline's own fit scores"
        promoted = CliRunner().invoke(cli, ["models", "promote", str(spec_path), str(version), "--json"], catch_exceptions=False)
        assert promoted.exit_code == 0 and json.loads(promoted.stdout)["version"] == version, promoted.output
        assert client.get_model_version_by_alias(spec.name, "champion").version == str(version), "MLflow's own alias moved"
        began, start = time.monotonic(), 10_000
        while service.pipeline.model_version != version and time.monotonic() - began < 10:
            assert http.post("/v1/score", json={"events": records[start : start + 100]}).status_code == 200
            start += 100
            time.sleep(0.05)
        took = time.monotonic() - began
        assert service.pipeline.model_version == version, "the service loaded the champion by its alias within 10 s"
        for start in range(start, 20_000, 1_000):
            assert http.post("/v1/score", json={"events": records[start : start + 1_000]}).status_code == 200
        stored = service.store.fetch(text("SELECT count(*) AS n, count(DISTINCT event_id) AS d FROM scored_events"))[0]
    assert service.core.stats.events == 20_000 and stored["n"] == stored["d"] == service.core.stats.scored == 20_000 - 5_000, "every event scored and stored once across the switch"
    print(f"the service switched to MLflow version {version} {took:.2f} s after the promotion")
