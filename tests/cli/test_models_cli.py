"""Tests for src/tocsin/cli/models.py: `tocsin models list | show | promote | rollback` over a StoreRegistry
holding versions registered through the Registry API."""

from __future__ import annotations

import getpass
import json

import pytest
import yaml
from typer.testing import CliRunner

from tocsin.cli.main import app
from tocsin.registry import CHALLENGER, CHAMPION
from tocsin.registry.store import StoreRegistry
from tests.registry._contract import REFERENCE, make_version, sample_arrays

cli = CliRunner()


def invoke(*args):
    return cli.invoke(app, ["models", *(str(a) for a in args)], catch_exceptions=False)


@pytest.fixture
def spec_file(tmp_path):
    data = yaml.safe_load(REFERENCE.read_text())
    data["store"]["url"] = f"sqlite:///{tmp_path / 'store.db'}"
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.fixture
def registry(tmp_path, spec_file):
    registry = StoreRegistry(f"sqlite:///{tmp_path / 'store.db'}")  # the spec's store: where its registry is by default
    yield registry
    registry.close()


def register(registry, rows: int, aucpr: float = 0.5) -> int:
    return registry.register(make_version("transactions", rows=rows, aucpr=aucpr, created_by="trainer"), sample_arrays(rows)).version


def test_list_without_versions_says_how_to_make_one(spec_file):
    result = invoke("list", spec_file)
    assert result.exit_code == 0 and "no model versions of 'transactions' yet" in result.output and "tocsin train" in result.output
    assert json.loads(invoke("list", spec_file, "--json").output) == []


def test_list_shows_versions_with_aliases_metrics_and_range(spec_file, registry):
    register(registry, 1_000, aucpr=0.41)
    register(registry, 2_000, aucpr=0.52)
    registry.promote("transactions", 2)
    result = invoke("list", spec_file)
    assert result.exit_code == 0, result.output
    assert "champion" in result.output and "aucpr 0.52" in result.output and "2,000" in result.output
    assert "2026-01-01 00:00" in result.output and "by trainer" in result.output  # trained_from (UTC), created_by
    listed = json.loads(invoke("list", spec_file, "--json").output)
    assert [(v["version"], v["aliases"], v["rows"], v["metrics"]["aucpr"]) for v in listed] == [
        (1, [], 1_000, 0.41), (2, ["champion"], 2_000, 0.52)]


def test_show_describes_one_version(spec_file, registry):
    register(registry, 1_234)
    registry.promote("transactions", 1, CHALLENGER)
    result = invoke("show", spec_file, 1)
    assert result.exit_code == 0, result.output
    for text in ("challenger", "isolation_forest", "n_estimators", "amount_zscore_1d", "1,234", "aucpr 0.5", "recall –",
                 "2026-01-01", "trainer", "spec hash"):
        assert text in result.output, text
    shown = json.loads(invoke("show", spec_file, 1, "--json").output)
    assert shown["version"] == 1 and shown["aliases"] == ["challenger"] and shown["feature_names"][0] == "amount_zscore_1d"
    assert shown["sections"]["detector"]["kind"] == "isolation_forest" and shown["metrics"]["recall"] is None


def test_promote_and_rollback_move_the_alias_and_record_who(spec_file, registry):
    for rows in (100, 200, 300):
        register(registry, rows)
    assert "champion is now version 1" in invoke("promote", spec_file, 1).output
    assert "champion is now version 2 (was 1)" in invoke("promote", spec_file, 2, "--as", "champion").output
    assert "challenger is now version 3" in invoke("promote", spec_file, 3, "--as", "challenger").output
    assert registry.alias("transactions", CHAMPION) == 2 and registry.alias("transactions", CHALLENGER) == 3
    result = invoke("rollback", spec_file)
    assert result.exit_code == 0 and "champion rolled back from version 2 to version 1" in result.output
    assert registry.alias("transactions", CHAMPION) == 1
    history = registry.alias_history("transactions", CHAMPION)
    assert [(c.kind, c.version, c.by) for c in history] == [
        ("promote", 1, f"cli:{getpass.getuser()}"), ("promote", 2, f"cli:{getpass.getuser()}"), ("rollback", 1, f"cli:{getpass.getuser()}")]
    assert json.loads(invoke("promote", spec_file, 3, "--json").output) == {"alias": "champion", "version": 3, "previous": 1}
    assert json.loads(invoke("rollback", spec_file, "--alias", "champion", "--json").output) == {
        "alias": "champion", "version": 1, "previous": 3}


def test_mistakes_fail_with_the_reason(spec_file, registry, tmp_path):
    register(registry, 100)
    missing = invoke("show", spec_file, 7)
    assert missing.exit_code == 1 and "no model version 7; versions: [1]" in missing.output
    assert invoke("promote", spec_file, 7).exit_code == 1
    wrong_alias = invoke("promote", spec_file, 1, "--as", "production")
    assert wrong_alias.exit_code == 1 and "use one of ['champion', 'challenger']" in wrong_alias.output
    registry.promote("transactions", 1)
    nothing_earlier = invoke("rollback", spec_file)
    assert nothing_earlier.exit_code == 1 and "no earlier version to roll back to" in nothing_earlier.output
    bad_spec = tmp_path / "bad.yaml"
    bad_spec.write_text("name: transactions\nregistry: {kind: nosuch}\n")
    assert invoke("list", bad_spec).exit_code == 2
