"""A deterministic, labelled stream of cloud host metrics for demos, tests and benchmarks.

The simulator draws a fleet (hosts, their racks, roles and habits) from
``seed``; every host then reports one reading every ``report_every`` seconds,
day by day, with injected incidents after warm-up. Each event has the fields in
:data:`FIELDS`; ``is_incident``/``incident`` are the ground truth on events and
:meth:`HostMetricsSimulator.incidents` is the full incident table (the only
ground truth for a host gone silent, whose missing readings cannot be labelled).

Example
-------
>>> from tocsin.simulate import HostMetricsSimulator
>>> sim = HostMetricsSimulator(hosts=50, racks=5, incident_rate=0.2, warmup_days=0.5, seed=3)
>>> batch = sim.generate(3_000)
>>> len(batch), batch.ids[0], batch.ids[-1], batch.keys[0]
(3000, 'hm000000000000', 'hm000000002999', 'web-019')
>>> list(batch.numeric), list(batch.categorical), list(batch.extra)
(['cpu', 'memory', 'net_mbps'], ['rack', 'role'], ['incident'])
>>> bool((batch.times[1:] >= batch.times[:-1]).all())   # one time-sorted stream
True
>>> resumed = next(sim.batches(500, start_position=1_200))  # resume anywhere
>>> resumed.ids.tolist() == batch.ids[1_200:1_700].tolist()
True
>>> sorted({incident["kind"] for incident in sim.incidents(sim.start_time + 3 * 86_400)})
['cpu_spike', 'memory_leak', 'network_saturation', 'rack_degraded', 'silent_host']
>>> sorted(sim.incidents(sim.start_time + 86_400)[0])
['end', 'entity', 'hosts', 'kind', 'start']

What the stream looks like
--------------------------
*The fleet.* ``hosts`` hosts named ``{role}-{index}`` (``web-017``: the index
is global, so names are unique), spread evenly over ``racks`` racks
(``rack-03``) in a shuffled order. Each host has a role (:data:`ROLES`, shares
40 % web, 15 % db, 15 % cache, 30 % batch) that sets its levels, and habits
drawn once: a cpu and a network scale (lognormal, sigma 0.2 and 0.25) and a
memory offset (normal, sd 5 points).

*Readings.* Host ``h`` reports at ``start + phase_h + k * report_every``
(``phase_h`` uniform in ``[0, report_every)``) plus a jitter uniform within
± min(2 s, report_every / 10); times are rounded to milliseconds and kept
inside their day (readings a jitter would push past midnight are held at the
day's edge), so the stream is time-sorted. ``report_every`` = 60 s gives
1,440 readings per host per day: 288,000 events a day for 200 hosts.

*Normal behaviour* follows the wall clock (UTC). A business-hour load ``b``
rises from ~0 at night to ~1 between 10h and 17h (a product of two logistic
ramps at 8.5h and 18h) and is scaled by 0.35 on Saturdays and Sundays. Per
role, at night → at the business-hour peak (times the host's scales):

- ``web``: cpu 12 → 50 %, memory 40 → 48 %, net 25 → 115 Mbit/s;
- ``db``: cpu 18 → 45 %, memory 65 → 70 %, net 35 → 90 Mbit/s;
- ``cache``: cpu 8 → 22 %, memory 72 → 78 %, net 70 → 210 Mbit/s;
- ``batch``: cpu 6 → 10 %, memory 30 → 32 %, net 4 → 8 Mbit/s;

with noise: cpu ± (0.8 + 8 % of its level) points, memory ± 0.8 points,
network × lognormal(0, 0.12).

*Legit oddities that look like incidents* but recur and can be learned:

- every ``batch`` host runs a nightly job at its own fixed time between 01:00
  and 04:45 UTC, every day, for 20–45 minutes: cpu +60 points, memory +20,
  network +30 Mbit/s;
- every ``db`` host takes a nightly backup at its own fixed time between
  00:00 and 02:45 UTC for 15–30 minutes: network × 3.5, cpu +10 points;
- 0.2 % of all readings are one-reading cpu blips of +15–35 points.

*Incidents* (``is_incident=1`` and ``incident`` = the kind on the affected
hosts' readings inside ``[start, end)``) start only at or after ``start +
warmup_days``, uniformly at any time of day: a day gets a Poisson number with
mean ``incident_rate × hosts`` (times the share of the day after warm-up).
Kinds, with their share of incidents:

- ``cpu_spike`` (30 %): one host's cpu at 90–100 % for 5–30 minutes;
- ``memory_leak`` (20 %): one host's memory climbs linearly from its usual
  level to 95 % over 1–4 hours, then resets (back to its usual level);
- ``network_saturation`` (20 %): one host's network at 4–8× its usual level
  for 10–60 minutes;
- ``silent_host`` (15 %): one host sends nothing for 10–60 minutes: every
  reading due within ``[start - g, end + g)`` (``g`` = jitter + 1 s) is
  dropped, so none of its events has a time in ``[start, end]``;
- ``rack_degraded`` (15 %): every host of one rack (the rack of a random
  host): cpu +30 points and network × 0.3 for 15–60 minutes.

Incidents may overlap; an event inside two gets the kind applied last (the
later start). Values are clipped to 0–100 % (cpu, memory) and ≥ 0 (network)
and rounded to 2 decimals.

Determinism and resuming
------------------------
The fleet comes from ``(seed,)``; day ``i`` from ``(seed, i)`` only, in two
random streams: a cheap *plan* stream (the day's incidents: kind, start,
duration, entity) and a *detail* stream (jitter, noise, blips, spike levels).
A day's event count is arithmetic on the hosts' report schedules minus the
readings silenced by ``silent_host`` incidents of that day and the day before
(an incident lasts at most 4 hours), so position ``p`` is found without
generating any event and resuming generates only the day holding it and the
days after; :meth:`HostMetricsSimulator.incidents` likewise needs only the
plans. The same parameters give identical events (for a given NumPy version).

Cost: a day is a handful of vectorised NumPy passes over its events plus a
short Python loop over the day's incidents (one slice per affected host).
Measured on a 2-core machine at the defaults (200 hosts, 60 s): 0.15 s for a
day of 288,000 events (half of it building the id strings), 0.75 s for 1M
events; resuming at position 100M (day 347) takes 0.2 s and the incident table
of a year 0.02 s.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import numpy as np

from tocsin.batch import EventBatch
from tocsin.simulate.daily import (
    FLEET_STREAM, SECONDS_PER_DAY, FieldInfo, Hit, ScheduledSimulator, business_load, position_ids, write_fields,
)

FIELDS: tuple[FieldInfo, ...] = (
    FieldInfo("id", "str", "ids", "unique id, 'hm' + the zero-padded global position"),
    FieldInfo("host", "str", "keys", "the host (entity) reporting, e.g. 'web-017'"),
    FieldInfo("ts", "float", "times", "reading time, epoch seconds (millisecond resolution)"),
    FieldInfo("cpu", "float", "numeric['cpu']", "cpu utilisation, percent 0-100"),
    FieldInfo("memory", "float", "numeric['memory']", "memory utilisation, percent 0-100"),
    FieldInfo("net_mbps", "float", "numeric['net_mbps']", "network throughput, Mbit/s"),
    FieldInfo("rack", "str", "categorical['rack']", "the host's rack, e.g. 'rack-03'"),
    FieldInfo("role", "str", "categorical['role']", "'web', 'db', 'cache' or 'batch'"),
    FieldInfo("is_incident", "int8", "labels", "1 for a reading inside an incident on its host, else 0"),
    FieldInfo("incident", "str", "extra['incident']", "the incident kind, '' outside incidents"),
)

ROLES = ("web", "db", "cache", "batch")
_WEB, _DB, _CACHE, _BATCH = range(4)
_ROLE_SHARE = np.array([0.40, 0.15, 0.15, 0.30])
# per role (web, db, cache, batch): level at night and what business hours add
_CPU_BASE = np.array([12.0, 18.0, 8.0, 6.0])
_CPU_PEAK = np.array([38.0, 27.0, 14.0, 4.0])
_MEMORY_BASE = np.array([40.0, 65.0, 72.0, 30.0])
_MEMORY_PEAK = np.array([8.0, 5.0, 6.0, 2.0])
_NET_BASE = np.array([25.0, 35.0, 70.0, 4.0])
_NET_PEAK = np.array([90.0, 55.0, 140.0, 4.0])
WEEKEND_LOAD = 0.35  # business-hour load on Saturdays and Sundays, relative to weekdays
BLIP_SHARE = 0.002  # readings with a one-off benign cpu blip

INCIDENT_KINDS = ("cpu_spike", "memory_leak", "network_saturation", "silent_host", "rack_degraded")
_CPU_SPIKE, _MEMORY_LEAK, _NETWORK_SATURATION, _SILENT_HOST, _RACK_DEGRADED = range(5)
# each kind's share of incidents and (shortest, longest) duration in seconds
_INCIDENT_SHARE = (0.30, 0.20, 0.20, 0.15, 0.15)
_DURATIONS_S = ((300.0, 1800.0), (3600.0, 14400.0), (600.0, 3600.0), (600.0, 3600.0), (900.0, 3600.0))

_ROLE_NAMES = np.array(ROLES, dtype=object)


class HostMetricsSimulator(ScheduledSimulator):
    """An endless, deterministic, labelled stream of host metric readings.

    Parameters
    ----------
    hosts:
        Number of hosts (entities).
    racks:
        Number of racks the hosts are spread over.
    report_every:
        Seconds between two readings of a host (at most one day).
    incident_rate:
        Incidents per host per day after warm-up (a rack incident counts once).
    warmup_days, start, seed:
        Days of clean history, start of day 0 and seed, as for every
        :class:`~tocsin.simulate.daily.IncidentSimulator`.

    See the module docstring for what the fleet, its rhythms and the incidents look like.
    """

    FIELDS = FIELDS
    INCIDENT_KINDS = INCIDENT_KINDS
    INCIDENT_SHARE = _INCIDENT_SHARE
    MEMBERS = "hosts"
    SILENCE = _SILENT_HOST

    def __init__(
        self,
        hosts: int = 200,
        racks: int = 10,
        report_every: float = 60.0,
        incident_rate: float = 0.03,
        warmup_days: float = 1.0,
        start: str | float | datetime = "2026-01-01T00:00:00Z",
        seed: int = 7,
    ) -> None:
        if int(hosts) < 1:
            raise ValueError(f"hosts must be >= 1, got {hosts}")
        if int(racks) < 1:
            raise ValueError(f"racks must be >= 1, got {racks}")
        self.hosts = int(hosts)
        self.racks = int(racks)
        self._init_schedule(report_every)
        self._init_incidents(incident_rate, warmup_days, start, seed, _DURATIONS_S, per="host")
        self._build_fleet()

    # --- the fleet ----------------------------------------------------------------

    def _build_fleet(self) -> None:
        rng = self._rng(FLEET_STREAM)
        n = self.hosts
        self._role = rng.choice(len(ROLES), size=n, p=_ROLE_SHARE)
        self._rack = rng.permutation(np.arange(n) % self.racks)
        self._phase = rng.uniform(0.0, self.report_every, size=n)
        self._cpu_scale = np.exp(rng.normal(0.0, 0.2, size=n))
        self._net_scale = np.exp(rng.normal(0.0, 0.25, size=n))
        self._memory_offset = rng.normal(0.0, 5.0, size=n)
        self._job_start = rng.integers(4, 20, size=n) * 900.0  # 01:00-04:45, on the quarter hour
        self._job_length = rng.uniform(20.0, 45.0, size=n) * 60.0
        self._backup_start = rng.integers(0, 12, size=n) * 900.0  # 00:00-02:45
        self._backup_length = rng.uniform(15.0, 30.0, size=n) * 60.0

        width = max(3, len(str(n - 1)))
        self._host_names = np.array([f"{ROLES[r]}-{h:0{width}d}" for h, r in enumerate(self._role.tolist())], dtype=object)
        self._entity_names = self._host_names
        rack_width = max(2, len(str(self.racks - 1)))
        self._rack_names = np.array([f"rack-{r:0{rack_width}d}" for r in range(self.racks)], dtype=object)
        self._rack_hosts = [np.flatnonzero(self._rack == r) for r in range(self.racks)]

    # --- incidents ----------------------------------------------------------------

    def _plan_details(self, rng: np.random.Generator, kind: np.ndarray, entity: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``level``: network_saturation's multiple of usual traffic."""
        return rng.uniform(4.0, 8.0, size=len(kind)), np.zeros(len(kind), dtype=np.int64)

    def _members(self, kind: int, entity: int) -> np.ndarray | list[int]:
        """The host, or every host of its rack for rack_degraded."""
        return self._rack_hosts[self._rack[entity]] if kind == _RACK_DEGRADED else [entity]

    def _describe(self, kind: int, entity: int, part: int) -> str:
        """The host name, or the rack name for rack_degraded."""
        return str(self._rack_names[self._rack[entity]] if kind == _RACK_DEGRADED else self._host_names[entity])

    # --- days -------------------------------------------------------------------

    def _event_batch(self, host: np.ndarray, times: np.ndarray, values: dict[str, np.ndarray], positions: np.ndarray,
                     code: np.ndarray) -> EventBatch:
        labels, extra = self._labels(code)
        return EventBatch(
            ids=position_ids("hm", positions),
            keys=self._host_names[host],
            times=times,
            numeric={
                "cpu": np.round(np.clip(values["cpu"], 0.0, 100.0), 2),
                "memory": np.round(np.clip(values["memory"], 0.0, 100.0), 2),
                "net_mbps": np.round(np.maximum(values["net_mbps"], 0.0), 2),
            },
            categorical={"rack": self._rack_names[self._rack[host]], "role": _ROLE_NAMES[self._role[host]]},
            positions=positions,
            labels=labels,
            extra=extra,
        )

    def _normal(self, rng: np.random.Generator, host: np.ndarray, times: np.ndarray) -> dict[str, np.ndarray]:
        """cpu, memory and network of healthy hosts at ``times``: levels, rhythms, noise and benign oddities."""
        n = len(host)
        clock = np.mod(times, SECONDS_PER_DAY)  # UTC seconds into the day
        load = business_load(times, WEEKEND_LOAD)
        role = self._role[host]
        cpu = self._cpu_scale[host] * (_CPU_BASE[role] + _CPU_PEAK[role] * load)
        cpu += (0.8 + 0.08 * cpu) * rng.standard_normal(n)
        memory = _MEMORY_BASE[role] + self._memory_offset[host] + _MEMORY_PEAK[role] * load + 0.8 * rng.standard_normal(n)
        net = self._net_scale[host] * (_NET_BASE[role] + _NET_PEAK[role] * load) * np.exp(0.12 * rng.standard_normal(n))

        in_job = (role == _BATCH) & (np.mod(clock - self._job_start[host], SECONDS_PER_DAY) < self._job_length[host])
        cpu[in_job] += 60.0
        memory[in_job] += 20.0
        net[in_job] += 30.0
        in_backup = (role == _DB) & (np.mod(clock - self._backup_start[host], SECONDS_PER_DAY) < self._backup_length[host])
        net[in_backup] *= 3.5
        cpu[in_backup] += 10.0
        blip = rng.random(n) < BLIP_SHARE
        cpu[blip] += rng.uniform(15.0, 35.0, size=int(blip.sum()))
        return {"cpu": cpu, "memory": memory, "net_mbps": net}

    def _inject(self, rng: np.random.Generator, hit: Hit, times: np.ndarray, values: dict[str, np.ndarray]) -> None:
        a, b = hit.a, hit.b
        if hit.kind == _CPU_SPIKE:
            values["cpu"][a:b] = rng.uniform(90.0, 100.0, size=b - a)
        elif hit.kind == _MEMORY_LEAK:
            memory = values["memory"]
            progress = (times[a:b] - hit.start) / (hit.end - hit.start)
            memory[a:b] += (95.0 - memory[a:b]) * progress
        elif hit.kind == _NETWORK_SATURATION:
            values["net_mbps"][a:b] *= hit.level
        else:  # rack_degraded
            values["cpu"][a:b] += 30.0
            values["net_mbps"][a:b] *= 0.3


# --- files -------------------------------------------------------------------


def write_events(batch: EventBatch, path: str | Path, format: str | None = None) -> None:
    """Write a host-metrics batch with one record per reading and every field of :data:`FIELDS`.

    ``format`` is "jsonl" (via msgspec), "csv" or "parquet" (via pyarrow); when
    omitted it is taken from the file suffix.
    """
    write_fields(batch, FIELDS, path, format)
