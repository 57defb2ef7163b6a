"""NAB through the real Pipeline: a file is one series, scored by the shipped per-series family."""

import json

import numpy as np
from typer.testing import CliRunner

from tocsin.bench.nab_pipeline import PipelineSeriesScorer
from tocsin.cli.main import app


def test_a_spike_in_a_seasonal_series_gets_the_top_score_and_warm_up_rows_score_zero():
    stamps = np.datetime64("2015-03-02T00:00:00") + np.arange(3_000) * np.timedelta64(300, "s")
    hour = (stamps.astype("datetime64[h]").astype(np.int64) % 24)
    values = 100 + 40 * ((hour >= 9) & (hour < 18)) + np.random.default_rng(0).normal(0, 3, 3_000)
    values[2_500] = 220.0
    scores = PipelineSeriesScorer().score_partial_fit(values, stamps)
    assert scores.shape == (3_000,) and np.isfinite(scores).all()
    assert (scores[:100] == 0).all(), "the detector's warm-up rows are not scored"
    day_one = 288  # the first day's busy hours are surprises too: no hour of the profile is known yet
    assert int(np.argmax(scores[day_one:])) + day_one == 2_500 and scores[2_500] > 0.999
    np.testing.assert_array_equal(scores, PipelineSeriesScorer().score_partial_fit(values, stamps))


def test_the_cli_runs_the_pipeline_configuration_over_a_nab_layout(tmp_path):
    data = tmp_path / "nab"
    (data / "data" / "realTest").mkdir(parents=True)
    (data / "labels").mkdir()
    stamps = np.datetime64("2015-03-02T00:00:00") + np.arange(1_500) * np.timedelta64(300, "s")
    values = 50 + np.random.default_rng(1).normal(0, 1, 1_500)
    values[1_200:1_210] += 30
    text = ["timestamp,value"] + [f"{str(t).replace('T', ' ')},{v}" for t, v in zip(stamps, values)]
    (data / "data" / "realTest" / "one.csv").write_text("\n".join(text) + "\n")
    window = [str(stamps[1_150]).replace("T", " ") + ".000000", str(stamps[1_250]).replace("T", " ") + ".000000"]
    (data / "labels" / "combined_windows.json").write_text(json.dumps({"realTest/one.csv": [window]}))
    out = tmp_path / "nab.json"
    result = CliRunner().invoke(app, ["bench", "nab", "--data", str(data), "--detector", "pipeline",
                                      "--results-dir", str(tmp_path / "results"), "--json", str(out)])
    assert result.exit_code == 0, result.output
    figures = json.loads(out.read_text())
    assert figures["detector"] == "pipeline" and figures["detected_windows"]["standard"] == 1
    assert (tmp_path / "results" / "realTest" / "one.csv").exists()
