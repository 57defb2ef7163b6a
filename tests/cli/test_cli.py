"""The tocsin command end to end: demo, simulate, backtest, run, and spec errors."""

import json

import yaml
from typer.testing import CliRunner

from tocsin.cli.main import app

cli = CliRunner()


def invoke(*args):
    result = cli.invoke(app, [str(a) for a in args], catch_exceptions=False)
    return result


def small_spec_file(tmp_path, **updates):
    with open("examples/transactions.yaml") as handle:
        data = yaml.safe_load(handle)
    data["source"]["users"] = 300
    data["detector"]["warmup_events"] = 2_000
    data["store"]["url"] = f"sqlite:///{tmp_path / 'store.db'}"
    data["checkpoint"]["dir"] = str(tmp_path / "checkpoints")
    data.update(updates)
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_demo_runs_and_writes_a_summary(tmp_path):
    out = tmp_path / "summary.json"
    result = invoke("demo", "--events", 40_000, "--rate", 0, "--state-dir", tmp_path / "demo", "--json", out)
    assert result.exit_code == 0, result.output
    summary = json.loads(out.read_text())
    assert summary["events"] == 40_000
    assert summary["anomalies"] > 0
    assert 0 < summary["precision"] <= 1 and 0 < summary["recall"] <= 1
    assert (tmp_path / "demo" / "demo.db").exists()


def test_simulate_then_backtest(tmp_path):
    data = tmp_path / "tx.jsonl"
    assert invoke("simulate", "--out", data, "--events", 20_000, "--users", 300).exit_code == 0
    assert len(data.read_bytes().splitlines()) == 20_000
    report_path = tmp_path / "report.json"
    spec = small_spec_file(tmp_path)
    result = invoke("backtest", spec, "--data", data, "--label-column", "is_fraud", "--json", report_path)
    assert result.exit_code == 0, result.output
    report = json.loads(report_path.read_text())
    assert report["events"] == 20_000 and report["warmup_events"] == 2_000
    for key in ("precision", "recall", "f1", "aucpr", "alerts_per_1000"):
        assert report[key] is not None and report[key] >= 0, key
    assert report["positives"] > 0


def test_run_resumes_from_checkpoint(tmp_path):
    spec = small_spec_file(tmp_path)
    first, second = tmp_path / "a.json", tmp_path / "b.json"
    assert invoke("run", spec, "--events", 6_000, "--json", first).exit_code == 0
    assert invoke("run", spec, "--events", 9_000, "--json", second).exit_code == 0
    assert json.loads(first.read_text())["events"] == 6_000
    assert json.loads(second.read_text())["events"] == 3_000


def test_invalid_spec_exits_with_the_field_named(tmp_path):
    spec = small_spec_file(tmp_path, threshold={"kind": "sometimes"})
    result = invoke("run", spec)
    assert result.exit_code == 2
    assert "threshold.kind" in result.output


def test_simulate_rejects_unknown_suffix(tmp_path):
    result = invoke("simulate", "--out", tmp_path / "x.txt", "--events", 10)
    assert result.exit_code == 2 and "source.format" in result.output
