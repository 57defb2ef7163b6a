"""Admission: which decoded events may change a stream's state — its event-time clock and repeated ids.

A decoded event is well formed, but it can still poison what every later event
sees. Two guards, both walking the batch event by event in arrival order (so a
stream cut into other batches admits exactly the same events), both part of the
pipeline's checkpointed state:

**The event-time clock.** The stream's watermark is the *second* largest event
time admitted so far: one event can never move it, however far in the future it
claims to be (an alert watermark moved by a single millisecond timestamp once
resolved every open alert and every later one at birth). An event is admitted
when its time is plausible (not negative, before 2100 in epoch seconds: a
millisecond stamp gets a hint) and, once the clock runs, within ``max_behind`` before and ``max_ahead``
after it; otherwise it becomes a dead letter (``out_of_window``) and touches
nothing. A real jump — a feed resuming after a long gap, or a clock that a pair
of bad events moved — shows as ``reclock_after`` rejected events in a row lying
within ``max_ahead`` of each other: the clock then restarts at them (those
earlier ones stay dead letters; the next is admitted).

**Repeated ids.** A client that retries, or a producer that sends twice, must
not count an event twice (the same id sent 8 times once raised its own score
from 39 to 100). The 64-bit fingerprints of the last ``dedup_ids`` admitted ids
(at least half that many; two generations rotate) are remembered; an id seen
there is a dead letter (``duplicate``). 64-bit fingerprints collide about once
in 10^13 pairs: a real event mistaken for a repeat is that rare.

Good at: bounding what one bad or repeated event can do, at ~0.1 µs per event
(compiled kernels, no Python per event). Fails at: an attacker who controls
many events' times (they can move the clock by up to ``max_ahead`` per pair, as
a real feed can); duplicates older than the remembered ids.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from tocsin.batch import EventBatch
from tocsin.features.keys import encode_strings
from tocsin.spec import AdmissionSpec

#: plausible event times (epoch seconds, or seconds from any origin): 0 .. 2100-01-01
EARLIEST = 0.0
LATEST = 4_102_444_800.0

# verdicts of the clock kernel
ADMITTED, IMPLAUSIBLE, TOO_EARLY, TOO_LATE = 0, 1, 2, 3


@njit(cache=True, nogil=True)
def _clock(times, state, max_ahead, max_behind, reclock_after, verdicts):
    """Walk ``times`` in order: verdict per event, ``state`` updated in place.

    ``state``: [top1, top2, streak_count, streak_first] (the two largest admitted times,
    consecutive out-of-window rejections and the time of the first of them)."""
    top1, top2, streak, first = state[0], state[1], state[2], state[3]
    for i in range(times.shape[0]):
        t = times[i]
        if not (t >= EARLIEST and t < LATEST):
            verdicts[i] = IMPLAUSIBLE
            continue
        reference = top2 if top2 > -np.inf else top1
        verdict = ADMITTED
        if reference > -np.inf:
            if t > reference + max_ahead:
                verdict = TOO_LATE
            elif t < reference - max_behind:
                verdict = TOO_EARLY
        if verdict != ADMITTED:
            if streak > 0 and abs(t - first) <= max_ahead:
                streak += 1
            else:
                streak, first = 1.0, t
            if streak >= reclock_after:  # a real jump: restart the clock here
                top1, top2, streak = -np.inf, -np.inf, 0.0
                verdict = ADMITTED
            else:
                verdicts[i] = verdict
                continue
        streak = 0.0
        verdicts[i] = ADMITTED
        if t > top1:
            top1, top2 = t, top1
        elif t > top2:
            top2 = t
    state[0], state[1], state[2], state[3] = top1, top2, streak, first


@njit(cache=True, nogil=True)
def _dedup(fingerprints, admitted, table_new, table_old, counts, capacity, repeated):
    """Mark ``repeated`` the admitted rows whose fingerprint is in either generation, insert the others
    into the new one; when it holds ``capacity`` ids it becomes the old one (the old one is cleared).
    Tables are open-addressing sets of uint64 (0 = empty; a zero fingerprint is stored as 1)."""
    mask = np.uint64(table_new.shape[0] - 1)
    for i in range(fingerprints.shape[0]):
        if not admitted[i]:
            continue
        f = fingerprints[i]
        if f == 0:
            f = np.uint64(1)
        seen = False
        for table in (table_new, table_old):
            slot = f & mask
            while table[slot] != 0:
                if table[slot] == f:
                    seen = True
                    break
                slot = (slot + np.uint64(1)) & mask
            if seen:
                break
        if seen:
            repeated[i] = True
            continue
        slot = f & mask
        while table_new[slot] != 0:
            slot = (slot + np.uint64(1)) & mask
        table_new[slot] = f
        counts[0] += 1
        if counts[0] >= capacity:
            table_old[:] = table_new
            table_new[:] = 0
            counts[0] = 0


class Admission:
    """The event-time clock and the repeated-id filter of one stream (see the module docstring)."""

    def __init__(self, spec: AdmissionSpec) -> None:
        self.spec = spec
        self.clock = np.array([-np.inf, -np.inf, 0.0, 0.0])
        self.dedup_capacity = 0 if spec.dedup_ids is None else max(1, spec.dedup_ids // 2)
        size = 1 << max(4, int(2 * self.dedup_capacity - 1).bit_length()) if self.dedup_capacity else 0
        self.seen_new = np.zeros(size, dtype=np.uint64)
        self.seen_old = np.zeros(size, dtype=np.uint64)
        self.seen_count = np.zeros(1, dtype=np.int64)

    @property
    def watermark(self) -> float:
        """The stream's event-time watermark: the second largest admitted event time (-inf: not yet)."""
        return float(self.clock[1])

    def admit(self, events: EventBatch) -> tuple[np.ndarray, list[tuple[int, str, str]]]:
        """The rows of ``events`` that may change state (a boolean mask) and, for the others,
        ``(row, code, reason)``; the clock and the remembered ids move on."""
        n = len(events)
        verdicts = np.zeros(n, dtype=np.int8)
        spec = self.spec
        _clock(events.times.astype(np.float64, copy=False), self.clock,
               np.inf if spec.max_ahead is None else spec.max_ahead,
               np.inf if spec.max_behind is None else spec.max_behind, float(spec.reclock_after), verdicts)
        admitted = verdicts == ADMITTED
        repeated = np.zeros(n, dtype=bool)
        if self.dedup_capacity and admitted.any():
            fingerprints = encode_strings(events.ids, events.encoding(events.ids))[4]
            _dedup(fingerprints, admitted, self.seen_new, self.seen_old, self.seen_count, self.dedup_capacity, repeated)
            admitted &= ~repeated
        if admitted.all():
            return admitted, []
        rejected = []
        for row in np.flatnonzero(~admitted).tolist():
            rejected.append(self._why(events, row, int(verdicts[row]), bool(repeated[row])))
        return admitted, rejected

    def _why(self, events: EventBatch, row: int, verdict: int, repeated: bool) -> tuple[int, str, str]:
        t = float(events.times[row])
        if repeated:
            return row, "duplicate", f"event id {events.ids[row]!r} was already processed (the last {self.spec.dedup_ids:,} ids are remembered)"
        if verdict == IMPLAUSIBLE:
            hint = ""
            if LATEST * 100 <= abs(t) < LATEST * 1e4:
                hint = "; it looks like epoch milliseconds: set schema.time_format: epoch_ms"
            elif LATEST * 1e4 <= abs(t) < LATEST * 1e7:
                hint = "; it looks like epoch microseconds: convert to seconds upstream"
            return row, "out_of_window", f"field `ts`: event time {t!r} is not a plausible time in seconds (0 to 2100-01-01 as epoch seconds){hint}"
        watermark = self.watermark if np.isfinite(self.watermark) else float(self.clock[0])
        side, limit = ("ahead of", self.spec.max_ahead) if verdict == TOO_LATE else ("behind", self.spec.max_behind)
        return row, "out_of_window", (f"field `ts`: event time {t:.3f} is more than {limit:g} s {side} the stream's event-time "
                                      f"clock ({watermark:.3f}); see admission.max_ahead / max_behind")

    def state_dict(self) -> dict[str, np.ndarray]:
        return {"clock": self.clock.copy(), "seen_new": self.seen_new.copy(), "seen_old": self.seen_old.copy(),
                "seen_count": self.seen_count.copy()}

    def load_state_dict(self, state: dict[str, np.ndarray]) -> None:
        self.clock = np.array(state["clock"], dtype=np.float64)
        if len(state["seen_new"]) == len(self.seen_new):  # the same dedup_ids; otherwise start afresh
            self.seen_new = np.array(state["seen_new"], dtype=np.uint64)
            self.seen_old = np.array(state["seen_old"], dtype=np.uint64)
            self.seen_count = np.array(state["seen_count"], dtype=np.int64)
