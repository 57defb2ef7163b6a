"""Tests for src/tocsin/registry/mlflow.py against a real ``mlflow server`` (marker ``mlflow``; the server is the
session fixture of tests/registry/conftest.py)."""

from __future__ import annotations

import time
import uuid
import warnings

import numpy as np
import pytest

from tocsin.registry import CHAMPION, RegistryError
from tocsin.registry.mlflow import ARRAYS_PATH, MlflowRegistry

from ._contract import assert_same_arrays, check_contract, make_version, sample_arrays

pytestmark = pytest.mark.mlflow


def unique(name: str) -> str:
    return f"{name}-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def registry(mlflow_server) -> MlflowRegistry:
    return MlflowRegistry(mlflow_server.url)


def test_contract_mlflow(registry):
    check_contract(registry, unique("transactions"), unique("payments"))


def test_a_version_is_a_run_with_params_metrics_and_tags_and_a_registered_pyfunc_model(registry, mlflow_server, monkeypatch):
    import mlflow.pyfunc

    pipeline = unique("transactions")
    version = registry.register(make_version(pipeline, rows=1_234, created_by="alice"), sample_arrays(3))
    client = registry.client
    entry = client.get_model_version(pipeline, str(version.version))
    run = client.get_run(entry.run_id)
    assert client.get_experiment(run.info.experiment_id).name == f"tocsin/{pipeline}"
    params, metrics, tags = run.data.params, run.data.metrics, run.data.tags
    assert params["detector"] == version.detector and params["n_features"] == "3" and len(params["feature_names_hash"]) == 16
    assert params["detector.n_estimators"] == str(version.sections["detector"]["params"]["n_estimators"])
    assert metrics == {"aucpr": 0.5, "precision": 0.8}, "a NaN metric is not logged"
    assert tags["tocsin.spec_hash"] == version.spec_hash and tags["tocsin.rows"] == "1234" and tags["tocsin.created_by"] == "alice"
    assert float(tags["tocsin.trained_from"]) == version.trained_from and float(tags["tocsin.trained_until"]) == version.trained_until
    assert tags["tocsin.version"] == version.tocsin_version and tags["tocsin.model_version"] == str(version.version)
    assert run.info.status == "FINISHED"

    registry.promote(pipeline, version.version, CHAMPION, by="bob")
    assert client.get_model_version_by_alias(pipeline, CHAMPION).version == str(version.version)  # MLflow's own alias
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_server.url)
    with warnings.catch_warnings(record=True):  # MLflow's advice to type-hint predict's input (it takes none)
        model = mlflow.pyfunc.load_model(f"models:/{pipeline}@{CHAMPION}")  # loadable by anyone, by alias
    assert_same_arrays(model.predict(None), sample_arrays(3))
    requirements = mlflow.pyfunc.get_model_dependencies(f"models:/{pipeline}@{CHAMPION}")
    assert sorted(line.split("==")[0] for line in open(requirements).read().split()) == ["mlflow-skinny", "numpy"]


def test_arrays_overwritten_after_registration_are_refused(registry, tmp_path):
    pipeline = unique("transactions")
    version = registry.register(make_version(pipeline), sample_arrays(1))
    run_id = registry.client.get_model_version(pipeline, str(version.version)).run_id
    forged = tmp_path / "arrays.npz"
    np.savez(forged, a0=np.zeros(3), __names__=np.asarray('["detector/weights"]'))
    registry.client.log_artifact(run_id, str(forged), ARRAYS_PATH.rsplit("/", 1)[0])
    with pytest.raises(RegistryError, match="changed after it was registered"):
        registry.arrays(pipeline, version.version)


def test_versions_registered_outside_tocsin_are_left_out(registry):
    pipeline = unique("transactions")
    registry.register(make_version(pipeline), sample_arrays(1))
    source = registry.client.get_model_version(pipeline, "1")
    registry.client.create_model_version(pipeline, source=source.source, run_id=source.run_id, await_creation_for=0)
    assert [v.version for v in registry.versions(pipeline)] == [1]
    assert registry.register(make_version(pipeline), sample_arrays(2)).version == 3  # MLflow's numbering goes on


def test_artifacts_go_where_the_spec_says(mlflow_server, tmp_path):
    registry = MlflowRegistry(mlflow_server.url, artifacts=str(tmp_path / "models"))
    pipeline = unique("transactions")
    version = registry.register(make_version(pipeline), sample_arrays(5))
    assert list((tmp_path / "models").rglob("arrays.npz")), "the experiment's artifacts are under registry.artifacts"
    assert_same_arrays(registry.arrays(pipeline, version.version), sample_arrays(5))


def test_polling_an_unreachable_server_fails_at_once():
    """Drivers poll ``alias``: it makes one request, without the client's minutes of retries."""
    pytest.importorskip("mlflow")
    from tests.conftest import free_port

    registry = MlflowRegistry(f"http://127.0.0.1:{free_port()}")
    started = time.monotonic()
    with pytest.raises(Exception, match="(?i)connect|refused|max retries"):
        registry.alias("transactions", CHAMPION)
    assert time.monotonic() - started < 5
