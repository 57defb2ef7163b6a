"""The MLflow registry: model versions on an MLflow tracking server (``registry: {kind: mlflow, tracking_uri: …}``).

How tocsin's ideas map onto MLflow's:

* a **version** is an MLflow run in the experiment ``tocsin/<pipeline>`` (params: the detector's kind and
  parameters and a hash of the feature names; metrics: the version's metrics; tags: spec hash, training
  range, rows, who created it, tocsin's version) whose ``model`` artifact is registered as a version of the
  registered model named after the pipeline, so the version numbers are MLflow's own;
* the **model** is an MLflow pyfunc model "from code" (a small script, no pickle) wrapping the version's
  ``arrays.npz``: anyone can ``mlflow.pyfunc.load_model("models:/<pipeline>@champion").predict(None)`` to get
  the arrays; tocsin downloads ``arrays.npz`` itself and checks its SHA-256 against the version's tags;
* the **description** tocsin reads back (features, sections, range, metrics…) is a JSON model-version tag,
  so :meth:`MlflowRegistry.versions` is two requests however many versions there are;
* **aliases** are MLflow's own model-version aliases (``champion``, ``challenger``), so MLflow's UI and
  ``models:/<pipeline>@champion`` URIs agree with tocsin; MLflow keeps no history of aliases, so every
  change is also a registered-model tag ``tocsin.alias_history.<alias>.<ns>`` (JSON: version, by, at, kind)
  that :meth:`MlflowRegistry.alias_history` reads back in time order (the writers' clocks order it).

Versions of the registered model that tocsin did not create (no description tag) are left out.
The ``mlflow`` package (``pip install 'tocsin[mlflow]'``) is imported when a registry is opened, not before.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import secrets
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from tocsin import __version__
from tocsin.registry.base import (
    ALIASES,
    AliasChange,
    ModelVersion,
    Registry,
    RegistryError,
    check_alias,
    pack_arrays,
    plain_metrics,
    unknown_version,
    unpack_arrays,
)

#: the model-version tag holding tocsin's description of a version (JSON)
DESCRIPTION_TAG = "tocsin.description"
#: the model-version tag holding the SHA-256 of the version's arrays.npz
ARRAYS_SHA_TAG = "tocsin.arrays_sha256"
#: registered-model tags recording alias changes: ``<prefix><alias>.<time in ns><random>``
HISTORY_TAG_PREFIX = "tocsin.alias_history."
#: where the arrays are inside the model artifact
ARRAYS_PATH = "model/artifacts/arrays.npz"
#: seconds :meth:`MlflowRegistry.alias` waits for the server (once: no retries)
POLL_TIMEOUT = 10

#: the pyfunc model, "from code": MLflow runs this script to load the model (nothing is unpickled)
MODEL_CODE = '''"""A tocsin model version's arrays as an MLflow pyfunc model: predict(None) returns them by name
(tocsin.registry.base.pack_arrays wrote them; tocsin scores with them)."""
import json

import mlflow
import numpy as np
from mlflow.pyfunc import PythonModel


class TocsinArrays(PythonModel):
    def load_context(self, context):
        with np.load(context.artifacts["arrays"], allow_pickle=False) as npz:
            names = json.loads(str(npz["__names__"][()]))
            self.arrays = {name: npz[f"a{i}"] for i, name in enumerate(names)}

    def predict(self, context, model_input, params=None):
        return self.arrays


mlflow.models.set_model(TocsinArrays())
'''

_METRIC_KEY = re.compile(r"[^0-9A-Za-z_\-. /]")


class MlflowRegistry(Registry):
    """Model versions on the MLflow tracking server at ``tracking_uri`` (its model registry too). ``artifacts``:
    where the experiments tocsin creates put their artifacts (default: the server's artifact store)."""

    def __init__(self, tracking_uri: str, artifacts: str | None = None) -> None:
        try:
            from mlflow import MlflowClient
        except ImportError:
            raise RegistryError("registry kind mlflow needs the MLflow client: pip install 'tocsin[mlflow]'") from None
        # downloads of a few files need no progress bar in a driver's log (set MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR to have one)
        os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
        self.tracking_uri = tracking_uri
        self.artifacts = artifacts
        self.client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)

    def __repr__(self) -> str:
        return f"MlflowRegistry({self.tracking_uri!r})"

    # --- versions -------------------------------------------------------------------------

    def register(self, version: ModelVersion, arrays: dict[str, np.ndarray]) -> ModelVersion:
        from mlflow.entities import Metric, Param, RunTag

        blob = pack_arrays(arrays)
        pipeline, client = version.pipeline, self.client
        run = client.create_run(self._experiment(pipeline), run_name=f"{pipeline}-train", tags={"mlflow.user": version.created_by})
        run_id, now_ms = run.info.run_id, int(time.time() * 1000)
        metrics = plain_metrics(version.metrics)
        try:
            client.log_batch(
                run_id,
                params=[Param(k, v) for k, v in _params(version).items()],
                metrics=[Metric(_metric_key(k), v, now_ms, 0) for k, v in metrics.items() if v is not None],
                tags=[RunTag(k, v) for k, v in _run_tags(version).items()],
            )
            with tempfile.TemporaryDirectory(prefix="tocsin-mlflow-") as folder:
                client.log_artifacts(run_id, str(_save_model(Path(folder), blob)), "model")
        except BaseException:
            client.update_run(run_id, status="FAILED")  # a run with no registered version, marked so
            raise
        client.update_run(run_id, status="FINISHED")
        self._ensure_registered_model(pipeline)
        description = {**version.as_dict(), "metrics": metrics}
        for key in ("version", "aliases"):
            description.pop(key)
        created = client.create_model_version(
            pipeline, source=f"{run.info.artifact_uri}/model", run_id=run_id, description=version.note or None,
            tags={DESCRIPTION_TAG: json.dumps(description, sort_keys=True), ARRAYS_SHA_TAG: hashlib.sha256(blob).hexdigest()},
            await_creation_for=0,
        )
        client.set_tag(run_id, "tocsin.model_version", str(created.version))
        return self.get(pipeline, int(created.version))

    def versions(self, pipeline: str) -> list[ModelVersion]:
        model = self._registered_model(pipeline)
        if model is None:
            return []
        aliases: dict[int, list[str]] = {}
        for name in ALIASES:
            if name in model.aliases:
                aliases.setdefault(int(model.aliases[name]), []).append(name)
        found = []
        for entry in self._model_versions(pipeline):
            if DESCRIPTION_TAG not in entry.tags:
                continue  # registered by something else than tocsin
            number = int(entry.version)
            description = json.loads(entry.tags[DESCRIPTION_TAG])
            found.append(ModelVersion.from_dict({**description, "pipeline": pipeline, "version": number, "aliases": aliases.get(number, ())}))
        return sorted(found, key=lambda v: v.version)

    def arrays(self, pipeline: str, version: int) -> dict[str, np.ndarray]:
        from mlflow.exceptions import MlflowException

        try:
            entry = self.client.get_model_version(pipeline, str(int(version)))
        except MlflowException as error:
            if error.error_code != "RESOURCE_DOES_NOT_EXIST":
                raise
            entry = None
        if entry is None or DESCRIPTION_TAG not in entry.tags:
            raise unknown_version(pipeline, version, [v.version for v in self.versions(pipeline)])
        with tempfile.TemporaryDirectory(prefix="tocsin-mlflow-") as folder:
            blob = Path(self.client.download_artifacts(entry.run_id, ARRAYS_PATH, folder)).read_bytes()
        expected = entry.tags.get(ARRAYS_SHA_TAG)
        if expected is not None and hashlib.sha256(blob).hexdigest() != expected:
            raise RegistryError(f"model version {version} of {pipeline!r}: its arrays.npz (run {entry.run_id}) changed after "
                                "it was registered; register a new version instead of overwriting artifacts")
        return unpack_arrays(blob)

    # --- aliases --------------------------------------------------------------------------

    def alias(self, pipeline: str, name: str) -> int | None:
        """One request, without the MLflow client's retries (~4 minutes of them by default): drivers poll this,
        and one that cannot reach the server should say so now and ask again at its next poll."""
        check_alias(name)
        if not self.tracking_uri.startswith(("http://", "https://")):
            model = self._registered_model(pipeline)
            return None if model is None or name not in model.aliases else int(model.aliases[name])
        from mlflow.exceptions import MlflowException
        from mlflow.utils.credentials import get_default_host_creds
        from mlflow.utils.rest_utils import http_request_safe

        try:
            answer = http_request_safe(get_default_host_creds(self.tracking_uri), "/api/2.0/mlflow/registered-models/get", "GET",
                                       params={"name": pipeline}, max_retries=0, timeout=POLL_TIMEOUT)
        except MlflowException as error:
            if error.error_code == "RESOURCE_DOES_NOT_EXIST":
                return None
            raise
        for pointer in answer.json().get("registered_model", {}).get("aliases", []):
            if pointer.get("alias") == name:
                return int(pointer["version"])
        return None

    def _record_alias(self, pipeline: str, change: AliasChange) -> None:
        key = f"{HISTORY_TAG_PREFIX}{change.alias}.{time.time_ns():020d}{secrets.token_hex(2)}"
        record = {"version": change.version, "at": change.at, "by": change.by, "kind": change.kind}
        self.client.set_registered_model_tag(pipeline, key, json.dumps(record))
        try:
            if change.version is None:
                self.client.delete_registered_model_alias(pipeline, change.alias)
            else:
                self.client.set_registered_model_alias(pipeline, change.alias, str(change.version))
        except Exception:
            self.client.delete_registered_model_tag(pipeline, key)  # the history says only what happened
            raise

    def alias_history(self, pipeline: str, name: str) -> list[AliasChange]:
        check_alias(name)
        model = self._registered_model(pipeline)
        if model is None:
            return []
        prefix = f"{HISTORY_TAG_PREFIX}{name}."
        changes = []
        for key in sorted(k for k in model.tags if k.startswith(prefix)):
            record = json.loads(model.tags[key])
            changes.append(AliasChange(name, record["version"], record["at"], record["by"], record["kind"]))
        return changes

    # --- MLflow plumbing ------------------------------------------------------------------

    def _registered_model(self, pipeline: str) -> Any:
        from mlflow.exceptions import MlflowException

        try:
            return self.client.get_registered_model(pipeline)
        except MlflowException as error:
            if error.error_code == "RESOURCE_DOES_NOT_EXIST":
                return None
            raise

    def _model_versions(self, pipeline: str) -> list[Any]:
        found, token = [], None
        while True:
            page = self.client.search_model_versions(f"name='{pipeline}'", page_token=token)
            found.extend(page)
            token = page.token
            if not token:
                return found

    def _experiment(self, pipeline: str) -> str:
        """The id of experiment ``tocsin/<pipeline>``, created (with ``artifacts`` as its location) if missing."""
        from mlflow.exceptions import MlflowException

        name = f"tocsin/{pipeline}"
        existing = self.client.get_experiment_by_name(name)
        if existing is not None:
            return existing.experiment_id
        try:
            return self.client.create_experiment(name, artifact_location=self.artifacts, tags={"tocsin.pipeline": pipeline})
        except MlflowException as error:
            if error.error_code != "RESOURCE_ALREADY_EXISTS":
                raise
            return self.client.get_experiment_by_name(name).experiment_id  # another trainer created it meanwhile

    def _ensure_registered_model(self, pipeline: str) -> None:
        from mlflow.exceptions import MlflowException

        try:
            self.client.create_registered_model(pipeline, tags={"tocsin.pipeline": pipeline},
                                                description=f"tocsin pipeline {pipeline!r}: versions registered by `tocsin train`")
        except MlflowException as error:
            if error.error_code != "RESOURCE_ALREADY_EXISTS":
                raise


def _save_model(folder: Path, blob: bytes) -> Path:
    """The pyfunc model directory for ``blob`` (the arrays' .npz), saved under ``folder``."""
    import mlflow
    import mlflow.pyfunc

    (folder / "arrays.npz").write_bytes(blob)
    (folder / "tocsin_model.py").write_text(MODEL_CODE)
    path = folder / "model"
    # recorded rather than filtered (MLflow resets the filters around the check): the advice to type-hint
    # predict's input is moot for a model that takes none; any other warning is passed on
    with warnings.catch_warnings(record=True) as caught:
        mlflow.pyfunc.save_model(
            path=str(path), python_model=str(folder / "tocsin_model.py"), artifacts={"arrays": str(folder / "arrays.npz")},
            # explicit: inferring them would load the model in a subprocess and list unrelated packages
            pip_requirements=[f"mlflow-skinny=={mlflow.__version__}", f"numpy=={np.__version__}"],
        )
    for warning in caught:
        if "type hints to the `predict` method" not in str(warning.message):
            warnings.warn_explicit(warning.message, warning.category, warning.filename, warning.lineno)
    return path


def _params(version: ModelVersion) -> dict[str, str]:
    """Run params: the detector's kind and parameters, and what identifies its features."""
    detector = version.sections.get("detector", {}) if isinstance(version.sections, dict) else {}
    params = {"detector": version.detector, "feature_names_hash": _names_hash(version.feature_names),
              "n_features": str(len(version.feature_names))}
    for name, value in sorted((detector.get("params") or {}).items()):
        params[f"detector.{name}"] = value if isinstance(value, str) else json.dumps(value, sort_keys=True)
    return {k: v[:6000] for k, v in params.items()}  # MLflow's limit for a param's value


def _run_tags(version: ModelVersion) -> dict[str, str]:
    return {
        "tocsin.spec_hash": version.spec_hash, "tocsin.trained_from": _text(version.trained_from),
        "tocsin.trained_until": _text(version.trained_until), "tocsin.rows": str(version.rows),
        "tocsin.created_by": version.created_by, "tocsin.version": version.tocsin_version or __version__,
    }


def _names_hash(names: list[str]) -> str:
    return hashlib.sha256(json.dumps(list(names)).encode()).hexdigest()[:16]


def _metric_key(name: str) -> str:
    return _METRIC_KEY.sub("_", name)


def _text(value: float | None) -> str:
    return "" if value is None else repr(float(value))
