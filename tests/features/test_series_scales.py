"""The series model's scales and seasons per metric: ``log_scale`` models a metric as log1p (a collapse by a
factor reads as such) yet explains it in its own unit; ``seasonal`` gives only the matching metrics a season;
and neither makes outputs depend on batch cuts or a restart."""

from __future__ import annotations

import re

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tocsin.features.series import SeriesModel
from tocsin.spec import SpecError, parse_spec

from .streams import Interner, cuts, make_batch, split, streams
from .streams import series_batch as batch_of
from .streams import series_surprise as run

MONDAY = 1_767_571_200.0  # 2026-01-05 00:00 UTC
BAND = re.compile(r"usual (-?[\d.,]+[kM]?)–(-?[\d.,]+[kM]?)")


def band(text):
    """The (low, high) of an explanation's "usual low–high" band."""
    match = BAND.search(text)
    assert match, text

    def number(s):
        scale = {"k": 1e3, "M": 1e6}.get(s[-1], 1.0)
        return float(s.rstrip("kM").replace(",", "")) * scale

    return number(match.group(1)), number(match.group(2))


def proportional_noise(n=400, level=100.0, seed=0):
    """Readings whose noise scales with their level (a count): level × lognormal(0, 0.1)."""
    return level * np.exp(np.random.default_rng(seed).normal(0, 0.1, n))


# --- log_scale ------------------------------------------------------------------


def test_a_tenfold_collapse_is_more_surprising_on_a_log_scale():
    values = proportional_noise()
    values[-1] = 10.0  # a collapse from ~100 to 10
    times = MONDAY + 3_600.0 * np.arange(len(values))
    _, plain = run(SeriesModel("amount", season="none"), batch_of("t", times, values))
    _, logged = run(SeriesModel("amount", season="none", log_scale=["amount"]), batch_of("t", times, values))
    assert plain[-1] < -4 and logged[-1] < -4, "both see a collapse"
    assert logged[-1] < 1.5 * plain[-1], (logged[-1], plain[-1])
    # a metric not named by log_scale is modelled as before
    _, other = run(SeriesModel("amount", season="none", log_scale=["rows", "lag_*"]), batch_of("t", times, values))
    np.testing.assert_array_equal(other, plain)


def test_a_surge_by_the_same_factor_is_symmetric_on_a_log_scale():
    """On a log scale x10 and /10 are equally far; on the plain scale the surge is far more surprising."""
    up, down = proportional_noise(seed=1), proportional_noise(seed=1)
    up[-1], down[-1] = 1_000.0, 10.0
    times = MONDAY + 3_600.0 * np.arange(len(up))
    z = {}
    for name, values in (("up", up), ("down", down)):
        for scale in ((), ["amount"]):
            z[name, bool(scale)] = run(SeriesModel("amount", season="none", log_scale=scale), batch_of("t", times, values))[1][-1]
    assert z["up", False] > 5 * -z["down", False]
    assert 0.6 < z["up", True] / -z["down", True] < 1.6, z


def test_a_log_scale_metric_is_explained_and_given_context_in_its_own_unit():
    values = proportional_noise()
    values[-1] = 10.0
    times = MONDAY + 3_600.0 * np.arange(len(values))
    metrics = ["rows"] * len(values)
    batch = batch_of("t", times, values, metrics)
    op = SeriesModel("amount", metric_field="merchant_id", season="none", log_scale=["rows"])
    out, _ = run(op, batch)
    expected = out.context[op._context["expected"]]
    sigma = out.context[op._context["sigma"]]
    assert 80 < expected[-1] < 120 and 5 < sigma[-1] < 40, (expected[-1], sigma[-1])
    text = op.describe(op.names[0], len(values) - 1, batch, out)
    assert text.startswith("rows 10 vs"), text
    low, high = band(text)
    typical = np.median(values[:-1])
    assert low < typical < high and low > 50 and high < 200, text
    # the band is the log band mapped back: asymmetric around the median (wider above than below)
    assert high - typical > typical - low


def test_a_log_scale_series_state_is_in_the_metrics_unit():
    values = proportional_noise()
    times = MONDAY + 3_600.0 * np.arange(len(values))
    plain, logged = SeriesModel("amount", season="none"), SeriesModel("amount", season="none", log_scale=["amount"])
    for op in (plain, logged):
        run(op, batch_of("t", times, values))
    assert 90 < plain.key_state(0)["amount_level"] < 110
    assert 80 < logged.key_state(0)["amount_level"] < 120, logged.key_state(0)
    assert 3 < logged.key_state(0)["amount_sigma"] < 30, logged.key_state(0)


def test_a_mixed_long_batch_logs_only_the_named_metrics():
    n = 300
    rng = np.random.default_rng(4)
    metrics = np.array(["rows", "null_share"] * n, dtype=object)
    values = np.where(metrics == "rows", 100 * np.exp(rng.normal(0, 0.1, 2 * n)), 0.02 + rng.normal(0, 0.002, 2 * n))
    times = MONDAY + 600.0 * np.repeat(np.arange(n), 2)
    batch = batch_of("t", times, values, metrics)
    op = SeriesModel("amount", metric_field="merchant_id", season="none", log_scale=["rows"])
    out, z = run(op, batch)
    plain_op = SeriesModel("amount", metric_field="merchant_id", season="none")
    _plain_out, plain_z = run(plain_op, batch)
    shares = metrics == "null_share"
    np.testing.assert_array_equal(z[shares], plain_z[shares])
    assert not np.array_equal(z[~shares], plain_z[~shares])
    expected = out.context[op._context["expected"]]
    assert 0.015 < expected[-1] < 0.025 and 80 < expected[-2] < 120


def test_log_scale_patterns_match_metric_names():
    op = SeriesModel("value", metric_field="metric", log_scale=["rows", "*.distinct_share"])
    assert op.is_logged("rows") and op.is_logged("email.distinct_share")
    assert not op.is_logged("rows_x") and not op.is_logged("email.null_share")


# --- seasonal -----------------------------------------------------------------------


def daily_pair(days=5):
    """Hourly readings of two metrics with the same strong daily pattern (busy 09-17 h)."""
    hours = np.arange(days * 24)
    busy = (hours % 24 >= 9) & (hours % 24 < 17)
    rng = np.random.default_rng(7)
    level = np.where(busy, 500.0, 100.0)
    times = MONDAY + 3_600.0 * np.repeat(hours, 2)
    metrics = np.array(["rows", "share"] * len(hours), dtype=object)
    values = np.repeat(level, 2) + rng.normal(0, 5, 2 * len(hours))
    return batch_of("t", times, values, metrics), busy


def test_seasonal_gives_only_the_matching_metrics_a_season():
    batch, busy = daily_pair()
    op = SeriesModel("amount", metric_field="merchant_id", season="daily", seasonal=["rows"], shift_after=86_400.0 * 10)
    out, z = run(op, batch)
    metrics = batch.categorical["merchant_id"]
    last_days = batch.times >= MONDAY + 3 * 86_400
    peak_rows = last_days & (metrics == "rows") & np.repeat(busy, 2)
    peak_share = last_days & (metrics == "share") & np.repeat(busy, 2)
    assert np.abs(z[peak_rows]).max() < 4, "rows follows the day: its busy hours are expected"
    assert np.median(np.abs(z[peak_share])) > 2 * np.median(np.abs(z[peak_rows])), "share has no season"
    # exactly: each metric is modelled as a model of its own season would model it alone
    for metric, season in (("rows", "daily"), ("share", "none")):
        mine = np.flatnonzero(metrics == metric)
        alone = SeriesModel("amount", metric_field="merchant_id", season=season, shift_after=86_400.0 * 10)
        _, z_alone = run(alone, batch.take(mine))
        np.testing.assert_array_equal(z[mine], z_alone)
    # every reading of the unseasoned metric is explained without a time of day
    for row in np.flatnonzero(metrics == "share").tolist():
        text = op.describe(op.names[0], row, batch, out)
        assert not re.search(r" at \d\d:\d\d", text) and "no profile for this hour" not in text, text
    explained = [op.describe(op.names[0], row, batch, out) for row in np.flatnonzero(peak_rows).tolist()]
    assert all(re.search(r" at \d\d:00", text) for text in explained), explained[:3]


def test_without_seasonal_every_metric_follows_the_season():
    batch, busy = daily_pair()
    op = SeriesModel("amount", metric_field="merchant_id", season="daily", shift_after=86_400.0 * 10)
    _, z = run(op, batch)
    last_days = batch.times >= MONDAY + 3 * 86_400
    assert np.abs(z[last_days & np.repeat(busy, 2)]).max() < 4


def test_the_spec_carries_log_scale_and_seasonal_to_the_model():
    from tocsin.features.featureset import FeatureSet
    from tocsin.spec import load_spec

    spec = load_spec("examples/quality.yaml")
    (model,) = [op for op in FeatureSet.from_spec(spec).operators if isinstance(op, SeriesModel)]
    assert model.log_scale == ("rows", "lag_s") and model.seasonal == ("rows", "lag_s")
    assert model.is_logged("lag_s") and not model.is_logged("amount.null_share")


def test_log_scale_and_seasonal_are_lists_of_names_in_the_spec():
    base = {"name": "s", "source": {"kind": "file", "path": "x.jsonl"},
            "schema": {"id_field": None, "key_field": "k", "time_field": "t", "numeric": ["v"]},
            "detector": {"kind": "max_surprise"}}
    parse_spec({**base, "features": [{"kind": "series", "field": "v", "log_scale": ["v"], "seasonal": None}]})
    with pytest.raises(SpecError, match="log_scale"):
        parse_spec({**base, "features": [{"kind": "series", "field": "v", "log_scale": "v"}]})


# --- batch cuts ------------------------------------------------------------------------


def make_operator():
    return SeriesModel("amount", metric_field="merchant_id", season="daily", log_scale=["m1", "m3"], seasonal=["m2", "m3"],
                       trend=True, stuck=True)


def run_cut(events, sizes, state_at=None):
    """Every event's outputs and context (rows × columns) and explanation, fed in chunks of ``sizes``, with a
    state round trip into a fresh operator after chunk ``state_at``."""
    operator, interner = make_operator(), Interner()
    rows, texts = [], []
    for c, chunk in enumerate(split(events, sizes)):
        batch = make_batch(chunk)
        output = operator.transform_update(batch, interner.keys(batch))
        columns = [output.columns[name] for name in operator.names] + [output.context[name] for name in sorted(output.context)]
        rows.append(np.column_stack(columns))
        texts += [operator.describe(name, row, batch, output) for row in range(len(batch)) for name in operator.names]
        if state_at == c:
            state = {k: np.array(v, copy=True) for k, v in operator.state_dict().items()}
            operator = make_operator()
            operator.load_state_dict(state)
    return np.concatenate(rows), texts


@settings(max_examples=60, deadline=None)
@given(events=streams(), sizes=cuts, state_at=st.one_of(st.none(), st.integers(0, 8)))
def test_log_scale_and_seasonal_outputs_do_not_depend_on_batch_cuts_or_a_restart(events, sizes, state_at):
    whole_rows, whole_texts = run_cut(events, [])
    rows, texts = run_cut(events, sizes, state_at)
    np.testing.assert_array_equal(rows, whole_rows)
    assert texts == whole_texts


def test_the_cut_property_sees_logged_values():
    """The stream the property test uses does exercise the log scale: outputs differ from a plain model."""
    events = [{"key": "a", "time": MONDAY + 60.0 * i, "amount": 50.0 + (i % 7) * 10, "merchant_id": "m1", "city": "x"}
              for i in range(50)]
    events[-1]["amount"] = 5.0
    batch = make_batch(events)
    logged = make_operator().transform_update(batch, Interner().keys(batch)).columns["amount_surprise"]
    plain = SeriesModel("amount", metric_field="merchant_id", season="daily").transform_update(
        batch, Interner().keys(batch)).columns["amount_surprise"]
    assert not np.allclose(logged, plain)
