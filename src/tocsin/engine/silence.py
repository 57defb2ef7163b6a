"""Silence: an entity that stops reporting is an anomaly while it is silent, with no event to trigger it.

Hosts, sensors and services report at a steady pace; one that falls silent is
often the worst incident of all (a crashed host, a cut cable), and a detector
that scores events never sees it: there is no event. Each entity learns its
usual reporting interval (a running mean of the gaps between its events,
gaps that were themselves silences left out) and their spread; when the stream's event-time
clock passes ``factor`` times that interval after its last event (or, with ``spread``,
the interval plus that many standard deviations of the gaps, when longer), the entity
gets a ``silence`` anomaly ("host web-17 silent for 6 min; usually reports
every 60 s"), again every ``repeat_every`` while the silence lasts (so its alert
stays open), and its open silence alert resolves when it reports again.

The clock is the stream's event-time watermark, which events move; a stream
whose input has gone quiet (an idle Kafka partition, a paused feed) moves its
clock by the wall time since its last event (:meth:`DriverCore.tick
<tocsin.engine.core.DriverCore.tick>`), so a partition whose only host died is
still watched. State (last time, interval, silent since, last announcement,
per entity) is part of the pipeline's checkpoint; the anomalies' ids are
derived from the entity and the time it fell silent, so a replay after a crash
rewrites the same rows.

Good at: regular reporters (metrics every minute, sensors every 10 s, a
service's request stream; with ``spread``, a quiet one whose minute readings
come and go with its traffic). Where it fails: entities with irregular, bursty
activity (cards, users): their gaps vary by orders of magnitude, so keep it
off for them (``silence.enabled`` is false by default); an entity that
never reported ``min_reports`` times is not watched.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from numba import njit

from tocsin.features.kernels import grow
from tocsin.spec import SilenceSpec
from tocsin.vocabulary import score_100

LAST, INTERVAL, REPORTS, SILENT_SINCE, ANNOUNCED, ANNOUNCEMENTS, GAP_VAR = range(7)
COLUMNS = 7
_EMPTY = np.array([-np.inf, 0.0, 0.0, np.nan, -np.inf, 0.0, 0.0])
#: what :func:`_observe` saw at a row: a silence that began and ended between two of its events, or the
#: return of an entity already announced silent
GAP, RETURNED = 1, 2
#: gaps the running interval and the running spread of the gaps remember (about)
INTERVAL_MEMORY, SPREAD_MEMORY = 20.0, 200.0
#: at most this many reminders per silence and call (a clock that jumped months ahead)
MAX_REMINDERS = 100


@njit(cache=True, nogil=True)
def _allowed(usual, variance, factor, spread):  # pragma: no cover - compiled
    """The longest gap that is not a silence: ``factor`` usual intervals, or the usual interval plus ``spread``
    standard deviations of the gaps when that is longer (an entity whose gaps vary, as a quiet service's
    minutes with and without a request do)."""
    return max(factor * usual, usual + spread * math.sqrt(variance))


@njit(cache=True, nogil=True)
def _observe(key_ids, times, state, factor, spread, min_reports, min_interval, out_kind, out_key, out_since, out_at, out_until):
    """Fold events into each entity's last time and interval, in arrival order. For a row whose entity
    was announced silent: (RETURNED, k, since, last announcement, t). For a row after a gap longer than
    ``factor`` usual intervals that nobody announced (it began and ended between two batches' clocks):
    (GAP, k, since, deadline, t). Returns how many were written."""
    m = 0
    for i in range(key_ids.shape[0]):
        k = key_ids[i]
        row = state[k]
        t = times[i]
        usual = max(row[INTERVAL], min_interval)
        allowed = _allowed(usual, row[GAP_VAR], factor, spread)
        gap = t - row[LAST] if row[LAST] > -np.inf else 0.0
        if row[SILENT_SINCE] == row[SILENT_SINCE]:  # not NaN: announced silent, and back now
            out_kind[m], out_key[m], out_since[m], out_at[m], out_until[m] = RETURNED, k, row[SILENT_SINCE], row[ANNOUNCED], t
            m += 1
            row[SILENT_SINCE] = np.nan
            row[ANNOUNCEMENTS] = 0.0
        elif row[REPORTS] >= min_reports and gap > allowed:
            out_kind[m], out_key[m], out_since[m], out_at[m], out_until[m] = GAP, k, row[LAST], row[LAST] + allowed, t
            m += 1
        if gap > 0 and (row[REPORTS] < min_reports or gap <= allowed):  # a gap that was a silence teaches nothing
            delta = gap - row[INTERVAL]
            row[INTERVAL] += delta / min(row[REPORTS], INTERVAL_MEMORY)
            weight = 1.0 / min(row[REPORTS], SPREAD_MEMORY)  # a longer memory: a tail needs many gaps to be known
            row[GAP_VAR] = (1.0 - weight) * (row[GAP_VAR] + weight * delta * delta)
        if t > row[LAST]:  # readings at one time (a bucket's measures) are one report
            row[LAST] = t
            row[REPORTS] += 1.0
    return m


def humane(seconds: float) -> str:
    """A duration as people say it.

    >>> humane(45), humane(60), humane(181), humane(3_725), humane(90_000)
    ('45 s', '60 s', '3 min', '1 h 2 min', '25 h')
    """
    seconds = round(seconds)
    if seconds < 120:
        return f"{seconds} s"
    if seconds < 7_200 and seconds % 3_600:
        hours, minutes = divmod(seconds // 60, 60)
        return f"{hours} h {minutes} min" if hours else f"{minutes} min"
    hours, minutes = divmod(seconds // 60, 60)
    return f"{hours} h" if not minutes or hours >= 10 else f"{hours} h {minutes} min"


class SilenceWatch:
    """Per-entity reporting intervals and the silence anomalies they imply (see the module docstring).

    >>> from tocsin.spec import SilenceSpec
    >>> watch = SilenceWatch(SilenceSpec(enabled=True, factor=3), noun="host")
    >>> keys = np.array([0, 1] * 10)
    >>> times = np.repeat(np.arange(10) * 60.0, 2)   # two hosts, every minute for 10 minutes
    >>> names = ["web-1", "web-2"]
    >>> watch.observe(keys, times, names)
    ([], [])
    >>> watch.due(700.0, names)                        # 160 s after the last reading: not yet 3 intervals
    []
    >>> [(a["event_time"], a["explanation"][0]["text"]) for a in watch.due(721.0, names)]
    [(720.0, 'host web-1 silent for 3 min; usually reports every 60 s'), (720.0, 'host web-2 silent for 3 min; usually reports every 60 s')]
    >>> watch.observe(np.array([0]), np.array([900.0]), names)   # web-1 is back
    ([], ['web-1'])
    """

    def __init__(self, spec: SilenceSpec, noun: str = "entity", severity: tuple[str, float] = ("warning", 0.999)) -> None:
        self.spec = spec
        self.noun = noun
        self.severity, self.score = severity
        self.state = np.empty((0, COLUMNS), dtype=np.float64)
        self.clock = -np.inf

    def observe(self, key_ids: np.ndarray, times: np.ndarray, keys) -> tuple[list[dict[str, Any]], list[str]]:
        """Fold a batch's (entity id, time) in; returns the silence anomalies it revealed (silences that
        began and ended inside it, and reminders of announced ones not yet due at the last clock) and the
        entities that reported again after a silence. ``keys[i]`` names entity id ``i``."""
        if not len(key_ids):
            return [], []
        key_ids = np.ascontiguousarray(key_ids, dtype=np.int64)
        self.state = grow(self.state, int(key_ids.max()) + 1, _EMPTY)
        n = len(key_ids)
        kind, key, since, at, until = (np.empty(n, dtype=np.int64), np.empty(n, dtype=np.int64), np.empty(n), np.empty(n), np.empty(n))
        marked = _observe(key_ids, np.ascontiguousarray(times, dtype=np.float64), self.state, self.spec.factor, self.spec.spread,
                          float(self.spec.min_reports), self.spec.min_interval, kind, key, since, at, until)
        anomalies, returned = [], []
        for j in range(marked):
            k, entity = int(key[j]), str(keys[int(key[j])])
            usual, allowed = self._usual_and_allowed(k)
            if kind[j] == GAP:
                anomalies.append(self._anomaly(entity, float(since[j]), float(at[j]), 1, usual))
                count = 1
            else:
                count = None
            anomalies.extend(self._reminders(entity, float(since[j]), float(at[j]), count, float(until[j]), usual, allowed,
                                             before=True))
            returned.append(entity)
        return anomalies, list(dict.fromkeys(returned))

    def _usual_and_allowed(self, k: int) -> tuple[float, float]:
        """Entity ``k``'s usual interval and the longest gap that is not a silence."""
        usual = max(float(self.state[k, INTERVAL]), self.spec.min_interval)
        return usual, float(_allowed(usual, float(self.state[k, GAP_VAR]), self.spec.factor, self.spec.spread))

    def _reminders(self, entity: str, since: float, last: float, count: int | None, clock: float, usual: float,
                   allowed: float, before: bool = False) -> list[dict[str, Any]]:
        """Reminders after the announcement at ``last`` up to ``clock`` (strictly before it when ``before``)."""
        every = self.spec.repeat_every
        if every is None:
            return []
        count = count if count is not None else 1 + int(round((last - (since + allowed)) / every))
        rows = []
        while len(rows) < MAX_REMINDERS and (last + every < clock if before else last + every <= clock):
            last += every
            count += 1
            rows.append(self._anomaly(entity, since, last, count, usual))
        return rows

    def due(self, clock: float, keys) -> list[dict[str, Any]]:
        """Silence anomalies due by event time ``clock``: entities whose deadline (last event + the longest
        gap that is not a silence) passed, each at its deadline, and reminders of lasting silences; ``keys[i]`` names
        entity id ``i``. Every anomaly carries the time it fell due, so where batches are cut does not
        change what is found or when."""
        if not np.isfinite(clock) or clock <= self.clock or not len(self.state):
            return []
        self.clock = clock
        state = self.state
        interval = np.maximum(state[:, INTERVAL], self.spec.min_interval)
        deadline = state[:, LAST] + np.maximum(self.spec.factor * interval, interval + self.spec.spread * np.sqrt(state[:, GAP_VAR]))
        silent = ~np.isnan(state[:, SILENT_SINCE])
        new = np.flatnonzero((state[:, REPORTS] >= self.spec.min_reports) & ~silent & (deadline <= clock))
        rows = []
        for k in new.tolist():
            entity = str(keys[k])
            state[k, SILENT_SINCE], state[k, ANNOUNCED], state[k, ANNOUNCEMENTS] = state[k, LAST], deadline[k], 1
            rows.append(self._anomaly(entity, float(state[k, LAST]), float(deadline[k]), 1, float(interval[k])))
        if self.spec.repeat_every is not None:
            lasting = np.flatnonzero(silent & (state[:, ANNOUNCED] + self.spec.repeat_every <= clock))
            for k in np.concatenate([lasting, new]).tolist():
                more = self._reminders(str(keys[k]), float(state[k, SILENT_SINCE]), float(state[k, ANNOUNCED]),
                                       int(state[k, ANNOUNCEMENTS]), clock, *self._usual_and_allowed(k))
                if more:
                    state[k, ANNOUNCED] = more[-1]["event_time"]
                    state[k, ANNOUNCEMENTS] += len(more)
                    rows.extend(more)
        return rows

    def _anomaly(self, entity: str, since: float, at: float, count: int, usual: float) -> dict[str, Any]:
        silent_for = at - since
        text = f"{self.noun} {entity} silent for {humane(silent_for)}; usually reports every {humane(usual)}"
        return {
            "event_id": f"silence:{entity}:{int(round(since * 1000))}:{count}",
            "entity": entity, "event_time": float(at), "score": self.score, "score_100": score_100(self.score),
            "raw_score": silent_for / usual, "severity": self.severity, "detector": "silence", "fields": {}, "label": None,
            "explanation": [{"feature": "silence", "value": silent_for, "contribution": silent_for / usual, "text": text}],
        }

    def state_dict(self) -> dict[str, np.ndarray]:
        return {"state": self.state.copy(), "clock": np.array(self.clock)}

    def load_state_dict(self, state: dict[str, np.ndarray]) -> None:
        saved = np.array(state["state"], dtype=np.float64)
        saved = saved.reshape(-1, saved.shape[-1] if saved.ndim == 2 else COLUMNS)
        self.state = np.zeros((len(saved), COLUMNS))  # checkpoints from before GAP_VAR have one column fewer: spread 0
        self.state[:, : saved.shape[1]] = saved
        self.clock = float(state["clock"])
