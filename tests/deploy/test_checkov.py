"""checkov over the deploy folder, the Dockerfile and every rendered overlay: zero failed checks; each skip
is in deploy/.checkov.yaml with its reason. Run once per session (checkov takes seconds per run)."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.deploy import deployfiles as files

CONFIG = files.DEPLOY / ".checkov.yaml"


def _checkov(*args: str) -> list[dict[str, Any]]:
    checkov = shutil.which("checkov", path=str(Path(sys.executable).parent)) or shutil.which("checkov")
    assert checkov, "checkov not installed: it comes with the dev extra"
    # serial: checkov's process pool adds start-up time here and nothing else
    env = {**os.environ, "CHECKOV_PARALLELIZATION_TYPE": "none"}
    result = subprocess.run([checkov, "--config-file", str(CONFIG), "--output", "json", *args], capture_output=True,
                            text=True, cwd=files.ROOT, env=env, timeout=300)
    assert result.returncode in (0, 1), f"checkov {' '.join(args)} crashed:\n{result.stderr[-3000:]}"
    reports, decoder, text, at = [], json.JSONDecoder(), result.stdout, 0
    while at < len(text):
        while at < len(text) and text[at].isspace():
            at += 1
        if at >= len(text):
            break
        report, at = decoder.raw_decode(text, at)
        reports.extend(report if isinstance(report, list) else [report])
    return reports


@pytest.fixture(scope="session")
def checkov_reports(rendered_dir: Path) -> dict[str, list[dict[str, Any]]]:
    return {
        "deploy/": _checkov("--directory", "deploy"),
        "Dockerfile": _checkov("--file", "Dockerfile"),
        # the overlays as Kubernetes receives them; their Secrets are base64 of files already scanned above
        "rendered overlays": _checkov("--directory", str(rendered_dir), "--framework", "kubernetes"),
    }


@pytest.mark.parametrize("target", ["deploy/", "Dockerfile", "rendered overlays"])
def test_checkov_finds_nothing(target, checkov_reports):
    reports = [r for r in checkov_reports[target] if "check_type" in r]
    assert reports, f"checkov scanned nothing in {target}: {checkov_reports[target]}"
    failed = [f"{r['check_type']}: {f['check_id']} {f['check_name']} — {f['file_path']} {f.get('resource')}"
              for r in reports for f in r["results"]["failed_checks"]]
    parse_errors = sum(r["summary"]["parsing_errors"] for r in reports)
    assert not failed and not parse_errors, "\n".join(failed) + f"\nparsing errors: {parse_errors}"
    assert sum(r["summary"]["passed"] for r in reports) > 0


def test_checkov_scans_what_it_should(checkov_reports):
    kinds = {target: {r["check_type"] for r in reports if "check_type" in r} for target, reports in checkov_reports.items()}
    assert "kubernetes" in kinds["deploy/"] and "dockerfile" in kinds["Dockerfile"] and kinds["rendered overlays"] == {"kubernetes"}
    rendered = checkov_reports["rendered overlays"][0]["summary"]["resource_count"]
    assert rendered >= 5 * len(files.OVERLAYS), "every overlay's workloads are scanned"


def test_every_skip_has_its_reason():
    config = yaml.safe_load(CONFIG.read_text())
    skips = config.get("skip-check", [])
    lines = CONFIG.read_text().splitlines()
    for check in skips:
        (line,) = [line for line in lines if re.match(rf"\s*-\s*{re.escape(check)}\b", line)]
        reason = line.split("#", 1)[1].strip() if "#" in line else ""
        assert len(reason) >= 40, f"skip of {check} in {CONFIG.name} needs its reason on its line"
    assert config.get("skip-download") is True, "no network here: checkov must not fetch guidelines"
