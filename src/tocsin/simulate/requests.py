"""A deterministic, labelled stream of microservice request logs for demos, tests and benchmarks.

The simulator draws a system (services, their endpoints and habits) from
``seed``; every service then serves requests day by day, as a Poisson process
whose rate follows the clock, with injected incidents after warm-up. Each
event is one request with the fields in :data:`FIELDS`; ``is_incident``/
``incident`` are the ground truth on events and
:meth:`RequestLogSimulator.incidents` is the full incident table (the only
ground truth for the requests a ``traffic_drop`` never produced).

Example
-------
>>> from tocsin.simulate import RequestLogSimulator
>>> sim = RequestLogSimulator(services=8, request_rate=0.5, incident_rate=1.0, warmup_days=0.5, seed=3)
>>> batch = sim.generate(3_000)
>>> len(batch), batch.ids[0], batch.ids[-1], batch.keys[0]
(3000, 'rq000000000000', 'rq000000002999', 'gateway')
>>> list(batch.numeric), list(batch.categorical), list(batch.extra)
(['latency_ms', 'status'], ['endpoint'], ['incident'])
>>> bool((batch.times[1:] >= batch.times[:-1]).all())   # one time-sorted stream
True
>>> resumed = next(sim.batches(500, start_position=1_200))  # resume anywhere
>>> resumed.ids.tolist() == batch.ids[1_200:1_700].tolist()
True
>>> sorted({incident["kind"] for incident in sim.incidents(sim.start_time + 3 * 86_400)})
['endpoint_failing', 'error_burst', 'latency_creep', 'traffic_drop']
>>> sorted(sim.incidents(sim.start_time + 86_400)[0])
['end', 'entities', 'entity', 'kind', 'start']

What the stream looks like
--------------------------
*The services.* ``services`` services named after what they do (``gateway``,
``auth``, ``orders``, … :data:`SERVICE_NAMES`, in that order; past 24 the names
repeat with a suffix: ``gateway-2``). Each has 3–8 endpoints, route templates
such as ``/v1/orders/{id}`` (:data:`ENDPOINT_TEMPLATES` with the service's
name as the resource), and habits drawn once:

- a peak rate: ``request_rate`` × a lognormal weight (sigma 0.6, the weights
  scaled to average 1), so most services serve 0.3–3× ``request_rate``
  requests per second at their weekday peak;
- a night floor: the share of its peak it keeps at night, 15–35 %;
- a server error (5xx) share, 0.2–1 % (log-uniform);
- per endpoint: a share of the service's requests (lognormal weights,
  sigma 1), a latency median (lognormal around 40 ms, sigma 0.8, clipped to
  3–1,500 ms) and spread (sigma 0.25–0.6), and a client error (4xx) share,
  0.3–3 % (log-uniform).

*Requests.* Service ``s`` receives requests at rate
``peak_s × (floor_s + (1 - floor_s) × b)``, with ``b`` the business-hour load
(UTC; from ~0 at night to ~1 between 10h and 17h, a product of two logistic
ramps at 8.5h and 18h) scaled by 0.5 on Saturdays and Sundays: each minute
of each service gets a Poisson number of requests (the rate at the minute's
middle), at times uniform within it, rounded to milliseconds. At the default
``request_rate`` of 0.8, 20 services make ~0.77M requests on a weekday and
~0.57M on a weekend day (about ``services × request_rate × 48,000`` and
``× 36,000``). A request goes to an endpoint by the endpoint
shares; its latency is lognormal with the endpoint's median and spread,
times ``1 + 0.3 b`` (busier is slower). Its status is 5xx with the service's
share (500, 502, 503, 504 in 50/15/25/10 %), else 4xx with the endpoint's
share (400, 401, 403, 404, 429 in 30/15/10/35/10 %), else 200. Errors answer
fast: a 4xx takes 20–60 % of the usual latency, a 500/502/503 5–50 %; a 504
is a gateway timeout, 10–10.2 s.

*Legit oddities that look like incidents* but recur and can be learned:

- 30 % of the services run a nightly batch at their own fixed time between
  01:00 and 04:45 UTC, every day, for 10–20 minutes: one of their endpoints
  gets 2–4× the service's peak rate on top of its usual traffic;
- 0.5 % of the requests are slow outliers at 3–10× their usual latency;
- 504 timeouts (10 s) among the usual 5xx.

*Incidents* (``is_incident=1`` and ``incident`` = the kind on the affected
requests inside ``[start, end)``) start only at or after ``start +
warmup_days``, uniformly at any time of day: a day gets a Poisson number with
mean ``incident_rate × services`` (times the share of the day after
warm-up). Kinds, with their share of incidents:

- ``latency_creep`` (25 %): one service's latency rises steadily, linearly
  from its usual level to 3–8× it over 30–120 minutes, then recovers;
- ``error_burst`` (25 %): 20–60 % of one service's requests fail with a 5xx
  for 5–20 minutes (on top of its usual errors);
- ``traffic_drop`` (25 %): one service's request rate falls to 5–30 % of its
  usual for 10–60 minutes: the requests that remain are the labelled ones;
- ``endpoint_failing`` (25 %): 80–100 % of one endpoint's requests fail with
  a 5xx for 10–40 minutes while its service's other endpoints look fine;
  only that endpoint's requests are labelled.

An incident's ``entity`` is the service, except for ``endpoint_failing``:
``{service}{endpoint}`` (the service, then the endpoint's route, which starts
with "/": ``orders/v1/orders/{id}``); ``entities`` is ``[service]`` (the key
of the events that may be labelled). Incidents may overlap; a request inside
two gets the kind applied last (the later start). An incident at a quiet
time (a rare endpoint at night) may hold few requests, or none.

Determinism and resuming
------------------------
The services come from ``(seed,)``; day ``i`` from ``(seed, i)`` only, in
three random streams: a cheap *plan* stream (the day's incidents: kind,
start, duration, service, endpoint, magnitude), a *count* stream (the number
of requests of each service in each minute of the day, cut at the edges of
``traffic_drop`` windows) and a *detail* stream (times, endpoints,
latencies, statuses). A day's event count is the sum of its counts, drawn
from the plans of that day and the day before (an incident lasts at most 2
hours) without generating any event, so position ``p`` is found cheaply and
resuming generates only the day holding it and the days after;
:meth:`RequestLogSimulator.incidents` likewise needs only the plans. The same
parameters give identical events (for a given NumPy version).

Cost: a day is a handful of vectorised NumPy passes over its events plus a
short Python loop over the day's incidents; a day's size costs ~3 ms (its
28,800 minute counts). Measured on a 2-core machine at the defaults (20
services, 0.8 requests/s, seed 7): 0.4 s for a weekday of 750,000 events
(half of it building the id strings), 0.85 s for 1M events; resuming at
position 100M (day 145) takes 0.9 s and the incident table of a year 0.03 s.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import NamedTuple

import numpy as np

from tocsin.batch import EventBatch
from tocsin.simulate.daily import (
    COUNT_STREAM, DETAIL_STREAM, FLEET_STREAM, SECONDS_PER_DAY, FieldInfo, IncidentSimulator, business_load, position_ids,
    write_fields,
)

FIELDS: tuple[FieldInfo, ...] = (
    FieldInfo("id", "str", "ids", "unique id, 'rq' + the zero-padded global position"),
    FieldInfo("timestamp", "float", "times", "request time, epoch seconds (millisecond resolution)"),
    FieldInfo("service", "str", "keys", "the service (entity) serving the request, e.g. 'orders'"),
    FieldInfo("endpoint", "str", "categorical['endpoint']", "the endpoint's route template, e.g. '/v1/orders/{id}'"),
    FieldInfo("latency_ms", "float", "numeric['latency_ms']", "time to respond, milliseconds (0.1 ms resolution, at least 0.1)"),
    FieldInfo("status", "int", "numeric['status']", "HTTP status: 200, 4xx or 5xx"),
    FieldInfo("is_incident", "int8", "labels", "1 for a request inside an incident on its service (or endpoint), else 0"),
    FieldInfo("incident", "str", "extra['incident']", "the incident kind, '' outside incidents"),
)

SERVICE_NAMES = (
    "gateway", "auth", "users", "sessions", "catalog", "search", "pricing", "inventory", "cart", "checkout", "orders",
    "payments", "billing", "shipping", "notifications", "reviews", "recommendations", "media", "ledger", "geo",
    "profiles", "emails", "analytics", "fraud",
)
# route templates; "{r}" is the service's resource (its name)
ENDPOINT_TEMPLATES = (
    "/v1/{r}", "/v1/{r}/{id}", "/v1/{r}/search", "/v1/{r}/{id}/history", "/v1/{r}/batch", "/v1/{r}/export",
    "/v1/{r}/{id}/status", "/v2/{r}", "/v2/{r}/{id}", "/v1/{r}/count", "/internal/{r}/sync",
)
WEEKEND_LOAD = 0.5  # business-hour load on Saturdays and Sundays, relative to weekdays
LOAD_SLOWDOWN = 0.3  # latency x (1 + this x business-hour load)
SLOW_SHARE = 0.005  # requests that are benign slow outliers
TIMEOUT_MS = 10_000.0  # a 504's latency (and up to 2 % more)
CRON_SHARE = 0.3  # services with a nightly batch
_MINUTE = 60.0

_SERVER_ERRORS = np.array([500.0, 502.0, 503.0, 504.0])
_SERVER_ERROR_SHARE = np.array([0.50, 0.15, 0.25, 0.10])
_CLIENT_ERRORS = np.array([400.0, 401.0, 403.0, 404.0, 429.0])
_CLIENT_ERROR_SHARE = np.array([0.30, 0.15, 0.10, 0.35, 0.10])

INCIDENT_KINDS = ("latency_creep", "error_burst", "traffic_drop", "endpoint_failing")
_LATENCY_CREEP, _ERROR_BURST, _TRAFFIC_DROP, _ENDPOINT_FAILING = range(4)
# each kind's share of incidents, (shortest, longest) duration in seconds and range of its level
_INCIDENT_SHARE = (0.25, 0.25, 0.25, 0.25)
_DURATIONS_S = ((1800.0, 7200.0), (300.0, 1200.0), (600.0, 3600.0), (600.0, 2400.0))
_LEVEL_MIN = np.array([3.0, 0.2, 0.05, 0.8])  # latency_creep: final multiple of the usual latency; error_burst and
_LEVEL_MAX = np.array([8.0, 0.6, 0.30, 1.0])  # endpoint_failing: share of 5xx; traffic_drop: share of the usual rate


class _Minutes(NamedTuple):
    """A day's counting segments (a minute of a service, cut at traffic_drop edges), by service then time."""

    service: np.ndarray
    start: np.ndarray  # epoch seconds
    length: np.ndarray  # seconds
    mean: np.ndarray  # expected requests
    cron_share: np.ndarray  # share of those that are the nightly batch's


class RequestLogSimulator(IncidentSimulator):
    """An endless, deterministic, labelled stream of microservice requests.

    Parameters
    ----------
    services:
        Number of services (entities).
    request_rate:
        Requests per second of a typical service at its weekday peak (services
        range about 0.3–3× it); a day holds about ``services × request_rate ×
        48,000`` requests on a weekday, ``× 36,000`` on a weekend day.
    incident_rate:
        Incidents per service per day after warm-up.
    warmup_days, start, seed:
        Days of clean history, start of day 0 and seed, as for every
        :class:`~tocsin.simulate.daily.IncidentSimulator`.

    See the module docstring for what the services, their rhythms and the incidents look like.
    """

    FIELDS = FIELDS
    INCIDENT_KINDS = INCIDENT_KINDS
    INCIDENT_SHARE = _INCIDENT_SHARE

    def __init__(
        self,
        services: int = 20,
        request_rate: float = 0.8,
        incident_rate: float = 0.25,
        warmup_days: float = 1.0,
        start: str | float | datetime = "2026-01-01T00:00:00Z",
        seed: int = 7,
    ) -> None:
        if int(services) < 1:
            raise ValueError(f"services must be >= 1, got {services}")
        if not 0 < request_rate <= 1_000:
            raise ValueError(f"request_rate must be in (0, 1000] requests per second, got {request_rate}")
        self.services = int(services)
        self.request_rate = float(request_rate)
        self._init_incidents(incident_rate, warmup_days, start, seed, _DURATIONS_S, per="service")
        self._build_services()

    # --- the services -------------------------------------------------------------

    def _build_services(self) -> None:
        rng = self._rng(FLEET_STREAM)
        n = self.services
        weight = np.exp(rng.normal(0.0, 0.6, size=n))
        self._peak = self.request_rate * weight / weight.mean()
        self._floor = rng.uniform(0.15, 0.35, size=n)
        self._server_error = np.exp(rng.uniform(np.log(0.002), np.log(0.01), size=n))
        self._has_cron = rng.random(n) < CRON_SHARE
        self._cron_start = rng.integers(4, 20, size=n) * 900.0  # 01:00-04:45, on the quarter hour
        self._cron_length = rng.integers(10, 21, size=n) * _MINUTE
        self._cron_rate = rng.uniform(2.0, 4.0, size=n) * self._peak

        names = [SERVICE_NAMES[s % len(SERVICE_NAMES)] + (f"-{s // len(SERVICE_NAMES) + 1}" if s >= len(SERVICE_NAMES) else "")
                 for s in range(n)]
        self._service_names = self._entity_names = np.array(names, dtype=object)
        endpoints: list[str] = []
        count = rng.integers(3, 9, size=n)
        for s in range(n):
            chosen = np.sort(rng.choice(len(ENDPOINT_TEMPLATES), size=int(count[s]), replace=False))
            resource = names[s].split("-")[0]
            endpoints += [ENDPOINT_TEMPLATES[t].replace("{r}", resource) for t in chosen.tolist()]
        self._endpoint_names = np.array(endpoints, dtype=object)
        self._first_endpoint = np.concatenate([[0], np.cumsum(count)]).astype(np.int64)  # service s: [first[s], first[s + 1])
        self._endpoint_count = count
        m = len(endpoints)
        share = np.exp(rng.normal(0.0, 1.0, size=m))
        service_of = np.repeat(np.arange(n), count)
        share /= np.bincount(service_of, weights=share)[service_of]
        # endpoint choice: service s's endpoints split [s, s + 1) by their shares (each service's sum to 1)
        self._endpoint_edge = np.cumsum(share)
        self._endpoint_edge[self._first_endpoint[1:] - 1] = np.arange(1, n + 1)
        self._latency_mu = np.log(np.clip(np.exp(rng.normal(np.log(40.0), 0.8, size=m)), 3.0, 1_500.0))
        self._latency_sigma = rng.uniform(0.25, 0.6, size=m)
        self._client_error = np.exp(rng.uniform(np.log(0.003), np.log(0.03), size=m))
        self._cron_endpoint = self._first_endpoint[:-1] + np.floor(rng.random(n) * count).astype(np.int64)

    # --- incidents ----------------------------------------------------------------

    def _plan_details(self, rng: np.random.Generator, kind: np.ndarray, entity: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``level`` (by kind: final latency multiple, 5xx share, remaining traffic share) and ``part``
        (endpoint_failing: the endpoint's index within its service)."""
        level = _LEVEL_MIN[kind] + rng.random(len(kind)) * (_LEVEL_MAX[kind] - _LEVEL_MIN[kind])
        part = np.floor(rng.random(len(kind)) * self._endpoint_count[entity]).astype(np.int64)
        return level, part

    def _describe(self, kind: int, entity: int, part: int) -> str:
        """The service, or ``{service}{endpoint}`` for endpoint_failing."""
        service = str(self._service_names[entity])
        return service + str(self._endpoint_names[self._first_endpoint[entity] + part]) if kind == _ENDPOINT_FAILING else service

    # --- request counts -------------------------------------------------------------

    def _minutes(self, index: int) -> _Minutes:
        """Day ``index``'s counting segments and their expected requests (no randomness)."""
        day_start = self.start_time + index * SECONDS_PER_DAY
        grid = day_start + np.arange(0.0, SECONDS_PER_DAY + 1.0, _MINUTE)
        around = self._incidents_around(index)
        drops = around.take(np.flatnonzero((around.kind == _TRAFFIC_DROP) & (around.end > day_start)
                                           & (around.start < day_start + SECONDS_PER_DAY)))
        edges = []
        for s in range(self.services):
            mine = drops.entity == s
            cuts = np.clip(np.concatenate([drops.start[mine], drops.end[mine]]), day_start, day_start + SECONDS_PER_DAY)
            edges.append(np.union1d(grid, cuts) if mine.any() else grid)
        service = np.repeat(np.arange(self.services), [len(e) - 1 for e in edges])
        start = np.concatenate([e[:-1] for e in edges])
        length = np.concatenate([np.diff(e) for e in edges])
        middle = start + length / 2
        base = self._peak[service] * (self._floor[service] + (1.0 - self._floor[service]) * business_load(middle, WEEKEND_LOAD))
        clock = np.mod(middle, SECONDS_PER_DAY)
        in_cron = self._has_cron[service] & (np.mod(clock - self._cron_start[service], SECONDS_PER_DAY) < self._cron_length[service])
        cron = np.where(in_cron, self._cron_rate[service], 0.0)
        factor = np.ones(len(service))
        for s, drop_start, drop_end, level in zip(drops.entity.tolist(), drops.start.tolist(), drops.end.tolist(), drops.level.tolist()):
            factor[(service == s) & (middle >= drop_start) & (middle < drop_end)] *= level
        return _Minutes(service, start, length, (base + cron) * factor * length, cron / (base + cron))

    def _counts(self, index: int, minutes: _Minutes) -> np.ndarray:
        return self._rng(COUNT_STREAM, index).poisson(minutes.mean)

    def _day_size(self, index: int) -> int:
        return int(self._counts(index, self._minutes(index)).sum())

    # --- days -------------------------------------------------------------------

    def day(self, index: int) -> EventBatch:
        """All requests of simulated day ``index`` (0 = the day starting at ``start``), sorted by time."""
        index = self._check_day(index)
        minutes = self._minutes(index)
        counts = self._counts(index, minutes)
        rng = self._rng(DETAIL_STREAM, index)
        n = int(counts.sum())
        segment = np.repeat(np.arange(len(counts)), counts)
        within = np.sort(segment + rng.random(n)) - segment  # sorted within each segment, segments in order
        day_end = self.start_time + (index + 1) * SECONDS_PER_DAY
        times = np.minimum(np.round(minutes.start[segment] + within * minutes.length[segment], 3), day_end - 0.001)
        service = minutes.service[segment]
        service_row = np.concatenate([[0], np.cumsum(np.bincount(service, minlength=self.services))]).astype(np.int64)

        endpoint = np.searchsorted(self._endpoint_edge, service + rng.random(n), side="right")
        endpoint = np.minimum(endpoint, self._first_endpoint[service + 1] - 1)
        cron = rng.random(n) < minutes.cron_share[segment]
        endpoint[cron] = self._cron_endpoint[service[cron]]
        latency = np.exp(self._latency_mu[endpoint] + self._latency_sigma[endpoint] * rng.standard_normal(n))
        latency *= 1.0 + LOAD_SLOWDOWN * business_load(times, WEEKEND_LOAD)
        slow = rng.random(n) < SLOW_SHARE
        latency[slow] *= rng.uniform(3.0, 10.0, size=int(slow.sum()))
        draw = rng.random(n)
        server_error = draw < self._server_error[service]
        client_error = ~server_error & (draw < self._server_error[service] + self._client_error[endpoint])

        code = np.zeros(n, dtype=np.int64)
        for hit in self._hits(index, times, service_row):
            a, b = hit.a, hit.b
            if hit.kind == _LATENCY_CREEP:
                latency[a:b] *= 1.0 + (hit.level - 1.0) * (times[a:b] - hit.start) / (hit.end - hit.start)
            elif hit.kind == _ERROR_BURST:
                server_error[a:b] |= rng.random(b - a) < hit.level
            elif hit.kind == _ENDPOINT_FAILING:
                rows = a + np.flatnonzero(endpoint[a:b] == self._first_endpoint[hit.entity] + hit.part)
                server_error[rows] |= rng.random(len(rows)) < hit.level
                code[rows] = hit.kind + 1
                continue
            code[a:b] = hit.kind + 1
        client_error &= ~server_error

        status = np.full(n, 200.0)
        status[client_error] = rng.choice(_CLIENT_ERRORS, size=int(client_error.sum()), p=_CLIENT_ERROR_SHARE)
        status[server_error] = rng.choice(_SERVER_ERRORS, size=int(server_error.sum()), p=_SERVER_ERROR_SHARE)
        latency[client_error] *= rng.uniform(0.2, 0.6, size=int(client_error.sum()))
        fast_fail = server_error & (status != 504.0)
        latency[fast_fail] *= rng.uniform(0.05, 0.5, size=int(fast_fail.sum()))
        timeout = status == 504.0
        latency[timeout] = TIMEOUT_MS * rng.uniform(1.0, 1.02, size=int(timeout.sum()))

        order = np.argsort(times, kind="stable")
        first_position = self._day_position(index)
        positions = np.arange(first_position, first_position + n, dtype=np.int64)
        labels, extra = self._labels(code[order])
        return EventBatch(
            ids=position_ids("rq", positions),
            keys=self._service_names[service[order]],
            times=times[order],
            numeric={"latency_ms": np.maximum(np.round(latency[order], 1), 0.1), "status": status[order]},
            categorical={"endpoint": self._endpoint_names[endpoint[order]]},
            positions=positions,
            labels=labels,
            extra=extra,
        )


# --- files -------------------------------------------------------------------


def write_events(batch: EventBatch, path: str | Path, format: str | None = None) -> None:
    """Write a request-log batch with one record per request and every field of :data:`FIELDS`.

    ``format`` is "jsonl" (via msgspec), "csv" or "parquet" (via pyarrow); when
    omitted it is taken from the file suffix.
    """
    write_fields(batch, FIELDS, path, format)
