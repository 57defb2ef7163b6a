"""Data-quality profiling (tocsin.engine.quality): exact readings of hand-made buckets, schema notices reported
once, drift against a full reference, stale vs late, readings independent of batch cuts and restarts, dead
letters instead of crashes, an end-to-end run into the store, and the spec's checks."""

from __future__ import annotations

import json
import math

import msgspec
import numpy as np
import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.stats import binomtest
from typer.testing import CliRunner

from tests.state_helpers import through_npz
from tocsin.cli.main import app
from tocsin.engine.quality import QualityProfiler
from tocsin.spec import SpecError, parse_spec
from tocsin.store.sql import Store

HOUR = 3_600.0
T0 = 1_767_571_200.0  # 2026-01-05 00:00 UTC
FEATURE = {"kind": "series", "field": "value", "metric_field": "metric"}


def spec_dict(**quality):
    return {"name": "dq", "source": {"kind": "file", "path": "rows.jsonl"},
            "schema": {"id_field": None, "key_field": "table", "time_field": "ts"},
            "quality": {"every": "1h", "lateness": "1m", "min_rows": 5, **quality},
            "features": [dict(FEATURE)], "detector": {"kind": "max_surprise"}}


def profiler(**quality):
    return QualityProfiler(parse_spec(spec_dict(**quality)))


def table(readings):
    """Readings as a list of (source, bucket start, metric, value)."""
    return list(zip(readings.keys.tolist(), readings.times.tolist(), readings.categorical["metric"].tolist(),
                    readings.numeric["value"].tolist()))


def by_bucket(readings):
    """{(source, start): {metric: value}}."""
    out = {}
    for key, start, metric, value in table(readings):
        out.setdefault((key, start), {})[metric] = value
    return out


def fold_all(p, rows):
    """Fold ``rows`` (dicts) then close every bucket; returns (readings by bucket, dead letters, notices)."""
    readings, dead, notices = p.fold_records(rows, np.arange(len(rows)))
    rest, more = p.close_all()
    merged = by_bucket(readings)
    merged.update(by_bucket(rest))
    return merged, dead, notices + more


# --- 1. exact readings --------------------------------------------------------


def test_null_wrong_type_rows_and_lag_of_a_hand_made_bucket_are_exact():
    p = profiler(arrival_field="loaded_at")
    rows = []
    for i in range(20):
        row = {"table": "t", "ts": T0 + 100.0 * i, "loaded_at": T0 + 100.0 * i + 30 + i, "b": "k"}
        if i % 4 == 0:
            row["a"] = None                        # 5 nulls: i = 0, 4, 8, 12, 16
        elif i % 5 == 0:
            row["a"] = "12.5"                      # 3 texts among the 15 non-null: i = 5, 10, 15
        else:
            row["a"] = 1.5
        if i < 8:
            row["c"] = 2.0                         # c absent from 12 of 20 rows: absent counts as null
        rows.append(row)
    got, dead, notices = fold_all(p, rows)
    (bucket,) = got.values()
    assert bucket["rows"] == 20
    assert bucket["a.null_share"] == pytest.approx(5 / 20, abs=1e-12)
    assert bucket["a.wrong_type_share"] == pytest.approx(3 / 15, abs=1e-12)
    assert bucket["b.null_share"] == 0.0 and bucket["b.wrong_type_share"] == 0.0
    assert bucket["c.null_share"] == pytest.approx(12 / 20, abs=1e-12)
    assert bucket["lag_s"] == pytest.approx(np.median([30.0 + i for i in range(20)]))  # 39.5
    assert bucket["rejected.late"] == bucket["rejected.bad_time"] == bucket["rejected.out_of_window"] == 0.0
    assert dead == [] and notices == []
    assert not any(metric.startswith(("table.", "ts.", "loaded_at.")) for metric in bucket), "key, time, arrival unwatched"


def test_with_lower_bound_shares_are_what_they_are_at_least():
    """``quality.shares: lower_bound``: the same hand-made bucket, each share the low end of its Wilson interval
    (scipy's), so 5 nulls in 20 rows read 0.11, not 0.25."""
    p = profiler(arrival_field="loaded_at", shares="lower_bound")
    rows = [{"table": "t", "ts": T0 + 100.0 * i, "loaded_at": T0 + 100.0 * i + 30,
             "a": None if i % 4 == 0 else "12.5" if i % 5 == 0 else 1.5, "b": "k"} for i in range(20)]
    (bucket,) = fold_all(p, rows)[0].values()

    def at_least(hits, n):
        return binomtest(hits, n).proportion_ci(confidence_level=0.95, method="wilson").low

    assert bucket["a.null_share"] == pytest.approx(at_least(5, 20), rel=1e-9)
    assert bucket["a.wrong_type_share"] == pytest.approx(at_least(3, 15), rel=1e-9)
    assert bucket["b.null_share"] == 0.0 and bucket["rows"] == 20


@pytest.mark.parametrize("time_format", ["epoch_s", "epoch_ms", "iso8601"])
def test_buckets_and_lag_are_in_seconds_whatever_the_time_format(time_format):
    from datetime import UTC, datetime

    convert = {"epoch_s": lambda t: t, "epoch_ms": lambda t: t * 1000.0,
               "iso8601": lambda t: datetime.fromtimestamp(t, UTC).isoformat()}[time_format]
    data = spec_dict(arrival_field="at")
    data["schema"]["time_format"] = time_format
    p = QualityProfiler(parse_spec(data))
    rows = [{"table": "t", "ts": convert(T0 + 60.0 * i), "at": convert(T0 + 60.0 * i + 90)} for i in range(70)]
    readings, dead, _ = p.fold_records(rows, np.arange(70))
    assert dead == [] and set(readings.times.tolist()) == {T0}
    assert by_bucket(readings)[("t", T0)]["lag_s"] == pytest.approx(90.0)


def test_a_bucket_under_min_rows_reports_no_shares():
    p = profiler(min_rows=30)
    got, _, _ = fold_all(p, [{"table": "t", "ts": T0 + i, "a": None} for i in range(10)])
    (bucket,) = got.values()
    assert bucket["rows"] == 10 and "a.null_share" not in bucket


def test_readings_are_one_bucket_per_source_and_hour_in_closing_order():
    p = profiler()
    rows = [{"table": k, "ts": T0 + h * HOUR + i * 60.0, "a": 1.0} for h in range(3) for k in ("x", "y") for i in range(10)]
    readings, _, _ = p.fold_records(rows, np.arange(len(rows)))
    # hour 0 of x closes at x's first row of hour 1 + lateness ... x's rows in hour 1 reach 1h + 9 min
    assert sorted({(k, t) for k, t, _, _ in table(readings)}) == [("x", T0), ("x", T0 + HOUR), ("y", T0), ("y", T0 + HOUR)]
    assert {v for k, t, m, v in table(readings) if m == "rows"} == {10.0}
    rest, _ = p.close_all()
    assert sorted({(k, t) for k, t, _, _ in table(rest)}) == [("x", T0 + 2 * HOUR), ("y", T0 + 2 * HOUR)]


# --- 2. schema notices --------------------------------------------------------


def hour_rows(h, n=40, **fields):
    return [{"table": "t", "ts": T0 + h * HOUR + i * (HOUR / n), **fields} for i in range(n)]


def test_schema_changes_are_noticed_once_and_the_first_bucket_sets_the_shape():
    p = profiler()
    changes = []

    def step(rows):
        _readings, dead, notices = p.fold_records(rows, np.arange(len(rows)))
        assert dead == []
        changes.append([(n["fields"]["change"], n["fields"]["field"]) for n in notices])

    step(hour_rows(0, a=1.0, b="x"))                       # the first bucket: its fields are established silently
    step(hour_rows(1, a=2.0, b="y"))                       # closes hour 0
    step(hour_rows(2, a=2.0, b="y", c="new"))              # closes hour 1
    step(hour_rows(3, a=2.0, b="y", c="new"))              # closes hour 2: c added
    step(hour_rows(4, a=2.0, c="new"))                     # closes hour 3: nothing new
    step(hour_rows(5, a="2.0", c="new"))                   # closes hour 4: b removed
    step(hour_rows(6, a="3.0", c="new"))                   # closes hour 5: a number -> text
    _rest, more = p.close_all()                             # closes hour 6: a is text now, nothing new
    changes.append([(n["fields"]["change"], n["fields"]["field"]) for n in more])
    assert changes == [[], [], [], [("added", "c")], [], [("removed", "b")], [("type_changed", "a")], []]


def test_a_schema_notice_is_a_warning_anomaly_of_the_source_with_its_reason():
    p = profiler()
    p.fold_records(hour_rows(0, a=1.0), np.arange(40))
    _, _, notices = p.fold_records(hour_rows(1, a=1.0, z=5.0) + hour_rows(2, a=1.0, z=5.0), np.arange(80))
    (notice,) = notices
    assert notice["entity"] == "t" and notice["event_time"] == T0 + HOUR and notice["detector"] == "schema"
    assert notice["severity"] == "warning" and notice["fields"] == {"field": "z", "change": "added"}
    assert "field `z` added to t" in notice["explanation"][0]["text"] and "number" in notice["explanation"][0]["text"]


def test_a_field_missing_from_a_few_rows_is_not_removed_but_missing_from_a_whole_bucket_is():
    p = profiler()
    p.fold_records(hour_rows(0, a=1.0, b=1.0), np.arange(40))
    few = hour_rows(1, n=5, a=1.0)                         # 5 rows without b, which was in every row: no chance
    _, _, notices = p.fold_records(few + hour_rows(2, a=1.0, b=1.0), np.arange(45))
    assert [n["fields"]["change"] for n in notices] == ["removed"], "b was in every row: absent from all is a change"
    # a field usually in half the rows missing from 3 rows is a 1-in-8 chance: no notice
    q = profiler()
    rows = [{**r, **({"b": 1.0} if i % 2 else {})} for i, r in enumerate(hour_rows(0, a=1.0))]
    q.fold_records(rows, np.arange(40))
    _, _, notices = q.fold_records(hour_rows(1, n=3, a=1.0) + hour_rows(2, a=1.0), np.arange(43))
    assert notices == []


# --- 3. drift -----------------------------------------------------------------


def test_drift_is_near_zero_when_stationary_and_large_when_shifted_for_numbers_and_text():
    rng = np.random.default_rng(5)
    p = profiler(reference=3)
    weights = [0.5, 0.3, 0.2]

    def rows(h, shifted):
        n = 300
        amount = rng.normal(100.0 * (3 if shifted else 1), 10.0, n)
        country = rng.choice(["FR", "DE", "US"], size=n, p=[0.05, 0.05, 0.9] if shifted else weights)
        return [{"table": "t", "ts": T0 + h * HOUR + i * (HOUR / n), "amount": float(a), "country": str(c)}
                for i, (a, c) in enumerate(zip(amount, country))]

    all_rows = [r for h in range(8) for r in rows(h, shifted=h == 7)]
    got, dead, _ = fold_all(p, all_rows)
    buckets = [got[("t", T0 + h * HOUR)] for h in range(8)]
    for h in range(3):
        assert "amount.drift" not in buckets[h] and "country.drift" not in buckets[h], "no drift before a full reference"
    for h in range(3, 7):
        assert abs(buckets[h]["amount.drift"]) < 3.5 and abs(buckets[h]["country.drift"]) < 3.5, buckets[h]
        assert buckets[h]["country.unseen_share"] == 0.0
    assert buckets[7]["amount.drift"] > 20 and buckets[7]["country.drift"] > 20, buckets[7]
    assert dead == []


def test_ids_get_a_distinct_share_and_no_drift():
    p = profiler(reference=2)
    rows = [{"table": "t", "ts": T0 + h * HOUR + i * 60.0, "email": f"u{i % 25 if h == 3 else h * 100 + i}@x"}
            for h in range(4) for i in range(50)]
    got, _, _ = fold_all(p, rows)
    assert got[("t", T0)]["email.distinct_share"] == 1.0
    assert got[("t", T0 + 3 * HOUR)]["email.distinct_share"] == pytest.approx(0.5), "every id twice: duplicates"
    assert not any("email.drift" in bucket for bucket in got.values())


# --- 4. stale vs late ---------------------------------------------------------


def test_a_stale_source_is_not_late_but_a_row_for_a_closed_bucket_is():
    p = profiler(arrival_field="loaded_at")
    stale = 5 * HOUR
    rows = []
    for h in range(6):
        # a fresh table loads each hour; a stale one loads the rows of 5 hours before, in order
        rows += [{"table": "fresh", "ts": T0 + h * HOUR + i * 90.0, "loaded_at": T0 + h * HOUR + i * 90.0 + 60, "a": 1.0}
                 for i in range(40)]
        rows += [{"table": "stale", "ts": T0 + (h - 5) * HOUR + i * 90.0, "loaded_at": T0 + (h - 5) * HOUR + i * 90.0 + stale,
                  "a": 1.0} for i in range(40)]
    readings, dead, _ = p.fold_records(rows, np.arange(len(rows)))
    assert dead == [], "rows hours behind the stream's clock but in order for their own source are not late"
    got = by_bucket(readings)
    stale_buckets = [b for (k, _), b in got.items() if k == "stale"]
    assert len(stale_buckets) == 5 and all(b["lag_s"] == pytest.approx(stale) and b["rows"] == 40 for b in stale_buckets)
    assert all(b["lag_s"] == pytest.approx(60.0) for (k, _), b in got.items() if k == "fresh")
    # the fresh table's hour 0 closed long ago: a straggler for it is late, counted in the bucket it arrived in
    straggler = {"table": "fresh", "ts": T0 + 10.0, "loaded_at": T0 + 6 * HOUR, "a": 1.0}
    _, dead, _ = p.fold_records([straggler], np.array([len(rows)]))
    (letter,) = dead
    assert letter.code == "late" and letter.position == len(rows) and "quality.lateness" in letter.reason
    assert json.loads(letter.raw) == straggler
    rest, _ = p.close_all()
    last = by_bucket(rest)[("fresh", T0 + 5 * HOUR)]
    assert last["rows"] == 40 and last["rejected.late"] == pytest.approx(1 / 41)


# --- 5. batch cuts and restarts -----------------------------------------------


SOURCES = ["a", "b", "c"]


@st.composite
def raw_lines(draw):
    """JSON lines of a few sources whose times mostly move on (sometimes back: late), with odd values,
    changing fields and types, bad times, missing keys and lines that are not JSON."""
    steps = st.sampled_from([0.0, 1.0, 60.0, 600.0, 1_200.0, 3_600.0, 5_000.0])
    backs = st.sampled_from([0.0] * 6 + [120.0, 4_000.0])
    values = st.one_of(st.none(), st.sampled_from([0, 1, 2.5, -3.0, 1e6]), st.sampled_from(["x", "y", "z", "1.5"]),
                       st.booleans(), st.just([1, 2]))
    spec = st.tuples(st.sampled_from(SOURCES + ["", None]), steps, backs, st.booleans(), values, values,
                     st.sampled_from(["ok", "ok", "ok", "ok", "ok", "ok", "notjson", "badtime", "list"]))
    clock = T0
    lines = []
    for key, step, back, arrival, v1, v2, kind in draw(st.lists(spec, max_size=120)):
        clock += step
        if kind == "notjson":
            lines.append(b'{"table": "a", "ts": ')
            continue
        if kind == "list":
            lines.append(b"[1, 2]")
            continue
        row = {"ts": clock - back if kind != "badtime" else "yesterday"}
        if key is not None:
            row["table"] = key
        if arrival:
            row["loaded_at"] = clock + 30.0
        row["n"] = v1
        if v2 is not None:
            row["m" if step < 1_000 else "k"] = v2
        lines.append(msgspec.json.encode(row))
    return lines


def run_cut(lines, sizes, state_at=None, **quality):
    """Fold ``lines`` in chunks of ``sizes`` (the rest in one), optionally through a state round trip after chunk
    ``state_at``, then close all; returns every reading, dead letter and notice in order."""
    spec = parse_spec(spec_dict(arrival_field="loaded_at", min_rows=2, reference=2, bins=3, **quality))
    p = QualityProfiler(spec)
    readings, dead, notices = [], [], []
    chunks, start = [], 0
    for size in sizes:
        if start < len(lines):
            chunks.append((start, lines[start:start + size]))
            start += size
    chunks.append((start, lines[start:]))
    for c, (offset, chunk) in enumerate(chunks):
        r, d, n = p.fold_lines(chunk, np.arange(offset, offset + len(chunk)))
        readings += list(zip(r.ids.tolist(), table(r), r.labels.tolist()))
        dead += [(x.position, x.code, x.reason, x.raw) for x in d]
        notices += n
        if state_at == c:
            p = through_npz(p.state_dict(), QualityProfiler(spec))
    r, n = p.close_all()
    readings += list(zip(r.ids.tolist(), table(r), r.labels.tolist()))
    return readings, dead, notices + n


@settings(max_examples=60, deadline=None)
@given(lines=raw_lines(), sizes=st.lists(st.integers(1, 30), max_size=8), state_at=st.one_of(st.none(), st.integers(0, 8)))
def test_readings_dead_letters_and_notices_do_not_depend_on_batch_cuts_or_a_restart(lines, sizes, state_at):
    whole = run_cut(lines, [])
    assert run_cut(lines, sizes) == whole
    assert run_cut(lines, sizes, state_at) == whole
    _readings, dead, _ = whole
    assert len({d[0] for d in dead}) == len(dead), "one dead letter per refused line"


def test_the_property_streams_exercise_late_rows_notices_and_drift():
    """The generator above is not vacuous: a fixed stream of its shape yields late rows, notices and drift."""
    lines = []
    for h in range(6):
        for i in range(12):
            lines.append(msgspec.json.encode({"table": "a", "ts": T0 + h * HOUR + i * 300.0, "n": float(i % 4),
                                              **({"m": "x"} if h >= 4 else {}), "loaded_at": T0 + h * HOUR + i * 300.0}))
    lines.append(msgspec.json.encode({"table": "a", "ts": T0, "n": 1.0}))
    readings, dead, notices = run_cut(lines, [5, 7])
    assert [d[1] for d in dead] == ["late"]
    assert [n["fields"]["change"] for n in notices] == ["added"]
    assert any(metric == "n.drift" for _, (_, _, metric, _), _ in readings)
    assert run_cut(lines, [5, 7], state_at=1) == (readings, dead, notices)


def test_text_drift_references_survive_a_state_round_trip_at_any_cut():
    lines = [msgspec.json.encode({"table": "a", "ts": T0 + h * HOUR + i * 200.0, "c": ["x", "y", "z"][(i + h) % 3 if h < 5 else 0],
                                  "n": float(i)})
             for h in range(7) for i in range(15)]
    whole = run_cut(lines, [])
    assert any(metric == "c.drift" for _, (_, _, metric, _), _ in whole[0])
    assert any(metric == "c.unseen_share" for _, (_, _, metric, _), _ in whole[0])
    for state_at in range(6):
        assert run_cut(lines, [16] * 6, state_at=state_at) == whole, state_at


def quality_pipeline_spec():
    with open("examples/quality.yaml") as handle:
        data = yaml.safe_load(handle)
    data["source"] = {"kind": "file", "path": "rows.jsonl"}
    data["quality"]["reference"] = 3
    data["detector"].update(warmup_events=100, train_window=200)
    return parse_spec(data)


def table_rows(hours=24, seed=0):
    rng = np.random.default_rng(seed)
    rows = []
    for h in range(hours):
        for name in ("orders", "payments", "users"):
            n = int(rng.integers(30, 50))
            rows += [{"table": name, "ts": T0 + h * HOUR + i * HOUR / n, "loaded_at": T0 + (h + 1) * HOUR + 200.0,
                      "amount": float(rng.lognormal(3, 0.4)), "country": str(rng.choice(["FR", "DE"])),
                      **({"coupon": "C1"} if name == "users" and h >= 15 else {})} for i in range(n)]
    return rows


def scores(scored):
    """(reading id, score or None before warm-up, anomaly?) of each reading a batch scored."""
    return [(i, None if math.isnan(s) else s, a)
            for i, s, a in zip(scored.events.ids.tolist(), scored.score.tolist(), scored.is_anomaly.tolist())]


def run_pipeline(records, cuts, state_at=None):
    from tocsin.engine.pipeline import Pipeline

    spec = quality_pipeline_spec()
    pipeline, out, notices = Pipeline(spec), [], []
    i = c = 0
    while i < len(records):
        size = cuts[c % len(cuts)]
        scored = pipeline.process_records(records[i:i + size], source="test")
        out += scores(scored)
        notices += [n["event_id"] for n in scored.notices]
        i += size
        c += 1
        if state_at == c:
            pipeline = through_npz(pipeline.state_dict(), Pipeline(spec))
    last = pipeline.finish()
    if last is not None:
        out += scores(last)
        notices += [n["event_id"] for n in last.notices]
    return out, notices


def test_the_pipelines_scores_and_notices_do_not_depend_on_batch_cuts_or_a_checkpoint():
    records = table_rows()
    whole = run_pipeline(records, [len(records)])
    assert len(whole[0]) > 500 and sum(score is not None for _, score, _ in whole[0]) > 300
    assert whole[1] == [f"schema:users:{int((T0 + 15 * HOUR) * 1000)}:added:coupon"]
    for cuts, state_at in (([37, 500, 3], None), ([1_000], 1), ([123, 77], 5)):
        assert run_pipeline(records, cuts, state_at) == whole, (cuts, state_at)


def test_an_idle_pipeline_closes_buckets_by_wall_time_and_finish_closes_the_rest():
    from tocsin.engine.pipeline import Pipeline

    pipeline = Pipeline(quality_pipeline_spec())
    rows = [{"table": "orders", "ts": T0 + i * 60.0, "amount": 1.0} for i in range(50)]
    assert len(pipeline.process_records(rows, source="test").events) == 0, "the hour is still open"
    assert pipeline.idle(T0 + HOUR + 60.0) is None, "not yet past lateness (10 min)"
    closed = pipeline.idle(T0 + HOUR + 601.0)
    assert closed is not None and set(closed.events.times.tolist()) == {T0}
    assert dict(zip(closed.events.categorical["metric"].tolist(), closed.events.numeric["value"].tolist()))["rows"] == 50
    assert pipeline.finish() is None, "nothing left open"
    late = pipeline.process_records([{"table": "orders", "ts": T0 + 5.0, "amount": 1.0}], source="test")
    assert [d.code for d in late.dead_letters] == ["late"]
    pipeline.process_records([{"table": "orders", "ts": T0 + HOUR + 5.0, "amount": 1.0}], source="test")
    last = pipeline.finish()
    assert last is not None and set(last.events.times.tolist()) == {T0 + HOUR}


# --- 6. malformed rows --------------------------------------------------------


def test_malformed_lines_and_rows_without_a_source_are_dead_letters_with_reasons():
    p = profiler()
    lines = [b'{"table": "t", "ts": 1767571200.0, "a": 1}',
             b'{"table": "t", "ts": ',                      # truncated
             b"not json at all",
             b"[1, 2, 3]",                                  # JSON, not an object
             b'"just a string"',
             b'{"ts": 1767571201.0, "a": 1}',              # no source
             b'{"table": "", "ts": 1767571201.0}',         # empty source
             b'{"table": {"x": 1}, "ts": 1767571201.0}',   # a source that is not text
             b'{"table": true, "ts": 1767571201.0}',
             b'{"table": "t", "ts": "soon"}',              # unreadable time
             b'{"table": "t", "ts": null}',
             b'{"table": "t", "ts": false}',
             b'{"table": "t", "ts": 1767571202.0, "a": {"deep": [1, {"x": null}]}}']
    _readings, dead, _notices = p.fold_lines(lines, np.arange(100, 100 + len(lines)))
    codes = {d.position - 100: d.code for d in dead}
    assert codes == {1: "malformed", 2: "malformed", 3: "malformed", 4: "malformed", 5: "missing_field", 6: "wrong_type",
                     7: "wrong_type", 8: "wrong_type", 9: "bad_time", 10: "bad_time", 11: "bad_time"}
    reasons = {d.position - 100: d.reason for d in dead}
    assert reasons[1].startswith("not JSON") and reasons[3] == "record is not a JSON object"
    assert "`table`" in reasons[5] and "every row must name its source" in reasons[5]
    assert "`ts`" in reasons[9] and "no readable event time" in reasons[9]
    assert all(d.raw == lines[d.position - 100] for d in dead), "the raw line is kept"
    rest, _ = p.close_all()
    (bucket,) = by_bucket(rest).values()
    assert bucket["rows"] == 2 and bucket["rejected.bad_time"] == pytest.approx(3 / 5)


def test_records_and_arrow_tables_are_profiled_like_lines():
    import pyarrow as pa

    from tocsin.sources.base import SourceBatch

    rows = [{"table": "t", "ts": T0 + i * 60.0, "a": float(i) if i % 3 else None} for i in range(30)]
    expected = fold_all(profiler(), rows)
    lines = [msgspec.json.encode(r) for r in rows]
    got = []
    for raw in (SourceBatch(lines=lines, positions=np.arange(30), next_position=30),
                SourceBatch(table=pa.Table.from_pylist(rows), positions=np.arange(30), next_position=30),
                SourceBatch(records=rows, positions=np.arange(30), next_position=30)):
        p = profiler()
        r, d, n = p.fold(raw)
        rest, more = p.close_all()
        merged = by_bucket(r)
        merged.update(by_bucket(rest))
        got.append((merged, d, n + more))
    assert got == [expected] * 3


def test_a_line_with_two_objects_beside_a_split_row_is_malformed_whatever_the_cut():
    lines = [b'{"table": "t", "ts": 1767571200.0, "a": 1}, {"table": "t", "ts": 1767571201.0, "a": 2}',
             b'{"table": "t", "ts": 1767571202.0, "a": [1',   # a row split over two lines
             b'2]}']
    whole = run_cut(lines, [])
    one_by_one = run_cut(lines, [1, 1, 1])
    assert [d[1] for d in whole[1]] == ["malformed"] * 3
    assert whole == one_by_one


def test_an_unreadable_time_on_the_first_row_neither_makes_a_1970_reading_nor_loses_readings():
    from tocsin.engine.pipeline import Pipeline

    with open("examples/quality.yaml") as handle:
        data = yaml.safe_load(handle)
    data["source"] = {"kind": "file", "path": "rows.jsonl"}
    spec = parse_spec(data)
    good = [{"table": "t", "ts": T0 + 60.0 * i, "a": float(i % 5), "loaded_at": T0 + 60.0 * i + 600} for i in range(600)]
    clean = Pipeline(spec).process_records(good, source="test")
    assert clean.dead_letters == [] and len(clean.events) > 0
    scored = Pipeline(spec).process_records([{"table": "t", "ts": "yesterday"}, *good], source="test")
    assert [d.code for d in scored.dead_letters] == ["bad_time"], "only the row itself is refused, no reading"
    assert scored.events.times.min() >= T0, "no reading for a bucket at 1970-01-01"


def nan_rows():
    """Three hours of the same values 0..39 of `a`; one of hour 0's is NaN (records and Arrow tables carry NaN)."""
    return [{"table": "t", "ts": T0 + h * HOUR + 60.0 * i, "a": math.nan if (h, i) == (0, 0) else float(i)}
            for h in range(3) for i in range(40)]


def drifts(*batches):
    return [(t, v) for r in batches for _, t, m, v in table(r) if m == "a.drift"]


def test_a_nan_value_does_not_make_a_false_drift():
    p = profiler(reference=1)
    readings, _, _ = p.fold_records(nan_rows(), np.arange(120))
    rest, _ = p.close_all()
    (first, _second) = drifts(readings, rest)
    assert first[0] == T0 + HOUR and abs(first[1]) < 5, first


def test_a_nan_value_survives_a_checkpoint_without_crashing():
    rows = nan_rows()
    whole = profiler(reference=1)
    expected = drifts(whole.fold_records(rows, np.arange(120))[0], whole.close_all()[0])
    p = profiler(reference=1)
    p.fold_records(rows[:61], np.arange(61))  # closes hour 0, the NaN in its summary
    q = profiler(reference=1)
    q.load_state_dict(p.state_dict())
    got = drifts(q.fold_records(rows[61:], np.arange(61, 120))[0], q.close_all()[0])
    assert got == expected


def test_a_decoded_batch_without_raw_rows_is_refused_with_a_clear_error():
    from tocsin.batch import EventBatch
    from tocsin.sources.base import SourceBatch

    events = EventBatch(ids=np.array(["1"], dtype=object), keys=np.array(["t"], dtype=object), times=np.array([T0]))
    with pytest.raises(ValueError, match="profiles raw rows"):
        profiler().fold(SourceBatch(events=events, positions=np.arange(1), next_position=1))


# --- 7. end to end --------------------------------------------------------------


def quality_spec_file(tmp_path, data_path):
    with open("examples/quality.yaml") as handle:
        data = yaml.safe_load(handle)
    data["source"] = {"kind": "file", "path": str(data_path)}
    data["quality"]["reference"] = 3
    data["detector"].update(warmup_events=100, train_window=200)
    data["calibration"]["window"] = 500
    data["store"]["url"] = f"sqlite:///{tmp_path / 'quality.db'}"
    data["checkpoint"]["dir"] = str(tmp_path / "checkpoints")
    path = tmp_path / "quality.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_a_run_over_a_file_stores_the_added_field_as_a_schema_anomaly_and_alert(tmp_path):
    rng = np.random.default_rng(3)
    rows = []
    for h in range(30):
        for name in ("orders", "payments"):
            n = int(rng.integers(40, 60))
            for i in range(n):
                ts = T0 + h * HOUR + i * HOUR / n
                row = {"table": name, "ts": ts, "loaded_at": T0 + (h + 1) * HOUR + 300.0, "amount": float(rng.lognormal(3, 0.5)),
                       "country": str(rng.choice(["FR", "DE", "US"])), "is_incident": 0, "incident": ""}
                if name == "orders" and h >= 20:
                    row["promo_code"] = f"P{int(rng.integers(50))}"
                rows.append(row)
    data_path = tmp_path / "rows.jsonl"
    data_path.write_bytes(b"\n".join(msgspec.json.encode(r) for r in rows) + b"\n")
    result = CliRunner().invoke(app, ["run", str(quality_spec_file(tmp_path, data_path)), "--json", str(tmp_path / "out.json")],
                                catch_exceptions=False)
    assert result.exit_code == 0, result.output
    summary = json.loads((tmp_path / "out.json").read_text())
    assert summary["dead_letters"] == 0 and summary["scored"] > 0, summary
    store = Store(f"sqlite:///{tmp_path / 'quality.db'}")
    schema = [a for a in store.anomalies(pipeline="quality", limit=100_000) if a["detector"] == "schema"]
    assert [(a["entity"], a["event_time"]) for a in schema] == [("orders", T0 + 20 * HOUR)], schema
    assert "promo_code" in json.dumps(schema[0], default=str)
    import sqlite3

    with sqlite3.connect(tmp_path / "quality.db") as db:
        alerts = db.execute("select entity from alerts").fetchall()
    assert ("orders",) in alerts


def test_a_run_over_only_malformed_lines_exits_with_a_problem(tmp_path):
    data_path = tmp_path / "rows.jsonl"
    data_path.write_bytes(b"\n".join([b"{not json", b'{"ts": 1767571200.0}', b"[1]"] * 10) + b"\n")
    out = tmp_path / "out.json"
    result = CliRunner().invoke(app, ["run", str(quality_spec_file(tmp_path, data_path)), "--json", str(out)],
                                catch_exceptions=False)
    assert result.exit_code == 1, result.output
    assert "every one of the 30 records was a dead letter" in result.output
    summary = json.loads(out.read_text())
    assert summary["dead_letters"] == 30 and "dead letter" in summary["problem"]


# --- 8. spec validation -----------------------------------------------------------


def test_quality_spec_mistakes_name_the_fields_and_the_fix():
    aggregate = {"every": "1m", "metrics": [{"name": "requests", "kind": "count"}]}
    with pytest.raises(SpecError, match=r"quality and aggregate.*remove one of them"):
        parse_spec({**spec_dict(), "aggregate": aggregate})
    fix = r"use \{kind: series, field: value, metric_field: metric\}"
    for feature in ({"kind": "series", "field": "amount", "metric_field": "metric"},
                    {"kind": "series", "field": "value"},
                    {"kind": "series", "field": "value", "metric_field": "name"},
                    {"kind": "novelty", "field": "metric"}):
        data = spec_dict()
        data["features"] = [dict(FEATURE), feature]
        with pytest.raises(SpecError, match=rf"features.1: a quality pipeline's features read its readings; {fix}"):
            parse_spec(data)
    with pytest.raises(SpecError, match=r"\['email'\] are both in columns and ignore"):
        parse_spec(spec_dict(columns=["amount", "email"], ignore=["email", "id"]))
    with pytest.raises(SpecError, match=r"quality.arrival_field: 'ts' is the key or time field"):
        parse_spec(spec_dict(arrival_field="ts"))
    assert parse_spec(spec_dict(columns=["amount"], ignore=["id"])).quality.columns == ["amount"]


def test_columns_and_ignore_choose_the_watched_fields():
    rows = [{"table": "t", "ts": T0 + i, "amount": 1.0, "email": "x", "id": str(i)} for i in range(10)]
    only, _, _ = fold_all(profiler(columns=["amount"]), rows)
    ignored, _, _ = fold_all(profiler(ignore=["id", "email"]), rows)
    for got in (only, ignored):
        (bucket,) = got.values()
        assert {m.split(".")[0] for m in bucket if "." in m} == {"amount", "rejected"}


def test_the_example_spec_loads():
    from tocsin.spec import load_spec

    spec = load_spec("examples/quality.yaml")
    assert spec.quality is not None and spec.quality.every == HOUR and spec.quality.arrival_field == "loaded_at"
    assert not math.isnan(spec.quality.lateness)
