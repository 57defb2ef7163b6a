"""The tocsin command end to end: demo, simulate, backtest, run, and spec errors."""

import json

import yaml
from typer.testing import CliRunner

from tocsin.api.server import free_port
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
    # its API on a free port: the default 8000 was taken once by a demo someone ran beside the suite
    result = invoke("demo", "--events", 40_000, "--rate", 0, "--state-dir", tmp_path / "demo", "--json", out,
                    "--api-port", free_port())
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


def test_backtest_writes_every_scored_event_and_the_daily_figures(tmp_path):
    import pyarrow.parquet as pq
    from sklearn.metrics import average_precision_score

    data = tmp_path / "tx.jsonl"
    assert invoke("simulate", "--out", data, "--events", 20_000, "--users", 300).exit_code == 0
    spec, report_path, scores = small_spec_file(tmp_path), tmp_path / "report.json", tmp_path / "scores.parquet"
    result = invoke("backtest", spec, "--data", data, "--label-column", "is_fraud", "--json", report_path,
                    "--scores", scores, "--label-delay", "7d", "--top-k", 20, "--test-days", 1)
    assert result.exit_code == 0, result.output
    report = json.loads(report_path.read_text())
    table = pq.read_table(scores).to_pydict()
    assert len(table["event_id"]) == report["scored"] == 18_000, "every scored event, none of the warm-up"
    assert len(set(table["event_id"])) == 18_000 and set(table) >= {"entity", "event_time", "score", "is_anomaly", "severity",
                                                                     "label", "label_known_at", "label_known"}
    assert sum(table["is_anomaly"]) == report["anomalies"]
    assert report["aucpr"] == average_precision_score(table["label"], table["score"]), "the report is computed from these rows"
    delay = [k - t for k, t in zip(table["label_known_at"], table["event_time"])]
    assert min(delay) == max(delay) == 7 * 86_400
    end = max(table["event_time"])
    assert table["label_known"] == [k <= end for k in table["label_known_at"]]
    assert report["k"] == 20 and report["days"] >= 1 and 0 <= report["precision_at_k"] <= 1
    assert set(report["final_1d"]) == {"aucpr", "aucroc", "precision_at_k", "k", "days"}
    bad = invoke("backtest", spec, "--data", data, "--scores", tmp_path / "scores.txt")
    assert bad.exit_code == 2 and "--scores" in bad.output
    late = invoke("backtest", spec, "--data", data, "--label-delay", "soon")
    assert late.exit_code == 2 and "--label-delay" in late.output


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
