"""Fixtures shared by the deploy checks: the overlays rendered once per session, the Compose file as
Compose reads it, the deploy spec as tocsin loads it."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.deploy import deployfiles as files


@pytest.fixture(scope="session")
def rendered_yaml() -> dict[str, str]:
    """Every overlay under deploy/k8s/overlays rendered with `kubectl kustomize` (offline), by overlay name."""
    assert files.OVERLAYS, "no overlays under deploy/k8s/overlays"
    assert shutil.which("kubectl"), "kubectl is needed to render the overlays (it comes with this machine image)"
    return {overlay.name: files.kustomize(overlay) for overlay in files.OVERLAYS}


@pytest.fixture(scope="session")
def rendered(rendered_yaml: dict[str, str]) -> dict[str, list[dict[str, Any]]]:
    """The rendered manifests of every overlay, by overlay name."""
    return {name: [doc for doc in yaml.safe_load_all(text) if doc] for name, text in rendered_yaml.items()}


@pytest.fixture(scope="session")
def rendered_dir(tmp_path_factory: pytest.TempPathFactory, rendered_yaml: dict[str, str]) -> Path:
    """The rendered overlays as files (one multi-document YAML per overlay), for checkov."""
    directory = tmp_path_factory.mktemp("rendered")
    for name, text in rendered_yaml.items():
        (directory / f"{name}.yaml").write_text(text)
    return directory


@pytest.fixture(scope="session")
def compose_config() -> dict[str, Any]:
    """deploy/compose.yaml with deploy/.env.example as its .env, as Compose sees it."""
    config, interpolation = files.compose()
    assert not interpolation.problems, interpolation.problems
    return config


@pytest.fixture(scope="session")
def deploy_spec() -> Any:
    """deploy/specs/transactions-kafka.yaml as tocsin loads it (no TOCSIN_* overrides)."""
    from tocsin.spec import load_spec

    with pytest.MonkeyPatch.context() as patch:
        for name in files.environment_read_by_code():
            patch.delenv(name, raising=False)
        return load_spec(files.DEPLOY_SPEC)


@pytest.fixture(scope="session")
def entrypoint() -> list[str]:
    """The image's ENTRYPOINT."""
    (instruction,) = [i for i in files.dockerfile() if i.keyword == "ENTRYPOINT"]
    return instruction.exec_form()
