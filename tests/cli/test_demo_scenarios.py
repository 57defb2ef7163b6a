"""`tocsin demo --scenario NAME`: each scenario's reference spec, packaged with tocsin, over its simulator, and a live
view in the scenario's words (hosts and incidents over host metrics; cards and fraud only over payments)."""

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tocsin.cli.main import SPECS, Scenario, app

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"

cli = CliRunner()


def invoke(*args):
    return cli.invoke(app, [str(a) for a in args], catch_exceptions=False)


@pytest.mark.parametrize("scenario", list(Scenario), ids=lambda s: s.value)
def test_each_demo_runs_the_packaged_copy_of_its_example_spec(scenario):
    """The demo reads specs/NAME.yaml (in the wheel: package data); it must say what examples/NAME.yaml says."""
    packaged, example = SPECS / f"{scenario.value}.yaml", EXAMPLES / f"{scenario.value}.yaml"
    assert packaged.read_text() == example.read_text(), f"copy {example} to {packaged} (the demo runs the packaged one)"


def test_the_hosts_demo_speaks_of_hosts_and_incidents(tmp_path):
    out = tmp_path / "summary.json"
    result = invoke("demo", "--scenario", "hosts", "--hosts", 40, "--events", 24_000, "--rate", 0, "--api-port", 0,
                    "--state-dir", tmp_path / "demo", "--json", out)
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.split())  # the live view wraps lines
    assert "40 simulated hosts, incidents injected after day 1" in text
    assert "tocsin demo — host metrics" in text and "┃ host " in result.output, result.output
    for fraud_word in ("card", "fraud", "legit", "transaction"):
        assert fraud_word not in text.lower(), fraud_word
    summary = json.loads(out.read_text())
    assert summary["events"] == 24_000 and summary["scored"] == 4_000
    assert (tmp_path / "demo" / "demo.db").exists()


def test_the_transactions_demo_is_still_the_default(tmp_path):
    result = invoke("demo", "--events", 3_000, "--rate", 0, "--api-port", 0, "--users", 300, "--state-dir", tmp_path / "demo")
    # 3,000 events are fewer than the detector's warm-up: nothing is scored, and the run says so (exit 1)
    assert result.exit_code == 1, result.output
    text = " ".join(result.output.split())
    assert "300 simulated cards, fraud injected after day 1" in text and "tocsin demo — card transactions" in text
    assert "warm-up" in text or "warmup" in text, text


def test_the_cli_scenarios_are_the_simulators_registry():
    from tocsin.simulate import SCENARIOS

    assert [scenario.value for scenario in Scenario] == list(SCENARIOS)
