"""Silence: a host that stops reporting is flagged while silent, at the time it fell due whatever the batch
cuts, its alert stays open while it lasts and resolves when the host reports again; checkpointed."""


import numpy as np
import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.state_helpers import through_npz
from tocsin.engine.pipeline import Pipeline
from tocsin.engine.runner import Runner
from tocsin.engine.silence import SilenceWatch
from tocsin.simulate.hosts import HostMetricsSimulator
from tocsin.sources.simulator import SimulatorSource
from tocsin.spec import SilenceSpec, parse_spec
from tocsin.store.sql import Store

START = 1_767_571_200.0  # a Monday


def host_spec(tmp_path=None, **silence):
    with open("examples/hosts.yaml") as handle:
        data = yaml.safe_load(handle)
    data["silence"] = {"enabled": True, **silence}
    data["detector"].update(warmup_events=500, train_window=500)
    data["calibration"]["window"] = 20_000
    if tmp_path is not None:
        data["store"]["url"] = f"sqlite:///{tmp_path / 'store.db'}"
        data["checkpoint"]["dir"] = str(tmp_path / "checkpoints")
        data["source"].update(hosts=20, incident_rate=1.5, warmup_days=0.2)
        data["runner"]["batch_size"] = 2_000
    return parse_spec(data)


def readings(hosts=5, minutes=240, gaps=(("h2", 100, 130), ("h4", 60, 62))):
    """Every host every minute, except during each (host, from minute, to minute) gap."""
    rows = [(START + 60.0 * m + i, f"h{i}") for m in range(minutes) for i in range(hosts)]
    rows = [(t, h) for t, h in rows if not any(h == g and a <= (t - START) // 60 < b for g, a, b in gaps)]
    return rows


def run(spec, rows, cuts, state_at=None):
    """Silence anomalies and returns of a pipeline fed ``rows`` in batches of ``cuts`` (cycled)."""
    pipeline, found, back = Pipeline(spec), {}, []
    i, c = 0, 0
    while i < len(rows):
        size = cuts[c % len(cuts)]
        chunk = rows[i:i + size]
        records = [{"id": f"r{i + j}", "host": h, "ts": t, "cpu": 20.0, "memory": 50.0, "net_mbps": 10.0,
                    "rack": "r1", "role": "web"} for j, (t, h) in enumerate(chunk)]
        scored = pipeline.process_records(records, source="test")
        found.update({a["event_id"]: (a["entity"], a["event_time"]) for a in scored.notices})
        back += scored.returned
        i += size
        c += 1
        if state_at is not None and c == state_at:
            pipeline = through_npz(pipeline.state_dict(), Pipeline(spec))
    return found, back


def test_a_silent_host_is_flagged_at_its_deadline_reminded_while_silent_and_back_when_it_reports():
    found, back = run(host_spec(repeat_every="10m"), readings(), [10_000])
    h2 = sorted((t - START) / 60 for e, t in found.values() if e == "h2")
    assert h2 == pytest.approx([99 + 3, 112, 122], abs=0.05), "deadline 3 intervals after 99:00, then every 10 min"
    assert not any(e == "h4" for e, _ in found.values()), "a 2-minute gap is within 3 intervals"
    assert back == ["h2"]


@settings(max_examples=25, deadline=None)
@given(cuts=st.lists(st.integers(1, 400), min_size=1, max_size=6), state_at=st.one_of(st.none(), st.integers(1, 6)))
def test_what_is_found_and_when_does_not_depend_on_batch_cuts_or_a_restart(cuts, state_at):
    spec = host_spec(repeat_every="10m")
    rows = readings(minutes=180)
    assert run(spec, rows, cuts, state_at) == run(spec, rows, [len(rows)])


def quiet_readings(hosts=3, minutes=2_880, outage=("h1", 2_000, 2_060), seed=5):
    """Hosts whose minute readings come and go (each minute reported with chance 0.6, as a service's minute
    has a request or not), plus one outage of an hour."""
    rng = np.random.default_rng(seed)
    rows = [(START + 60.0 * m + i, f"h{i}") for m in range(minutes) for i in range(hosts) if rng.random() < 0.6]
    host, a, b = outage
    return [(t, h) for t, h in rows if not (h == host and a <= (t - START) // 60 < b)]


def test_with_spread_a_quiet_entity_keeps_its_usual_gaps_and_an_outage_is_still_flagged():
    rows = quiet_readings()  # its gaps are geometric: gaps of 3-6 minutes occur by chance
    plain, _ = run(host_spec(repeat_every=None), rows, [10_000])
    spread, back = run(host_spec(repeat_every=None, spread=10), rows, [10_000])
    outage = [(t - START) / 60 for e, t in spread.values() if e == "h1" and 2_000 < (t - START) / 60 < 2_060]
    assert len(plain) >= 100, "factor 3 alone calls chance gaps of a quiet host silences"
    assert len(spread) - len(outage) <= 2, "with spread, chance gaps are silences only at their rarest (13 minutes here)"
    assert len(outage) == 1 and outage[0] < 2_000 + 15, "the outage is flagged within a quarter of an hour"
    assert "h1" in back


def test_spread_leaves_a_regular_reporters_deadline_at_factor_intervals():
    found, _ = run(host_spec(repeat_every="10m", spread=10), readings(), [10_000])
    h2 = sorted((t - START) / 60 for e, t in found.values() if e == "h2")
    assert h2 == pytest.approx([99 + 3, 112, 122], abs=0.05)


@settings(max_examples=15, deadline=None)
@given(cuts=st.lists(st.integers(1, 2_000), min_size=1, max_size=6), state_at=st.one_of(st.none(), st.integers(1, 6)))
def test_with_spread_what_is_found_does_not_depend_on_batch_cuts_or_a_restart(cuts, state_at):
    spec, rows = host_spec(repeat_every="10m", spread=10), quiet_readings(minutes=2_200)
    (found, back), (whole, whole_back) = run(spec, rows, cuts, state_at), run(spec, rows, [len(rows)])
    assert found == whole and set(back) == set(whole_back)  # (a batch names a returning entity once, however often)


def test_a_checkpoint_from_before_the_gap_spread_loads_with_no_spread():
    watch = SilenceWatch(SilenceSpec(enabled=True, spread=10), noun="host")
    watch.load_state_dict({"state": np.array([[600.0, 60.0, 10.0, np.nan, -np.inf, 0.0]]), "clock": np.array(600.0)})
    assert [round(a["event_time"]) for a in watch.due(781.0, ["web-1"])] == [780], "3 intervals after its last report"


def test_the_runner_flags_every_silent_host_within_three_intervals_and_resolves_its_alert(tmp_path):
    spec = host_spec(tmp_path, factor=2.5)
    days = 2
    Runner(spec, SimulatorSource(spec.source, max_events=20 * 1440 * days)).run()
    simulator = HostMetricsSimulator.from_spec(spec.source)
    store = Store(spec.store.url)
    anomalies = [a for a in store.anomalies(pipeline=spec.name, limit=100_000) if a["detector"] == "silence"]
    silences = [i for i in simulator.incidents(max(a["event_time"] for a in anomalies)) if i["kind"] == "silent_host"]
    assert silences, "the simulator's incident rate gives silent hosts in two days"
    for incident in silences:
        (host,) = incident["hosts"]
        times = [a["event_time"] for a in anomalies if a["entity"] == host and incident["start"] - 60 <= a["event_time"] <= incident["end"]]
        assert times and min(times) - incident["start"] <= 3 * 60, (incident, times)
    alerts = [a for a in store.alerts(pipeline=spec.name, limit=10_000) if ":silence:" in a["alert_key"]]
    last_event = max(a["event_time"] for a in store.anomalies(pipeline=spec.name, limit=1))
    for incident in silences:
        if incident["end"] < last_event - 120:  # the host reported again before the run ended
            mine = [a for a in alerts if a["entity"] == incident["hosts"][0] and a["event_time"] >= incident["start"] - 60]
            assert mine and mine[-1]["status"] == "resolved", (incident, mine)


def test_silence_is_off_unless_asked_and_its_spec_names_the_fix():
    assert Pipeline(host_spec()).silence is not None
    with open("examples/hosts.yaml") as handle:
        data = yaml.safe_load(handle)
    data.pop("silence")
    assert Pipeline(parse_spec(data)).silence is None
    data["silence"] = {"enabled": True, "factor": 1}
    with pytest.raises(Exception, match=r"silence.factor"):
        parse_spec(data)
