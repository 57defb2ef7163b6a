"""A series budget: hosts past ``max_series`` are counted on the tocsin_series_unmodelled gauge, never dropped silently."""

import yaml

from tocsin.engine.runner import Runner
from tocsin.sources.simulator import SimulatorSource
from tocsin.spec import parse_spec


def test_the_runner_reports_series_past_the_budget(tmp_path):
    with open("examples/hosts.yaml") as handle:
        data = yaml.safe_load(handle)
    data["source"].update(hosts=20, warmup_days=0.1)
    for feature in data["features"]:
        feature["max_series"] = 5
    data["detector"].update(warmup_events=500, train_window=500)
    data["store"]["url"] = f"sqlite:///{tmp_path / 'store.db'}"
    data["checkpoint"]["dir"] = str(tmp_path / "checkpoints")
    spec = parse_spec(data)
    runner = Runner(spec, SimulatorSource(spec.source, max_events=20 * 120))
    runner.run()
    assert runner.pipeline.unmodelled_series == 3 * 15
    # the gauge is set at most once a second, the first time with the first batch (which has every host)
    assert 'tocsin_series_unmodelled{pipeline="hosts"} 45.0' in runner.core.metrics.render().decode()
