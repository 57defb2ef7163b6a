"""A run that decides nothing says why and exits non-zero; the inputs that used to end that way now run.

Each test is one surprise a new user met: a file whose every record was a dead letter (a CSV without
the id column) ended with exit 0 and nothing scored; a re-run without --fresh silently processed 0
events; a file shorter than the warm-up exited 0 with no word why; a detector the pipeline cannot
drive passed the spec check and crashed after warm-up; JSON booleans were dead letters.
"""

import json

import pyarrow.csv as pacsv
import pyarrow.json as pajson
import yaml
from typer.testing import CliRunner

from tocsin.cli.main import app
from tocsin.store.sql import Store

cli = CliRunner()


def invoke(*args):
    return cli.invoke(app, [str(a) for a in args], catch_exceptions=False)


def spec_file(tmp_path, source_path, **schema_updates):
    with open("examples/transactions.yaml") as handle:
        data = yaml.safe_load(handle)
    data["source"] = {"kind": "file", "path": str(source_path)}
    data["schema"].update(schema_updates)
    data["detector"].update({"warmup_events": 2_000, "refit_every": None})
    data["store"]["url"] = f"sqlite:///{tmp_path / 'store.db'}"
    data["checkpoint"]["dir"] = str(tmp_path / "checkpoints")
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def simulated(tmp_path, events, suffix="jsonl"):
    path = tmp_path / f"tx.{suffix}"
    assert invoke("simulate", "--out", path, "--events", events, "--users", 300).exit_code == 0
    return path


def test_a_file_of_dead_letters_exits_1_with_the_top_reasons(tmp_path):
    jsonl = simulated(tmp_path, 3_000)
    table = pajson.read_json(jsonl).drop_columns(["tx_id"])
    csv = tmp_path / "no-ids.csv"
    pacsv.write_csv(table, csv)
    result = invoke("run", spec_file(tmp_path, csv), "--json", tmp_path / "out.json")
    assert result.exit_code == 1, result.output
    assert "every one of the 3,000 records was a dead letter" in result.output
    assert "3,000 × " in result.output and "tx_id" in result.output
    summary = json.loads((tmp_path / "out.json").read_text())
    assert summary["dead_letters"] == 3_000 and summary["events"] == 0 and "dead letter" in summary["problem"]


def test_without_an_id_field_ids_are_derived_from_the_position(tmp_path):
    jsonl = simulated(tmp_path, 3_000)
    csv = tmp_path / "no-ids.csv"
    pacsv.write_csv(pajson.read_json(jsonl).drop_columns(["tx_id"]), csv)
    spec = spec_file(tmp_path, csv, id_field=None)
    result = invoke("run", spec, "--fresh", "--json", tmp_path / "out.json")
    assert result.exit_code == 0, result.output
    summary = json.loads((tmp_path / "out.json").read_text())
    assert summary["events"] == 3_000 and summary["dead_letters"] == 0 and summary["scored"] == 1_000
    ids = [row["event_id"] for row in Store(f"sqlite:///{tmp_path / 'store.db'}").anomalies(limit=10)]
    assert ids and all(i.rsplit(":", 1)[1].isdigit() for i in ids), ids


def test_a_rerun_says_where_it_resumed_and_that_nothing_was_new(tmp_path):
    spec = spec_file(tmp_path, simulated(tmp_path, 3_000))
    assert invoke("run", spec).exit_code == 0
    again = invoke("run", spec)
    assert again.exit_code == 1, again.output
    assert "resuming at position 3,000" in again.output
    assert "nothing new to process" in again.output and "--fresh" in again.output
    assert invoke("run", spec, "--fresh").exit_code == 0


def test_a_file_shorter_than_the_warm_up_says_so(tmp_path):
    result = invoke("run", spec_file(tmp_path, simulated(tmp_path, 1_500)))
    assert result.exit_code == 1, result.output
    assert "fewer than detector.warmup_events (2,000)" in result.output and "nothing was" in result.output


def test_a_detector_the_pipeline_cannot_drive_is_refused_at_load(tmp_path):
    spec = spec_file(tmp_path, simulated(tmp_path, 100))
    data = yaml.safe_load(spec.read_text())
    for kind in ("seasonal", "seasonal_forecast", "timeseries"):
        data["detector"] = {"kind": kind}
        spec.write_text(yaml.safe_dump(data))
        result = invoke("run", spec)
        assert result.exit_code == 2 and "detector.kind" in result.output and kind in result.output, result.output
    data["detector"] = {"kind": "isolation_forest", "params": {"n_estimators": -1}}
    spec.write_text(yaml.safe_dump(data))
    result = invoke("run", spec)
    assert result.exit_code == 2 and "detector.params.n_estimators" in result.output, result.output


def test_json_booleans_are_numbers_and_categories(tmp_path):
    lines = simulated(tmp_path, 3_000).read_text().splitlines()
    path = tmp_path / "with-booleans.jsonl"
    with open(path, "w") as out:
        for i, line in enumerate(lines):
            record = json.loads(line)
            record["card_present"] = i % 3 != 0
            record["channel"] = record["channel"] == "online"
            out.write(json.dumps(record) + "\n")
    spec = spec_file(tmp_path, path, numeric=["amount", "card_present"])
    result = invoke("run", spec, "--json", tmp_path / "out.json")
    assert result.exit_code == 0, result.output
    summary = json.loads((tmp_path / "out.json").read_text())
    assert summary["dead_letters"] == 0 and summary["events"] == 3_000 and summary["scored"] == 1_000
