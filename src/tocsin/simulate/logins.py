"""A deterministic, labelled stream of login and access events for demos, tests and benchmarks.

The simulator draws a population (user accounts, where they live, the
organisations they work for, their habits) from ``seed``; every account then
logs in day by day at human hours of its own time zone, from a few habitual
places, and uses the service after logging in, with attacks injected after
warm-up. Each event is one login attempt or one access with the fields in
:data:`FIELDS`; ``is_incident``/``incident`` are the ground truth on events and
:meth:`LoginSimulator.incidents` is the incident table.

Example
-------
>>> from tocsin.simulate.logins import LoginSimulator
>>> sim = LoginSimulator(accounts=300, incident_rate=0.02, warmup_days=0.5, seed=3)
>>> batch = sim.generate(8_000)
>>> len(batch), batch.ids[0], batch.ids[-1]
(8000, 'lg000000000000', 'lg000000007999')
>>> list(batch.numeric), list(batch.categorical), list(batch.extra)
(['lat', 'lon', 'success', 'status'], ['user', 'ip', 'country', 'resource'], ['incident'])
>>> bool((batch.times[1:] >= batch.times[:-1]).all())   # one time-sorted stream
True
>>> resumed = next(sim.batches(500, start_position=3_210))  # resume anywhere
>>> resumed.ids.tolist() == batch.ids[3_210:3_710].tolist()
True
>>> sorted({incident["kind"] for incident in sim.incidents(sim.start_time + 4 * 86_400)})
['credential_stuffing', 'forbidden_burst', 'impossible_travel', 'password_spraying']
>>> sorted(sim.incidents(sim.start_time + 2 * 86_400)[0])
['end', 'entities', 'entity', 'ips', 'kind', 'start']

What the stream looks like
--------------------------
*The accounts.* ``accounts`` users named ``user00000``, ``user00001``, … Each
lives in one of the 22 cities of :data:`CITIES` (weighted: New York and London
the most, Lagos the least), in that city's time zone. 60 % work for an
organisation of their city (about 40 employees each) whose office has one
egress IP that all its employees share (a NAT); 5 % use a corporate VPN whose
three exits (Frankfurt, Ashburn, Singapore) are shared by every VPN user. Each
account has a home IP of its own; each city has a pool of 8 mobile carrier IPs
(carrier-grade NAT, shared by everyone there on a phone) and 40 public Wi-Fi IPs
(cafés, hotels). A place is the city's coordinates plus a small offset per IP
(city-level geolocation); ``country`` is the city's ISO code.

*Sessions.* An account opens a Poisson number of sessions a day, with a mean
drawn once per account (lognormal, about 2.5 on a weekday; 40 % of it on
Saturdays and Sundays), at local human hours (60 % around 10:30 ± 2 h,
40 % around 19:30 ± 2 h). A session comes from the office (employees on
weekdays between 8:00 and 18:00, three times in four), the VPN (VPN users, 30 %
of the rest), else home (60 %), a mobile IP (32 %) or a Wi-Fi IP (8 %). It
starts with a login: 5 % of sessions first mistype the password 1–4 times
(``status`` 401, ``success`` 0, a few seconds apart), and 15 % of those give up;
the others log in (``status`` 200, ``success`` 1, ``resource`` "/login") and
then make a Poisson number of accesses (per-account mean 2–8) about 45 s
apart, each to a resource of :data:`RESOURCES`, answered 200, or 403 (1 %:
a link to a page the user may not see).

*Legit oddities that look like attacks* but recur or are explained:

- an office NAT or a carrier IP logs in hundreds of users, with their usual
  mistypes: many users and a few failures per IP, but almost all succeed;
- about 0.4 % of accounts a day are on a trip to another city of :data:`CITIES` up
  to 9,000 km away: their logins come from a mobile or Wi-Fi IP there, new to
  them, at a speed a plane allows (a day whose place differs from the day
  before starts after the flight: distance / 800 km/h + 2 h);
- a VPN user alternates between home and a VPN exit thousands of km away
  within minutes: impossible travel between places the account already knows;
- mobile and Wi-Fi IPs are new to an account now and then, in its own city.

*Incidents* (``is_incident=1`` and ``incident`` = the kind on the attacker's
events) start only at or after ``start + warmup_days``, uniformly at any time
of day: a day gets a Poisson number with mean ``incident_rate × accounts``
(times the share of the day after warm-up). Kinds, 25 % each:

- ``credential_stuffing``: one fresh IP in a hosting or proxy city
  (:data:`ATTACK_PLACES`) replays a leaked list: 0.1–2 login attempts a second
  (log-uniform; tools like OpenBullet run at that pace per proxy) for 2–15
  minutes, each on a different account, 99 % failing (401); a success is
  followed by 1–3 accesses from the IP.
- ``password_spraying``: 3–8 IPs in attack cities try one or two common
  passwords on 40–400 accounts (one pass over the accounts per password),
  at times uniform over 30 minutes to 4 hours: a few failed logins per IP an
  hour, each account tried once or twice; 0.5 % succeed (no access follows).
- ``impossible_travel``: stolen credentials used from far away: the genuine user
  logs in from where they are (an unlabelled login and two accesses) 10 minutes
  to 3 hours before the incident, then the attacker logs in successfully from a
  fresh IP in an attack city at least 3,000 km from there (so over 1,000 km/h),
  and makes 3–15 accesses over 5–30 minutes (5 % answered 403).
- ``forbidden_burst``: one client with the account's session enumerates what
  it may not see: 0.2–2 requests a second for 1–10 minutes to admin and file
  resources, 60–95 % answered 403 (no login event); the client is the
  account's own home IP (a compromised machine or an insider) half the time,
  else a fresh IP in an attack city.

The incident table's ``entity`` is the attacker's IP (stuffing, burst), the
sprayers' IPs joined by ``,`` (spraying), or the account (impossible travel);
``entities`` lists the accounts the attack touched (the events' keys) and
``ips`` the attacker's IPs. Only the attacker's events are labelled; the
victims' own logins during an attack are not. Attacks may overlap.

Determinism and resuming
------------------------
The population comes from ``(seed,)``; day ``i`` from ``(seed, i)`` only: a
*plan* stream (the day's incidents: kind, start, duration, account, rate), a
*trip* stream (who travels where), a *count* stream (each account's sessions,
mistypes and accesses) and a *detail* stream (times, places, resources,
statuses); each incident's events come from a stream of their own
``(seed, day, incident)``. A day's size is the sum of its counts plus the
attack events falling in it, without generating any event, so position ``p``
is found cheaply and resuming generates only the day holding it and the days
after; :meth:`LoginSimulator.incidents` needs only the plans. The same
parameters give identical events (for a given NumPy version).

Cost: at the defaults (2,000 accounts) a weekday holds 30,000-32,000 events
(a weekend day 12,000-14,000) and takes ~0.02 s; `tocsin simulate` writes 200,000
events (7.5 days) in under a second.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from tocsin.batch import EventBatch
from tocsin.simulate.daily import (
    COUNT_STREAM,
    DETAIL_STREAM,
    FLEET_STREAM,
    SECONDS_PER_DAY,
    FieldInfo,
    IncidentSimulator,
    parse_start,
    position_ids,
    weekday,
    write_fields,
)

FIELDS: tuple[FieldInfo, ...] = (
    FieldInfo("id", "str", "ids", "unique id, 'lg' + the zero-padded global position"),
    FieldInfo("ts", "float", "times", "event time, epoch seconds (millisecond resolution)"),
    FieldInfo("user", "str", "keys", "the account (entity) logging in or accessing, e.g. 'user00042'"),
    FieldInfo("ip", "str", "categorical['ip']", "the client's IPv4 address"),
    FieldInfo("country", "str", "categorical['country']", "ISO country code of the IP's geolocation"),
    FieldInfo("lat", "float", "numeric['lat']", "latitude of the IP's geolocation, degrees"),
    FieldInfo("lon", "float", "numeric['lon']", "longitude of the IP's geolocation, degrees"),
    FieldInfo("resource", "str", "categorical['resource']", "'/login' for a login attempt, else the resource accessed"),
    FieldInfo("success", "bool", "numeric['success']", "true if the login or access succeeded (status 200); files carry a JSON boolean, the batch 1.0/0.0"),
    FieldInfo("status", "int", "numeric['status']", "200; 401 for a failed login; 403 for an access denied"),
    FieldInfo("is_incident", "int8", "labels", "1 for an attacker's event, else 0"),
    FieldInfo("incident", "str", "extra['incident']", "the incident kind, '' outside incidents"),
)

# name, country, lat, lon, UTC offset (hours), share of the accounts
CITIES = (
    ("New York", "US", 40.71, -74.01, -5.0, 0.10), ("Chicago", "US", 41.88, -87.63, -6.0, 0.05),
    ("San Francisco", "US", 37.77, -122.42, -8.0, 0.07), ("Toronto", "CA", 43.65, -79.38, -5.0, 0.04),
    ("London", "GB", 51.51, -0.13, 0.0, 0.10), ("Paris", "FR", 48.86, 2.35, 1.0, 0.07),
    ("Berlin", "DE", 52.52, 13.40, 1.0, 0.06), ("Amsterdam", "NL", 52.37, 4.90, 1.0, 0.04),
    ("Madrid", "ES", 40.42, -3.70, 1.0, 0.04), ("Milan", "IT", 45.46, 9.19, 1.0, 0.03),
    ("Stockholm", "SE", 59.33, 18.07, 1.0, 0.02), ("Warsaw", "PL", 52.23, 21.01, 1.0, 0.03),
    ("Dublin", "IE", 53.35, -6.26, 0.0, 0.02), ("Sao Paulo", "BR", -23.55, -46.63, -3.0, 0.04),
    ("Mexico City", "MX", 19.43, -99.13, -6.0, 0.03), ("Mumbai", "IN", 19.08, 72.88, 5.5, 0.05),
    ("Bangalore", "IN", 12.97, 77.59, 5.5, 0.04), ("Singapore", "SG", 1.35, 103.82, 8.0, 0.03),
    ("Tokyo", "JP", 35.68, 139.69, 9.0, 0.04), ("Sydney", "AU", -33.87, 151.21, 10.0, 0.03),
    ("Johannesburg", "ZA", -26.20, 28.05, 2.0, 0.02), ("Lagos", "NG", 6.52, 3.38, 1.0, 0.01),
)
# where attackers' IPs geolocate: hosting, proxy and botnet cities (name, country, lat, lon)
ATTACK_PLACES = (
    ("Ashburn", "US", 39.04, -77.49), ("Frankfurt", "DE", 50.11, 8.68), ("Amsterdam", "NL", 52.37, 4.90),
    ("Moscow", "RU", 55.76, 37.62), ("Saint Petersburg", "RU", 59.93, 30.36), ("Beijing", "CN", 39.90, 116.40),
    ("Shenzhen", "CN", 22.54, 114.06), ("Hanoi", "VN", 21.03, 105.85), ("Ho Chi Minh City", "VN", 10.82, 106.63),
    ("Lagos", "NG", 6.52, 3.38), ("Bucharest", "RO", 44.43, 26.10), ("Kyiv", "UA", 50.45, 30.52),
    ("Jakarta", "ID", -6.21, 106.85), ("Tehran", "IR", 35.69, 51.39), ("Sao Paulo", "BR", -23.55, -46.63),
    ("Istanbul", "TR", 41.01, 28.98), ("Seoul", "KR", 37.57, 126.98), ("Singapore", "SG", 1.35, 103.82),
)
VPN_EXITS = ((1, "Frankfurt"), (0, "Ashburn"), (17, "Singapore"))  # attack-place index of each exit's city (hosting)
# what users open after logging in (weights), and what a forbidden burst enumerates
RESOURCES = ("/api/profile", "/api/messages", "/api/search", "/api/orders", "/api/files", "/api/reports", "/api/billing",
             "/api/settings", "/admin/users", "/admin/settings", "/admin/audit")
_RESOURCE_WEIGHT = np.array([0.18, 0.2, 0.15, 0.12, 0.12, 0.09, 0.05, 0.05, 0.02, 0.01, 0.01])
_PROBED = np.array([4, 5, 6, 8, 9, 10])  # files, reports, billing, admin/*
LOGIN = "/login"

WEEKEND_ACTIVITY = 0.4  # sessions on Saturdays and Sundays, relative to weekdays
EMPLOYEE_SHARE, ORG_SIZE, VPN_SHARE = 0.6, 40, 0.05
MOBILE_POOL, WIFI_POOL = 8, 40
MISTYPE_SHARE, GIVE_UP_SHARE, DENIED_SHARE = 0.05, 0.15, 0.01
TRIP_SHARE, TRIP_MAX_KM, FLIGHT_KMH = 0.004, 9_000.0, 800.0
TRAVEL_MIN_KM = 3_000.0  # an impossible-travel attacker is at least this far from the user's last place

INCIDENT_KINDS = ("credential_stuffing", "password_spraying", "impossible_travel", "forbidden_burst")
_STUFFING, _SPRAYING, _TRAVEL, _BURST = range(4)
_INCIDENT_SHARE = (0.25, 0.25, 0.25, 0.25)
_DURATIONS_S = ((120.0, 900.0), (1800.0, 14_400.0), (300.0, 1800.0), (60.0, 600.0))
TRIP_STREAM, ATTACK_STREAM = 5, 6

_FIRST_OCTETS = np.array([5, 24, 31, 37, 45, 46, 62, 67, 68, 71, 73, 76, 77, 78, 79, 80, 81, 82, 83, 84, 85, 86, 89, 90,
                          91, 92, 93, 94, 95, 98, 103, 104, 107, 109, 113, 115, 116, 117, 118, 119, 123, 124, 125, 139, 141,
                          144, 146, 149, 154, 156, 159, 162, 163, 167, 170, 171, 173, 174, 176, 178, 180, 182, 185, 186, 188,
                          190, 191, 193, 194, 195, 196, 197, 200, 201, 203, 210, 211, 212, 213, 217, 218, 219, 220, 221, 222])


def _ips(rng: np.random.Generator, n: int) -> np.ndarray:
    """``n`` public-looking IPv4 addresses."""
    first = rng.choice(_FIRST_OCTETS, size=n)
    rest = rng.integers(0, 256, size=(n, 3))
    rest[:, 2] = np.maximum(rest[:, 2], 1)
    return np.array([f"{a}.{b}.{c}.{d}" for a, (b, c, d) in zip(first.tolist(), rest.tolist())], dtype=object)


def _km(lat1: np.ndarray | float, lon1: np.ndarray | float, lat2: np.ndarray | float, lon2: np.ndarray | float) -> np.ndarray:
    """Great-circle distance in km."""
    p1, p2 = np.radians(lat1), np.radians(lat2)
    a = np.sin((p2 - p1) / 2) ** 2 + np.cos(p1) * np.cos(p2) * np.sin(np.radians(np.subtract(lon2, lon1)) / 2) ** 2
    return 2.0 * 6371.0088 * np.arcsin(np.minimum(1.0, np.sqrt(a)))


@dataclass
class _Events:
    """Events as columns (unsorted), before they become a batch."""

    times: np.ndarray
    user: np.ndarray  # account index
    place: np.ndarray  # index into the simulator's IP table
    resource: np.ndarray  # index into _RESOURCE_NAMES
    status: np.ndarray  # 200, 401, 403
    code: np.ndarray  # incident kind + 1, 0 = none

    @classmethod
    def concat(cls, parts: list[_Events]) -> _Events:
        return cls(*(np.concatenate([getattr(p, name) for p in parts]) for name in ("times", "user", "place", "resource", "status", "code")))

    def take(self, rows: np.ndarray) -> _Events:
        return _Events(self.times[rows], self.user[rows], self.place[rows], self.resource[rows], self.status[rows], self.code[rows])


_RESOURCE_NAMES = np.array([LOGIN, *RESOURCES], dtype=object)  # resource code 0 = a login


@dataclass
class _Attack:
    """One incident's events (its own, whatever day they fall in) and its table row."""

    events: _Events
    row: dict[str, Any]


class LoginSimulator(IncidentSimulator):
    """An endless, deterministic, labelled stream of login attempts and accesses.

    Parameters
    ----------
    accounts:
        Number of user accounts (entities); a weekday holds about 15 events per account.
    incident_rate:
        Attacks per account per day after warm-up (default 0.004: 8 a day at 2,000 accounts).
    warmup_days, start, seed:
        Days of clean history, start of day 0 and seed, as for every
        :class:`~tocsin.simulate.daily.IncidentSimulator`.

    See the module docstring for what the accounts, their habits and the attacks look like.
    """

    FIELDS = FIELDS
    INCIDENT_KINDS = INCIDENT_KINDS
    INCIDENT_SHARE = _INCIDENT_SHARE

    def __init__(
        self,
        accounts: int = 2_000,
        incident_rate: float | None = None,
        warmup_days: float = 1.0,
        start: str | float | datetime = "2026-01-01T00:00:00Z",
        seed: int = 7,
    ) -> None:
        if int(accounts) < 10:
            raise ValueError(f"accounts must be >= 10, got {accounts}")
        self.accounts = int(accounts)
        rate = 0.004 if incident_rate is None else incident_rate
        self._init_incidents(rate, warmup_days, start, seed, _DURATIONS_S, per="account")
        self._build_population()
        self._attack = lru_cache(maxsize=4_096)(self._make_attack)
        self._locations: dict[int, np.ndarray] = {}

    # --- the population -----------------------------------------------------------

    def _build_population(self) -> None:
        rng = self._rng(FLEET_STREAM)
        n = self.accounts
        self._user_names = self._entity_names = np.array([f"user{u:05d}" for u in range(n)], dtype=object)
        share = np.array([c[5] for c in CITIES])
        self._city_lat = np.array([c[2] for c in CITIES])
        self._city_lon = np.array([c[3] for c in CITIES])
        self._city_offset = np.array([c[4] for c in CITIES])
        n_cities = len(CITIES)
        self._home = rng.choice(n_cities, size=n, p=share / share.sum())
        activity = np.exp(rng.normal(0.0, 0.7, size=n))
        self._activity = 2.5 * activity / activity.mean()
        self._access_mean = rng.uniform(2.0, 8.0, size=n)
        self._vpn_user = rng.random(n) < VPN_SHARE
        self._vpn_exit = rng.integers(len(VPN_EXITS), size=n)
        employee = rng.random(n) < EMPLOYEE_SHARE

        # the IP table: every place an event can come from (its IP, city-level coordinates, country)
        ips: list[np.ndarray] = []
        lat: list[np.ndarray] = []
        lon: list[np.ndarray] = []
        country: list[np.ndarray] = []

        def add(count: int, base_lat: np.ndarray, base_lon: np.ndarray, codes: np.ndarray, spread: float) -> int:
            first = sum(len(a) for a in ips)
            ips.append(_ips(rng, count))
            lat.append(np.round(base_lat + rng.uniform(-spread, spread, size=count), 4))
            lon.append(np.round(base_lon + rng.uniform(-spread, spread, size=count), 4))
            country.append(codes)
            return first

        city_country = np.array([c[1] for c in CITIES], dtype=object)
        self._home_ip = add(n, self._city_lat[self._home], self._city_lon[self._home], city_country[self._home], 0.15) + np.arange(n)
        # organisations: about ORG_SIZE employees each, in the employee's home city
        org = np.full(n, -1, dtype=np.int64)
        org_city: list[int] = []
        for c in range(n_cities):
            staff = np.flatnonzero(employee & (self._home == c))
            if len(staff):
                count = max(1, int(np.rint(len(staff) / ORG_SIZE)))
                org[staff] = len(org_city) + rng.integers(count, size=len(staff))
                org_city += [c] * count
        org_city_arr = np.array(org_city, dtype=np.int64)
        office_first = add(len(org_city), self._city_lat[org_city_arr], self._city_lon[org_city_arr], city_country[org_city_arr], 0.1)
        self._office_ip = np.where(org >= 0, office_first + org, -1)
        pools = np.repeat(np.arange(n_cities), MOBILE_POOL)
        self._mobile_first = add(len(pools), self._city_lat[pools], self._city_lon[pools], city_country[pools], 0.2)
        pools = np.repeat(np.arange(n_cities), WIFI_POOL)
        self._wifi_first = add(len(pools), self._city_lat[pools], self._city_lon[pools], city_country[pools], 0.2)
        exit_place = np.array([p for p, _ in VPN_EXITS])
        self._attack_lat = np.array([p[2] for p in ATTACK_PLACES])
        self._attack_lon = np.array([p[3] for p in ATTACK_PLACES])
        self._attack_country = np.array([p[1] for p in ATTACK_PLACES], dtype=object)
        self._vpn_first = add(len(VPN_EXITS), self._attack_lat[exit_place], self._attack_lon[exit_place], self._attack_country[exit_place], 0.0)
        self._ip = np.concatenate(ips)
        self._lat = np.concatenate(lat)
        self._lon = np.concatenate(lon)
        self._country = np.concatenate(country).astype(object)
        self._fixed_places = len(self._ip)

    # --- trips ----------------------------------------------------------------------

    def _location(self, index: int) -> np.ndarray:
        """Each account's city on day ``index``: its home, or a trip's destination (days before 0: home)."""
        if index < 0:
            return self._home
        if index in self._locations:
            return self._locations[index]
        if len(self._locations) >= 64:
            self._locations.clear()
        self._locations[index] = self._draw_location(index)
        return self._locations[index]

    def _draw_location(self, index: int) -> np.ndarray:
        rng = self._rng(TRIP_STREAM, index)
        away = rng.random(self.accounts) < TRIP_SHARE
        destination = rng.integers(len(CITIES), size=self.accounts)
        distance = _km(self._city_lat[self._home], self._city_lon[self._home], self._city_lat[destination], self._city_lon[destination])
        away &= (destination != self._home) & (distance <= TRIP_MAX_KM)
        return np.where(away, destination, self._home)

    # --- incidents ----------------------------------------------------------------

    def _plan_details(self, rng: np.random.Generator, kind: np.ndarray, entity: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``level``: attempts (stuffing) or requests (burst) per second, log-uniform in 0.1-2 and 0.2-2; ``part``:
        the stream of the incident's own events (drawn so the incident's details depend on the plan alone)."""
        low = np.where(kind == _BURST, 0.2, 0.1)
        level = np.exp(np.log(low) + rng.random(len(kind)) * (np.log(2.0) - np.log(low)))
        part = rng.integers(0, 2**31, size=len(kind))
        return level, part

    def _make_attack(self, kind: int, start: float, end: float, entity: int, level: float, part: int) -> _Attack:
        """An incident's events and table row, from its plan alone."""
        rng = np.random.default_rng(np.random.SeedSequence([self.seed % 2**64, ATTACK_STREAM, part]))
        duration = end - start
        n_places = len(ATTACK_PLACES)
        name = INCIDENT_KINDS[kind]
        if kind == _STUFFING:
            attempts = max(2, int(np.rint(level * duration)))
            victims = rng.choice(self.accounts, size=min(attempts, self.accounts), replace=False)
            user = victims[np.arange(attempts) % len(victims)]
            times = np.sort(start + rng.random(attempts) * duration)
            ip_place = rng.integers(n_places, size=1)
            place = np.zeros(attempts, dtype=np.int64)
            ok = rng.random(attempts) < 0.01
            events = self._attempts(rng, times, user, place, ok, accesses=(1, 3), code=kind + 1, end=end)
            places, touched = ip_place, victims
        elif kind == _SPRAYING:
            n_ips = int(rng.integers(3, 9))
            targets = int(rng.integers(40, 401))
            passwords = int(rng.integers(1, 3))
            victims = rng.choice(self.accounts, size=min(targets, self.accounts), replace=False)
            user = np.tile(victims, passwords)
            times = np.sort(start + rng.random(len(user)) * duration)
            places = rng.integers(n_places, size=n_ips)
            place = rng.integers(n_ips, size=len(user))
            ok = rng.random(len(user)) < 0.005
            events = self._attempts(rng, times, user, place, ok, accesses=(0, 0), code=kind + 1, end=end)
            touched = victims
        elif kind == _TRAVEL:
            victim = np.array([entity])
            gap = rng.uniform(600.0, 10_800.0)
            city = int(self._location(int(np.floor((start - gap - self.start_time) / SECONDS_PER_DAY)))[entity])
            far = np.flatnonzero(_km(self._city_lat[city], self._city_lon[city], self._attack_lat, self._attack_lon) >= TRAVEL_MIN_KM)
            places = rng.choice(far, size=1)
            accesses = int(rng.integers(3, 16))
            times = np.concatenate([[start], np.sort(start + 30.0 + rng.random(accesses) * (duration - 30.0))])
            status = np.where(rng.random(accesses + 1) < 0.05, 403, 200)
            status[0] = 200
            resource = np.concatenate([[0], 1 + rng.choice(len(RESOURCES), size=accesses, p=_RESOURCE_WEIGHT)])
            events = _Events(times, np.full(accesses + 1, entity), np.zeros(accesses + 1, dtype=np.int64), resource, status,
                             np.full(accesses + 1, kind + 1))
            # the genuine user, a little before, where they are: the place the attacker is too far from
            own = self._home_ip[entity] if city == self._home[entity] else self._mobile_first + city * MOBILE_POOL + int(rng.integers(MOBILE_POOL))
            decoy_times = start - gap + np.array([0.0, 20.0, 75.0])
            decoy = _Events(decoy_times, np.full(3, entity), np.full(3, -1 - own), np.array([0, 1, 2]), np.full(3, 200), np.zeros(3, dtype=np.int64))
            events = _Events.concat([events, decoy])
            touched = victim
        else:  # _BURST
            requests = max(2, int(np.rint(level * duration)))
            times = np.sort(start + rng.random(requests) * duration)
            share = rng.uniform(0.6, 0.95)
            status = np.where(rng.random(requests) < share, 403, 200)
            resource = 1 + rng.choice(_PROBED, size=requests)
            own = rng.random() < 0.5
            places = rng.integers(n_places, size=1)
            place = np.full(requests, -1 - self._home_ip[entity]) if own else np.zeros(requests, dtype=np.int64)
            events = _Events(times, np.full(requests, entity), place, resource, status, np.full(requests, kind + 1))
            touched = np.array([entity])
            if own:
                places = places[:0]
        # attacker places: fresh IPs (indices past the fixed table, numbered by the incident's stream), coded >= 0 in
        # `place` as the index into `places`; a fixed place is coded -1 - its index
        ips = _ips(rng, len(places))
        lat = np.round(self._attack_lat[places] + rng.uniform(-0.2, 0.2, size=len(places)), 4)
        lon = np.round(self._attack_lon[places] + rng.uniform(-0.2, 0.2, size=len(places)), 4)
        used_ips = ips.tolist() if len(places) else [str(self._ip[self._home_ip[entity]])]
        described = str(self._user_names[entity]) if kind == _TRAVEL else ",".join(used_ips)
        row = {"kind": name, "entity": described, "entities": self._user_names[np.asarray(touched)].tolist(), "ips": used_ips,
               "start": start, "end": end}
        events.times = np.round(events.times, 3)
        attack = _Attack(events, row)
        attack.ip, attack.lat, attack.lon, attack.country = ips, lat, lon, self._attack_country[places]  # type: ignore[attr-defined]
        return attack

    def _attempts(self, rng: np.random.Generator, times: np.ndarray, user: np.ndarray, place: np.ndarray, ok: np.ndarray,
                  accesses: tuple[int, int], code: int, end: float) -> _Events:
        """Login attempts (a success followed by ``accesses`` accesses a few seconds apart from the same place, before ``end``)."""
        n = len(times)
        status = np.where(ok, 200, 401)
        parts = [_Events(times, user, place, np.zeros(n, dtype=np.int64), status, np.zeros(n, dtype=np.int64))]
        hits = np.flatnonzero(ok)
        if accesses[1] > 0 and len(hits):
            count = rng.integers(accesses[0], accesses[1] + 1, size=len(hits))
            row = np.repeat(hits, count)
            follow = times[row] + rng.uniform(2.0, 30.0, size=len(row)) * (1 + np.arange(len(row)) - np.repeat(np.cumsum(count) - count, count))
            follow = np.minimum(follow, end - 0.01)
            parts.append(_Events(follow, user[row], place[row], 1 + rng.choice(len(RESOURCES), size=len(row), p=_RESOURCE_WEIGHT),
                                 np.full(len(row), 200), np.zeros(len(row), dtype=np.int64)))
        events = _Events.concat(parts)
        events.code = np.full(len(events.times), code, dtype=np.int64)
        return events

    def _attacks_touching(self, index: int) -> list[_Attack]:
        """Every incident that may have events in day ``index`` (those planned the day before, that day and the day
        after: a genuine user's login before an impossible-travel attack may fall on the day before the attack)."""
        attacks = []
        for day in (index - 1, index, index + 1):
            if day < 0:
                continue
            plan = self._plan(day)
            for i in range(len(plan)):
                attacks.append(self._attack(int(plan.kind[i]), float(plan.start[i]), float(plan.end[i]), int(plan.entity[i]),
                                            float(plan.level[i]), int(plan.part[i])))
        return attacks

    def incidents(self, until_time: str | float | datetime) -> list[dict[str, Any]]:
        """Every incident starting before ``until_time`` (epoch seconds, ISO 8601 or datetime), by start.

        Each is ``{"kind", "entity", "entities", "ips", "start", "end"}``: ``entity`` names what the incident is
        about (the attacker's IP, the sprayers' IPs joined by ",", or the account for impossible travel),
        ``entities`` the accounts it touched (the events' keys), ``ips`` the attacker's IPs, ``start``/``end``
        epoch seconds (the incident covers ``[start, end)``). Computed from the plans alone, no event is generated.
        """
        until = parse_start(until_time)
        last_day = int(np.floor((until - self.start_time) / SECONDS_PER_DAY))
        table: list[dict[str, Any]] = []
        for index in range(max(0, last_day + 1)):
            plan = self._plan(index)
            for i in range(len(plan)):
                if plan.start[i] >= until:
                    continue
                attack = self._attack(int(plan.kind[i]), float(plan.start[i]), float(plan.end[i]), int(plan.entity[i]),
                                      float(plan.level[i]), int(plan.part[i]))
                table.append(dict(attack.row))
        return table

    # --- sessions -------------------------------------------------------------------

    def _counts(self, index: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Day ``index``'s sessions from the count stream: each session's account, mistypes, whether it gives up
        and its accesses."""
        rng = self._rng(COUNT_STREAM, index)
        day_start = self.start_time + index * SECONDS_PER_DAY
        factor = WEEKEND_ACTIVITY if weekday(np.array([day_start + 43_200.0]))[0] >= 5 else 1.0
        sessions = rng.poisson(self._activity * factor)
        user = np.repeat(np.arange(self.accounts), sessions)
        n = len(user)
        mistyped = rng.random(n) < MISTYPE_SHARE
        failures = np.where(mistyped, np.minimum(rng.geometric(0.6, size=n), 4), 0)
        gives_up = mistyped & (rng.random(n) < GIVE_UP_SHARE)
        accesses = np.where(gives_up, 0, rng.poisson(self._access_mean[user]))
        return user, failures, gives_up, accesses

    def _day_attack_events(self, index: int) -> _Events:
        """The attack events (and genuine logins before impossible travel) falling in day ``index``, with fixed places."""
        day_start = self.start_time + index * SECONDS_PER_DAY
        parts = []
        base = len(self._ip)
        for attack in self._attacks_touching(index):
            events = attack.events
            inside = np.flatnonzero((events.times >= day_start) & (events.times < day_start + SECONDS_PER_DAY))
            if len(inside):
                parts.append((attack, events.take(inside)))
        if not parts:
            return _Events(*(np.zeros(0, dtype=t) for t in (float, np.int64, np.int64, np.int64, np.int64, np.int64)))
        resolved = []
        for attack, events in parts:
            place = np.where(events.place < 0, -1 - events.place, base + events.place)
            base += len(attack.ip)  # type: ignore[attr-defined]
            resolved.append(_Events(events.times, events.user, place, events.resource, events.status, events.code))
        return _Events.concat(resolved)

    def _day_size(self, index: int) -> int:
        _, failures, gives_up, accesses = self._counts(index)
        return int((failures + np.where(gives_up, 0, 1 + accesses)).sum()) + len(self._day_attack_events(index).times)

    def _sessions(self, index: int) -> _Events:
        """The genuine users' events of day ``index``."""
        user, failures, gives_up, accesses = self._counts(index)
        rng = self._rng(DETAIL_STREAM, index)
        n = len(user)
        day_start = self.start_time + index * SECONDS_PER_DAY
        day_of_week = weekday(np.array([day_start + 43_200.0]))[0]
        city = self._location(index)[user]
        moved = self._location(index) != self._location(index - 1)
        home = self._home[user]
        # local time of the session's start: morning/day or evening
        local = np.where(rng.random(n) < 0.6, rng.normal(10.5, 2.0, size=n), rng.normal(19.5, 2.0, size=n))
        local = np.clip(local, 0.0, 23.99)
        offset = np.mod((local - self._city_offset[city]) * 3600.0 + rng.random(n) * 60.0, SECONDS_PER_DAY)
        # a day in another place than the day before starts after the flight
        previous = self._location(index - 1)[user]
        flight = np.where(moved[user], _km(self._city_lat[previous], self._city_lon[previous], self._city_lat[city],
                                           self._city_lon[city]) / FLIGHT_KMH * 3600.0 + 7_200.0, 0.0)
        offset = flight + offset * (SECONDS_PER_DAY - 600.0 - flight) / SECONDS_PER_DAY
        # the place
        draw, pick = rng.random(n), rng.random(n)
        office = self._office_ip[user]
        at_office = (office >= 0) & (day_of_week < 5) & (local >= 8.0) & (local < 18.0) & (draw < 0.75) & (city == home)
        vpn = ~at_office & self._vpn_user[user] & (rng.random(n) < 0.3)
        mobile = self._mobile_first + city * MOBILE_POOL + np.floor(pick * MOBILE_POOL).astype(np.int64)
        wifi = self._wifi_first + city * WIFI_POOL + np.floor(pick * WIFI_POOL).astype(np.int64)
        where = np.where(pick < 0.6, self._home_ip[user], np.where(pick < 0.92, mobile, wifi))
        where = np.where(city != home, np.where(pick < 0.5, mobile, wifi), where)  # on a trip
        where = np.where(vpn, self._vpn_first + self._vpn_exit[user], where)
        where = np.where(at_office, office, where)

        # events: the session's failures, its login, its accesses
        size = failures + np.where(gives_up, 0, 1 + accesses)
        session = np.repeat(np.arange(n), size)
        step = np.arange(len(session)) - np.repeat(np.cumsum(size) - size, size)  # 0, 1, ... within the session
        is_failure = step < failures[session]
        is_login = step == failures[session]
        gap = np.where(step <= failures[session], rng.uniform(4.0, 25.0, size=len(session)), rng.exponential(45.0, size=len(session)))
        gap[step == 0] = 0.0
        elapsed = np.cumsum(gap)
        elapsed -= np.repeat(elapsed[np.cumsum(size) - size] if len(size) else elapsed[:0], size)
        times = np.minimum(day_start + offset[session] + elapsed, day_start + SECONDS_PER_DAY - 0.001)
        resource = np.where(is_failure | is_login, 0, 1 + rng.choice(len(RESOURCES), size=len(session), p=_RESOURCE_WEIGHT))
        denied = ~is_failure & ~is_login & (rng.random(len(session)) < DENIED_SHARE)
        status = np.where(is_failure, 401, np.where(denied, 403, 200))
        return _Events(np.round(times, 3), user[session], where[session], resource, status, np.zeros(len(session), dtype=np.int64))

    # --- days -------------------------------------------------------------------

    def day(self, index: int) -> EventBatch:
        """All events of simulated day ``index`` (0 = the day starting at ``start``), sorted by time."""
        index = self._check_day(index)
        events = _Events.concat([self._sessions(index), self._day_attack_events(index)])
        ip, lat, lon, country = self._ip, self._lat, self._lon, self._country
        day_start = self.start_time + index * SECONDS_PER_DAY
        fresh = [a for a in self._attacks_touching(index) if ((a.events.times >= day_start) & (a.events.times < day_start + SECONDS_PER_DAY)).any()]
        if fresh:
            ip = np.concatenate([ip, *[a.ip for a in fresh]])  # type: ignore[attr-defined]
            lat = np.concatenate([lat, *[a.lat for a in fresh]])  # type: ignore[attr-defined]
            lon = np.concatenate([lon, *[a.lon for a in fresh]])  # type: ignore[attr-defined]
            country = np.concatenate([country, *[a.country for a in fresh]])  # type: ignore[attr-defined]
        order = np.argsort(events.times, kind="stable")
        events = events.take(order)
        first_position = self._day_position(index)
        positions = np.arange(first_position, first_position + len(order), dtype=np.int64)
        labels, extra_columns = self._labels(events.code)
        keys = self._user_names[events.user]
        return EventBatch(
            ids=position_ids("lg", positions),
            keys=keys,
            times=events.times.astype(np.float64),
            numeric={"lat": lat[events.place].astype(np.float64), "lon": lon[events.place].astype(np.float64),
                     "success": (events.status == 200).astype(np.float64), "status": events.status.astype(np.float64)},
            # the account is also a category (the key field's second role: accounts per IP), as a file source decodes it
            categorical={"user": keys, "ip": ip[events.place].astype(object), "country": country[events.place].astype(object),
                         "resource": _RESOURCE_NAMES[events.resource]},
            positions=positions,
            labels=labels,
            extra=extra_columns,
        )


# --- files -------------------------------------------------------------------


def write_events(batch: EventBatch, path: str | Path, format: str | None = None) -> None:
    """Write a login batch with one record per event and every field of :data:`FIELDS`.

    ``format`` is "jsonl" (via msgspec), "csv" or "parquet" (via pyarrow); when
    omitted it is taken from the file suffix.
    """
    write_fields(batch, FIELDS, path, format)
