"""The deploy files cannot drift from the code: every TOCSIN_* variable they name is one the code reads,
every `tocsin` command line they run parses with the real CLI, and the ports, probe paths, health file
and writable directories they set are the ones the code uses."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from typing import Any

import pytest
import yaml

from tests.deploy import deployfiles as files

TEXTS = files.deploy_texts()


def test_every_tocsin_variable_named_exists_in_the_code():
    read = files.environment_read_by_code()
    unknown = {path: sorted(files.environment_names(text) - read) for path, text in TEXTS.items()}
    unknown = {path: names for path, names in unknown.items() if names}
    assert not unknown, f"TOCSIN_* variables that no code reads: {unknown}"


def test_drift_in_variables_would_be_caught():
    assert "TOCSIN_NOT_A_SETTING" not in files.environment_read_by_code()
    assert "TOCSIN_STORE_URL" in files.environment_read_by_code()


def test_the_deploy_guide_covers_every_override():
    """docs/deploy.md names every variable a deployment sets (the spec overrides and the API's)."""
    from tocsin.spec.environment import EnvironmentOverrides

    overrides = {f"TOCSIN_{name.upper()}" for name in EnvironmentOverrides.model_fields}
    missing = sorted(overrides - files.environment_names(files.DOC.read_text()))
    assert not missing, f"docs/deploy.md does not mention {missing}"


@pytest.mark.parametrize("env_file", [files.ENV_EXAMPLE, files.K8S / "overlays" / "dev" / "dev-secrets.env"],
                         ids=lambda p: str(p.relative_to(files.ROOT)))
def test_example_secrets_are_accepted_by_the_code(env_file, tmp_path, monkeypatch):
    """The secrets a stack starts with pass the API's own checks (e.g. the JWT secret's length)."""
    from tocsin.api.auth import AuthConfig

    values = files.env_file(env_file)
    assert "TOCSIN_JWT_SECRET" in values
    for name in files.environment_read_by_code():
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("TOCSIN_JWT_SECRET", values["TOCSIN_JWT_SECRET"])
    assert AuthConfig.from_env(tmp_path / "keys.json").jwt_secret == values["TOCSIN_JWT_SECRET"]


@pytest.mark.parametrize("env_file", [files.K8S / "overlays" / "production" / "secrets.env.example",
                                      files.K8S / "overlays" / "dev" / "dev-secrets.env"],
                         ids=lambda p: str(p.relative_to(files.ROOT)))
def test_secret_templates_hold_settings_the_code_reads(env_file, monkeypatch):
    """Every key of a Secret template is a variable the code reads, and tocsin's own parser accepts the
    values (TOCSIN_KAFKA_CONFIG a JSON object, the URLs for a store and a checkpoint store it supports)."""
    from sqlalchemy.engine import make_url

    from tocsin.spec.environment import EnvironmentOverrides

    values = files.env_file(env_file)
    assert set(values) <= files.environment_read_by_code(), set(values) - files.environment_read_by_code()
    for name in files.environment_read_by_code():
        monkeypatch.delenv(name, raising=False)
    for name, value in values.items():
        monkeypatch.setenv(name, value)
    overrides = EnvironmentOverrides.read()
    assert make_url(overrides.store_url).get_backend_name() == "postgresql"
    assert overrides.checkpoint_url.startswith(("redis://", "rediss://", "postgresql"))
    assert overrides.kafka_config is None or isinstance(overrides.kafka_config, dict)


def _command_lines(compose_config: dict[str, Any], rendered: dict[str, Any], entrypoint: list[str]) -> dict[str, list[str]]:
    lines: dict[str, list[str]] = {}
    (cmd,) = [i for i in files.dockerfile() if i.keyword == "CMD"]
    lines["Dockerfile CMD"] = entrypoint + cmd.exec_form()
    for name, svc in files.tocsin_services(compose_config).items():
        lines[f"compose {name}"] = files.compose_command(svc, entrypoint)
    for overlay, manifests in rendered.items():
        for workload, container in files.tocsin_containers(manifests):
            lines[f"k8s {overlay} {workload['metadata']['name']}"] = files.container_command(container, entrypoint)
    for path, text in TEXTS.items():
        if path.endswith(".md") or path.startswith("README"):
            for line in files.shell_lines(text):
                for invocation in files.tocsin_invocations(line):
                    lines[f"{path}: {line}"] = [files.console_script(), *invocation]
    return lines


def test_every_tocsin_command_line_parses_with_the_real_cli(compose_config, rendered, entrypoint):
    lines = _command_lines(compose_config, rendered, entrypoint)
    documented = [where for where in lines if ".md" in where or where.startswith("README")]
    assert len(documented) >= 5, f"found too few documented tocsin commands to check: {documented}"
    problems = []
    for where, argv in lines.items():
        assert argv[0] == files.console_script(), where
        try:
            files.check_command_line(argv[1:])
        except Exception as error:  # the CLI's UsageError (Typer's own click) or ValueError from resolve()
            problems.append(f"{where}: {' '.join(argv)}: {error}")
    assert not problems, "\n".join(problems)


def test_drift_in_commands_would_be_caught():
    for argv in (["train", "spec.yaml"], ["run", "spec.yaml", "--replicas", "2"], ["serve", "--port", "http"]):
        with pytest.raises(Exception):
            files.check_command_line(argv)


def test_ports_match_the_code(compose_config, rendered, entrypoint, deploy_spec):
    """The API's port everywhere is the one `tocsin serve` binds; a worker's is the spec's metrics.port."""
    api_port = files.serve_port(files.compose_command(compose_config["services"]["api"], entrypoint)[1:])
    assert api_port == files.option_default(["serve"], "port")
    for overlay, manifests in rendered.items():
        for workload, container in files.tocsin_containers(manifests):
            argv = files.container_command(container, entrypoint)[1:]
            ports = {p["name"]: p["containerPort"] for p in container.get("ports", [])}
            if argv[0] == "serve":
                assert ports == {"http": files.serve_port(argv)}, overlay
            elif argv[0] == "run":
                workers = int(files.option_value(argv, "workers", files.option_default(["run"], "workers")))
                base = int(files.option_value(argv, "metrics-port", deploy_spec.metrics.port))
                assert set(ports.values()) == set(range(base, base + workers)), \
                    f"{overlay}: worker i of --workers N serves metrics on metrics.port + i"
                assert deploy_spec.metrics.host == "0.0.0.0", "a metrics endpoint on loopback cannot be scraped"


def test_compose_api_health_check_asks_the_port_serve_binds(compose_config, entrypoint, tmp_path, monkeypatch):
    api = compose_config["services"]["api"]
    ((host, port, path),) = files.urls_in(api["healthcheck"]["test"])
    assert host in ("127.0.0.1", "localhost") and port == files.serve_port(files.compose_command(api, entrypoint)[1:])
    assert files.route_exists(files.app_for_probes(tmp_path, monkeypatch), "GET", path)


@pytest.mark.parametrize("probe", ["startupProbe", "livenessProbe", "readinessProbe"])
def test_api_probes_hit_routes_that_answer(probe, rendered, entrypoint, tmp_path, monkeypatch):
    from fastapi.testclient import TestClient

    app = files.app_for_probes(tmp_path, monkeypatch)
    paths = set()
    for manifests in rendered.values():
        for _, container in files.tocsin_containers(manifests):
            if files.container_command(container, entrypoint)[1] == "serve":
                check = container[probe]["httpGet"]
                assert check["port"] in ("http", files.serve_port(files.container_command(container, entrypoint)[1:]))
                paths.add(check["path"])
    assert paths
    with TestClient(app) as client:
        for path in paths:
            assert files.route_exists(app, "GET", path), path
            assert client.get(path).status_code == 200, f"{probe} GET {path} of a healthy API"


def _worker_probes(compose_config: dict[str, Any], rendered: dict[str, Any], entrypoint: list[str]) -> dict[str, list[str]]:
    probes = {"compose worker": compose_config["services"]["worker"]["healthcheck"]["test"][1:]}
    for overlay, manifests in rendered.items():
        for _, container in files.tocsin_containers(manifests):
            if files.container_command(container, entrypoint)[1] == "run":
                for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
                    probes[f"{overlay} {probe}"] = container[probe]["exec"]["command"]
    return probes


def test_worker_probes_read_the_health_file_the_worker_writes(compose_config, rendered, entrypoint, deploy_spec, tmp_path):
    """Each probe, run against a health file written by the code's own Health: passes when fresh and ok,
    fails when stale; readiness also fails when degraded."""
    from tocsin.engine.health import Health

    health_path = str(deploy_spec.stream.health_path)
    for where, command in _worker_probes(compose_config, rendered, entrypoint).items():
        assert command[0] == "python" and health_path in command[-1], f"{where} must read {health_path}"
        local = tmp_path / "health.json"
        probe = [sys.executable, *command[1:-1], command[-1].replace(health_path, str(local))]

        def outcome() -> int:
            return subprocess.run(probe, capture_output=True, timeout=30).returncode

        local.unlink(missing_ok=True)
        assert outcome() != 0, f"{where}: passes without a health file"
        health = Health(local, worker="0")
        health.write(force=True)
        assert outcome() == 0, f"{where}: fails on a fresh, ok health file"
        stale = json.loads(local.read_text()) | {"updated_at": time.time() - 3600}
        local.write_text(json.dumps(stale))
        assert outcome() != 0, f"{where}: passes on a health file an hour old"
        health.down("store", "connection refused")
        if "readiness" in where:
            assert outcome() != 0, f"{where}: ready while the store is down"


def test_writable_paths_are_mounted_under_a_read_only_root(compose_config, rendered, entrypoint, deploy_spec):
    """Everything tocsin writes (NUMBA_CACHE_DIR, the health file, the API's journal and keys) is on a volume."""
    env = " ".join(i.value for i in files.dockerfile() if i.keyword == "ENV")
    numba_cache = env.split("NUMBA_CACHE_DIR=")[1].split()[0]
    for overlay, manifests in rendered.items():
        for workload, container in files.tocsin_containers(manifests):
            assert container["securityContext"]["readOnlyRootFilesystem"] is True
            writable = files.pod_writable_paths(workload["spec"]["template"]["spec"], container)
            command = files.container_command(container, entrypoint)[1]
            needed = [numba_cache] + ([str(deploy_spec.stream.health_path.parent)] if command == "run" else
                                      [str(deploy_spec.checkpoint.dir)])
            for path in needed:
                assert files.under(path, writable), f"{overlay} {workload['metadata']['name']}: {path} is not writable"
            keys = {e["name"]: e.get("value") for e in container.get("env", [])}.get("TOCSIN_API_KEYS_FILE")
            if keys:
                mounts = [m["mountPath"] for m in container["volumeMounts"]]
                assert files.under(keys, mounts), f"{keys} is not on a mounted volume"
    for name, svc in files.tocsin_services(compose_config).items():
        writable = list(svc.get("tmpfs", [])) + [v.split(":")[1] for v in svc.get("volumes", []) if not v.endswith(":ro")]
        assert files.under(numba_cache, writable) and files.under(deploy_spec.stream.health_path.parent, writable), name
        if files.compose_command(svc, entrypoint)[1] == "serve":
            assert files.under(deploy_spec.checkpoint.dir, writable)


def test_deploy_spec_is_the_reference_pipeline_on_kafka(deploy_spec):
    """Same schema, features, detector, calibration, threshold and severities as the reference spec; only
    where events come from and where results and state go differ."""
    from tocsin.detectors import check_detector_spec
    from tocsin.features.featureset import FeatureSet
    from tocsin.spec import load_spec

    reference = load_spec(files.SRC / "specs" / "transactions.yaml")
    check_detector_spec(deploy_spec, deploy_spec.detector.features or FeatureSet.from_spec(deploy_spec).names)
    assert deploy_spec.source.kind == "kafka"
    runtime = {"source", "store", "checkpoint", "stream", "metrics", "runner"}
    for section in set(type(deploy_spec).model_fields) - runtime:
        assert getattr(deploy_spec, section) == getattr(reference, section), f"{section} differs from the reference spec"
    raw = yaml.safe_load(files.DEPLOY_SPEC.read_text())
    assert set(raw) - runtime <= set(yaml.safe_load((files.SRC / "specs" / "transactions.yaml").read_text()))
