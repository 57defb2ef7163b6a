"""Tests for src/tocsin/engine/admission.py: the event-time clock and repeated ids.

One event can neither move the clock nor enter twice; implausible and far-off times become dead
letters with the reason; a real jump (a feed resuming after a gap) restarts the clock; verdicts do
not depend on how the stream is cut into batches.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tocsin.batch import EventBatch
from tocsin.engine.admission import Admission
from tocsin.engine.pipeline import Pipeline
from tocsin.spec import AdmissionSpec, parse_spec

from .conftest import small_spec_dict

DAY = 86_400.0
T0 = 1_767_225_600.0  # 2026-01-01


_fresh = iter(range(10**9))


def batch(times, ids=None) -> EventBatch:
    n = len(times)
    ids = ids if ids is not None else [f"auto{next(_fresh)}" for _ in range(n)]
    return EventBatch(ids=np.array(ids, dtype=object), keys=np.array(["k"] * n, dtype=object),
                      times=np.asarray(times, dtype=np.float64), numeric={}, categorical={},
                      positions=np.arange(n, dtype=np.int64))


def verdicts(admission, times, ids=None):
    admitted, refusals = admission.admit(batch(times, ids))
    return admitted.tolist(), {row: (code, reason) for row, code, reason in refusals}


def test_one_event_cannot_move_the_watermark() -> None:
    admission = Admission(AdmissionSpec())
    admitted, _ = verdicts(admission, [T0, T0 + 1, T0 + 2, T0 + 20 * 3600, T0 + 3])
    assert all(admitted), "20 h ahead is inside the default 1-day window"
    assert admission.watermark == T0 + 3, "the clock is the second largest time: the lone jump does not count"
    verdicts(admission, [T0 + 20 * 3600 + 5])
    assert admission.watermark == T0 + 20 * 3600, "a second event that far confirms it"


@pytest.mark.parametrize(("bad", "hint"), [
    (1_767_444_200_000.0, "epoch milliseconds"), (1_767_444_200_000_000.0, "epoch microseconds"),
    (-1e12, ""), (1e15, ""), (1e300, ""), (float("inf"), ""),
])
def test_implausible_times_are_dead_letters_naming_ts(bad, hint) -> None:
    admission = Admission(AdmissionSpec())
    admitted, refused = verdicts(admission, [T0, bad, T0 + 1])
    assert admitted == [True, False, True]
    code, reason = refused[1]
    assert code == "out_of_window" and reason.startswith("field `ts`") and hint in reason
    assert admission.watermark == T0


def test_times_far_from_the_clock_are_refused_until_a_real_jump() -> None:
    admission = Admission(AdmissionSpec(max_ahead=DAY, max_behind=7 * DAY, reclock_after=3))
    verdicts(admission, [T0 + i for i in range(10)])
    admitted, refused = verdicts(admission, [T0 - 8 * DAY, T0 + 2 * DAY, T0 + 10])
    assert admitted == [False, False, True]
    assert "behind" in refused[0][1] and "ahead of" in refused[1][1] and "admission.max_" in refused[1][1]
    # a feed resuming after a 5-day gap: the third event in a row, close to the first two, restarts the clock
    admitted, _ = verdicts(admission, [T0 + 5 * DAY + i for i in range(5)])
    assert admitted == [False, False, True, True, True]
    assert admission.watermark == T0 + 5 * DAY + 3


def test_repeated_ids_are_refused_within_the_remembered_window() -> None:
    admission = Admission(AdmissionSpec(dedup_ids=10))
    admitted, refused = verdicts(admission, [T0 + i for i in range(4)], ["a", "b", "a", "c"])
    assert admitted == [True, True, False, True] and refused[2][0] == "duplicate" and "'a'" in refused[2][1]
    # two generations of 5: 'a' is forgotten after at least 5 and at most 10 newer ids
    verdicts(admission, [T0 + 10 + i for i in range(10)], [f"x{i}" for i in range(10)])
    admitted, _ = verdicts(admission, [T0 + 30], ["a"])
    assert admitted == [True]


def test_a_refused_event_is_not_remembered_as_seen() -> None:
    admission = Admission(AdmissionSpec())
    verdicts(admission, [T0, T0 + 1])
    verdicts(admission, [1e300], ["late"])
    admitted, _ = verdicts(admission, [T0 + 2], ["late"])
    assert admitted == [True], "its first plausible arrival is admitted"


STREAMS = st.lists(
    st.tuples(
        st.one_of(st.floats(T0, T0 + 3 * DAY), st.sampled_from([T0 - 40 * DAY, T0 + 9 * DAY, 1e13, -5.0, 0.0])),
        st.integers(0, 40),
    ),
    min_size=1, max_size=120,
)


@settings(max_examples=60, deadline=None)
@given(STREAMS, st.lists(st.integers(1, 119), max_size=6))
def test_verdicts_do_not_depend_on_batch_cuts(stream, cuts) -> None:
    spec = AdmissionSpec(max_ahead=DAY, max_behind=10 * DAY, reclock_after=3, dedup_ids=16)
    times = [t for t, _ in stream]
    ids = [f"id{i}" for _, i in stream]
    whole = Admission(spec)
    expected, _ = verdicts(whole, times, ids)
    pieces = Admission(spec)
    got: list[bool] = []
    bounds = sorted({0, len(times), *[c for c in cuts if c < len(times)]})
    for a, b in zip(bounds, bounds[1:]):
        got += verdicts(pieces, times[a:b], ids[a:b])[0]
    assert got == expected
    for name, value in whole.state_dict().items():
        np.testing.assert_array_equal(value, pieces.state_dict()[name], err_msg=name)


def test_state_round_trips_through_a_checkpoint() -> None:
    spec = AdmissionSpec(dedup_ids=100)
    first = Admission(spec)
    verdicts(first, [T0 + i for i in range(50)], [f"e{i}" for i in range(50)])
    second = Admission(spec)
    second.load_state_dict(first.state_dict())
    assert verdicts(second, [T0 + 60, T0 + 61], ["e3", "new"])[0] == [False, True]
    assert second.watermark == first.watermark or second.watermark == T0 + 60


def test_the_same_event_sent_eight_times_counts_once(tmp_path) -> None:
    """A client retrying one event 8 times once raised its own score from 39 to 100 (count_1m = 8)."""
    pipeline = Pipeline(parse_spec(small_spec_dict(tmp_path)))
    event = {"tx_id": "t-1", "card_id": "c1", "ts": T0, "amount": 5.0, "merchant_id": "m", "merchant_category": "food",
             "city": "x", "channel": "pos"}
    first = pipeline.process_records([event])
    assert len(first) == 1 and not first.dead_letters
    again = pipeline.process_records([event] * 7)
    assert len(again) == 0 and [d.code for d in again.dead_letters] == ["duplicate"] * 7
    assert pipeline.features.entity_state("c1")["count_1m"] == 1.0
    assert pipeline.events_seen == 1
