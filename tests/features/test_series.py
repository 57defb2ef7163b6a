"""The per-series model's promises: a profile per hour, siblings for cold start, spikes not learned,
confirmed shifts learned, long-format series keys, and the spec's errors at load time."""

import numpy as np
import pytest

from tocsin.features.featureset import FeatureSet
from tocsin.features.series import SeriesModel
from tocsin.spec import SpecError, parse_spec

from .streams import Interner
from .streams import series_batch as batch_of
from .streams import series_surprise as surprise

MONDAY = 1_767_571_200.0  # 2026-01-05 00:00 UTC, a Monday


def test_a_spike_is_flagged_and_not_learned_and_a_lasting_shift_becomes_normal():
    rng = np.random.default_rng(1)
    times = MONDAY + 60.0 * np.arange(600)
    values = 50 + rng.normal(0, 1, 600)
    values[300:303] = 90.0  # a 3-minute spike
    values[400:] += 30.0    # a lasting shift from minute 400
    op = SeriesModel("amount", season="none", shift_after=1_800.0)
    _, z = surprise(op, batch_of(["h"] * 600, times, values))
    assert z[300] > 20 and np.abs(z[304:400]).max() < 4.5, "the spike did not teach the model that 90 is normal"
    assert z[400] > 20 and (z[400:430] > 4).all(), "the shift is surprising until confirmed"
    assert np.abs(z[440:]).max() < 4.5, "after shift_after the new level is normal"


def test_a_new_series_borrows_its_siblings_band_from_the_first_reading():
    rng = np.random.default_rng(2)
    keys = [f"h{i % 20}" for i in range(2_000)]
    times = MONDAY + 3.0 * np.arange(2_000)
    values = 40 + rng.normal(0, 2, 2_000)
    op = SeriesModel("amount", season="none", this="this host", siblings="other hosts")
    interner = Interner()
    op.transform_update(batch := batch_of(keys, times, values), interner.keys(batch))
    newcomer = batch_of(["new-1", "new-2", "new-1"], [times[-1] + 1, times[-1] + 2, times[-1] + 3], [41.0, 80.0, 40.0])
    out = op.transform_update(newcomer, interner.keys(newcomer))
    z = out.columns["amount_surprise"]
    assert abs(z[0]) < 2 and z[1] > 10, "first readings are judged against the siblings' level and dispersion"
    assert abs(z[2]) < 3, "the second reading has the siblings' spread as its prior, not a zero spread"
    assert op.describe("amount_surprise", 1, newcomer, out).endswith("(cold start: first reading of this host)")
    assert op.describe("amount_surprise", 2, newcomer, out).endswith("(cold start: 1 readings)")


def test_the_weekly_profile_falls_back_to_the_daily_one_until_a_week_is_seen():
    times = MONDAY + 600.0 * np.arange(9 * 144)  # 9 days, every 10 minutes
    weekday = ((times - MONDAY) // 86_400) % 7
    hour = (times % 86_400) // 3_600
    values = 20 + 40 * ((hour >= 9) & (hour < 17) & (weekday < 5))  # busy office hours on weekdays only
    op = SeriesModel("amount", season="weekly")
    out, z = surprise(op, batch_of(["h"] * len(times), times, values))
    profile = out.context["amount_profile"]
    saturday_10h = 5 * 144 + 60
    assert profile[saturday_10h] == 1 and z[saturday_10h] < -4, "the first Saturday is read against the daily profile"
    assert profile[7 * 144 + 60] == 2 and abs(z[7 * 144 + 60]) < 3, "the second Monday has its own hour of the week"
    assert op.describe("amount_surprise", 7 * 144 + 60, out_batch := batch_of(["h"] * len(times), times, values), out).endswith(
        "on Mondays at 10:00"), out_batch


def test_long_events_make_one_series_per_entity_and_metric():
    times = MONDAY + 10.0 * np.arange(400)
    metrics = np.array(["cpu", "memory"] * 200, dtype=object)
    values = np.where(metrics == "cpu", 20.0, 70.0) + np.random.default_rng(3).normal(0, 1, 400)
    values[-2] = 70.0  # cpu at memory's level: normal for memory, wild for cpu
    op = SeriesModel("amount", metric_field="merchant_id", season="none")
    out, z = surprise(op, batch_of(["h"] * 400, times, values, metrics))
    assert z[-2] > 20 and abs(z[-1]) < 4
    assert op.describe("amount_surprise", 398, batch_of(["h"] * 400, times, values, metrics), out).startswith("cpu 70 vs")
    state = op.state_dict()
    assert state["series"].shape[1] == 17 and len(state["series_keys"]) == 2
    assert op.bytes_per_series == 8 * 18


def test_bytes_per_series_stay_under_the_budget():
    assert SeriesModel("x", season="none").bytes_per_series == 136
    assert SeriesModel("x", season="daily").bytes_per_series == 712
    assert SeriesModel("x", season="daily", slot=900.0).bytes_per_series == 2_440
    assert SeriesModel("x", season="weekly").bytes_per_series == 3_400 <= 4_096


def test_sustained_surprise_ignores_one_reading_blips_and_flags_an_incident_from_its_second_reading():
    rng = np.random.default_rng(4)
    times = MONDAY + 60.0 * np.arange(300)
    values = 10 + rng.normal(0, 1, 300)
    values[100] = 40.0          # a blip
    values[200:210] = 95.0      # an incident
    op = SeriesModel("amount", season="none", sustained=2)
    _, z = surprise(op, batch_of(["h"] * 300, times, values))
    assert abs(z[100]) < 3 and abs(z[101]) < 4, "a blip is only as surprising as the ordinary reading before it"
    assert z[200] < 3 and z[201] > 20


def spec_with(feature, schema=None):
    return parse_spec({"name": "t", "source": {"kind": "file", "path": "x.jsonl"},
                       "schema": schema or {"key_field": "host", "numeric": ["value"], "categorical": ["metric"]},
                       "features": [feature]})


def test_spec_errors_name_the_field_and_the_fix():
    with pytest.raises(SpecError, match=r"features.0.metric_field: 'name' is not a declared categorical field; add it to schema.categorical"):
        spec_with({"kind": "series", "field": "value", "metric_field": "name"})
    with pytest.raises(SpecError, match=r"features.0.field: 'cpu' is not a declared numeric field"):
        spec_with({"kind": "series", "field": "cpu"})
    with pytest.raises(SpecError, match=r"slot \(420s\) must divide a day"):
        spec_with({"kind": "series", "field": "value", "slot": "7m"})
    with pytest.raises(SpecError, match=r"season"):
        spec_with({"kind": "series", "field": "value", "season": "hourly"})
    names = FeatureSet.from_spec(spec_with({"kind": "series", "field": "value", "metric_field": "metric"})).names
    assert names == ["value_surprise"]


def test_a_slow_climb_accumulates_in_the_trend_long_before_a_single_reading_stands_out():
    rng = np.random.default_rng(5)
    times = MONDAY + 60.0 * np.arange(600)
    values = 40 + rng.normal(0, 1, 600)
    values[400:] += 0.5 * np.arange(200)  # half a sigma a minute
    op = SeriesModel("amount", season="none", trend=True)
    out, z = surprise(op, batch_of(["h"] * 600, times, values))
    trend = out.columns["amount_trend"]
    assert np.abs(trend[:400]).max() < 8 and trend[410] > 15 and z[410] < 8, (trend[410], z[410])
    assert op.describe("amount_trend", 410, batch_of(["h"] * 600, times, values), out).startswith("amount 4")
    assert "rising steadily" in op.describe("amount_trend", 410, batch_of(["h"] * 600, times, values), out)


def test_a_reading_frozen_on_one_value_is_as_surprising_as_its_run_is_rare():
    rng = np.random.default_rng(6)
    times = MONDAY + 10.0 * np.arange(800)
    values = np.round(20 + rng.normal(0, 0.1, 800), 2)  # repeats a reading about 1 time in 25
    values[500:560] = values[499]                       # frozen for 10 minutes
    op = SeriesModel("amount", season="none", stuck=True, this="this sensor")
    batch = batch_of(["s"] * 800, times, values)
    out, z = surprise(op, batch)
    stuck = out.columns["amount_stuck"]
    assert stuck[:499].max() < 5 and stuck[510] > 8 and stuck[559] > stuck[510], (stuck[:499].max(), stuck[510])
    assert abs(z[530]) < 3, "the frozen value is an ordinary value: only the stuck column sees it"
    assert "repeated exactly" in op.describe("amount_stuck", 530, batch, out)


def test_series_past_the_budget_are_counted_not_modelled_and_say_so():
    keys = [f"h{i % 10}" for i in range(1_000)]
    times = MONDAY + np.arange(1_000.0)
    values = np.where(np.arange(1_000) % 10 < 8, 50.0, 9_999.0)  # the last two hosts read wild values
    op = SeriesModel("amount", season="none", max_series=8, this="this host")
    batch = batch_of(keys, times, values)
    out, z = surprise(op, batch)
    assert op.unmodelled == 2 and len(op.state_dict()["series"]) >= 8
    assert (z[np.arange(1_000) % 10 >= 8] == 0).all()
    assert op.describe("amount_surprise", 9, batch, out) == "amount 9,999: not modelled (this host is past the series budget, max_series)"
