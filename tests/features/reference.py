"""Plain-Python reference implementations of the feature operators, one event at a time.

Written from the semantics in the operator docstrings, with dicts and deques
and no shared code with the kernels, so the property tests compare two
independent readings of the same rules. Slow on purpose: clarity over speed.

An event is a dict with ``key``, ``time`` and the schema's fields. Every
operator follows the same time rule: a late event (earlier than its key's last
time) counts as happening at the key's last time.
"""

from __future__ import annotations

import math
from collections import defaultdict, deque


def duration_name(seconds: float) -> str:
    for unit, size in (("w", 604800), ("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{seconds:g}s"


def key_of(event: dict, by: str) -> str:
    if by == "entity":
        return event["key"]
    if by == "global":
        return "*"
    return event[by]


def prefix_of(by: str) -> str:
    return "" if by == "entity" else f"{by}."


class RefWindow:
    def __init__(self, windows, field=None, by="entity"):
        self.windows, self.field, self.by = list(windows), field, by
        p = prefix_of(by)
        self.names = []
        for w in self.windows:
            self.names.append(f"{p}count_{duration_name(w)}")
            if field:
                self.names.append(f"{p}{field}_sum_{duration_name(w)}")
        self.events = defaultdict(deque)  # key -> (effective time, value)
        self.last = {}

    def step(self, event):
        key = key_of(event, self.by)
        t = max(event["time"], self.last.get(key, -math.inf))
        self.last[key] = t
        x = event[self.field] if self.field else 0.0
        prior = self.events[key]
        out = []
        for w in self.windows:
            inside = [v for (time, v) in prior if time > t - w]
            out.append(float(len(inside)))
            if self.field:
                out.append(math.fsum(inside))
        while prior and prior[0][0] <= t - max(self.windows):
            prior.popleft()
        prior.append((t, x))
        return out


class RefDecayed:
    def __init__(self, field, half_life, outputs=("zscore", "ratio"), by="entity"):
        self.field, self.half_life, self.outputs, self.by = field, half_life, list(outputs), by
        h = duration_name(half_life)
        self.names = [f"{prefix_of(by)}{field}_{o}_{h}" for o in self.outputs]
        self.state = {}  # key -> (last time, W, M, S)

    def step(self, event):
        key = key_of(event, self.by)
        x = event[self.field]
        last, W, M, S = self.state.get(key, (event["time"], 0.0, 0.0, 0.0))
        t = max(last, event["time"])
        a = 2.0 ** (-(t - last) / self.half_life)
        prior_weight = a * W
        if prior_weight > 0:
            mean = M
            std = math.sqrt(max(S / W, 0.0))  # var = S/W: the decay cancels
        else:
            mean = std = 0.0
        values = {
            "zscore": (x - mean) / max(std, 0.1 * abs(mean), 1e-9) if prior_weight >= 2 else 0.0,
            "ratio": x / mean if prior_weight >= 1 and abs(mean) > 1e-12 else 1.0,
            "mean": mean,
            "std": std,
        }
        if prior_weight > 0:
            W1 = prior_weight + 1.0
            M1 = M + (x - M) / W1
            S1 = a * S + (x - M) * (x - M1)
        else:
            W1, M1, S1 = 1.0, x, 0.0
        self.state[key] = (t, W1, M1, S1)
        return [values[o] for o in self.outputs]


class RefRecency:
    def __init__(self, cap, by="entity"):
        self.cap, self.by = cap, by
        self.names = [f"{prefix_of(by)}seconds_since_last"]
        self.last = {}

    def step(self, event):
        key = key_of(event, self.by)
        t = event["time"]
        if key in self.last:
            out = min(max(t - self.last[key], 0.0), self.cap)
            self.last[key] = max(self.last[key], t)
        else:
            out = self.cap
            self.last[key] = t
        return [out]


class RefVelocity:
    def __init__(self, half_life, by="entity", baseline=None):
        self.half_life, self.by, self.baseline = half_life, by, baseline
        self.names = [f"{prefix_of(by)}velocity_per_min_{duration_name(half_life)}"]
        if baseline is not None:
            self.names.append(f"{prefix_of(by)}velocity_ratio_{duration_name(half_life)}_{duration_name(baseline)}")
        self.state = {}  # key -> (last time, decayed count, baseline decayed count)

    def step(self, event):
        key = key_of(event, self.by)
        last, count, slow = self.state.get(key, (event["time"], 0.0, 0.0))
        t = max(last, event["time"])
        prior = count * 2.0 ** (-(t - last) / self.half_life)
        rate = prior * math.log(2.0) / self.half_life * 60.0
        out = [rate]
        if self.baseline is not None:
            slow_prior = slow * 2.0 ** (-(t - last) / self.baseline)
            slow_rate = slow_prior * math.log(2.0) / self.baseline * 60.0
            out.append(rate / max(slow_rate, math.log(2.0) / self.baseline * 60.0))
            slow = slow_prior + 1.0
        self.state[key] = (t, prior + 1.0, slow)
        return out


class RefNovelty:
    def __init__(self, field, by="entity"):
        self.field, self.by = field, by
        p = prefix_of(by)
        self.names = [f"{p}{field}_novel", f"{p}{field}_seen_count", f"{p}{field}_distinct", f"{p}{field}_share"]
        self.counts = defaultdict(int)
        self.totals = defaultdict(int)
        self.values = defaultdict(set)

    def step(self, event):
        key = key_of(event, self.by)
        value = event[self.field]
        seen = self.counts[(key, value)]
        total = self.totals[key]
        share = seen / total if total else 0.0
        out = [1.0 if seen == 0 else 0.0, float(seen), float(len(self.values[key])), share]
        self.counts[(key, value)] += 1
        self.totals[key] += 1
        self.values[key].add(value)
        return out


class RefValue:
    def __init__(self, field, log=False):
        self.field, self.log = field, log
        self.names = [f"log_{field}" if log else field]

    def step(self, event):
        x = event[self.field]
        return [math.copysign(math.log1p(abs(x)), x) if self.log else x]


class RefSeries:
    """Per-series level, spread, hour-of-day/-week profile and shift run, as ``tocsin.features.series`` says."""

    def __init__(self, field, by="entity", metric_field=None, season="daily", level_half_life=86_400.0,
                 spread_half_life=86_400.0, season_memory=2.0, prior_weight=20.0, clip_z=3.0, shift_z=4.0,
                 shift_after=3_600.0, min_rel_spread=0.01, slot=3_600.0, sustained=1, trend=False, min_spread=0.0, stuck=False):
        self.field, self.by, self.metric_field, self.season = field, by, metric_field, season
        self.level_hl, self.spread_hl, self.season_hl = level_half_life, spread_half_life, season_memory * 3600.0
        self.prior_weight, self.clip_z, self.shift_z, self.shift_after = prior_weight, clip_z, shift_z, shift_after
        self.min_rel, self.slot, self.sustained, self.trend, self.min_spread = min_rel_spread, slot, sustained, trend, min_spread
        self.stuck = stuck
        self.names = ([f"{prefix_of(by)}{field}_surprise"] + ([f"{prefix_of(by)}{field}_trend"] if trend else [])
                      + ([f"{prefix_of(by)}{field}_stuck"] if stuck else []))
        self.series = {}  # (key, metric) -> dict
        self.pooled = defaultdict(lambda: {"n": 0.0, "level": 0.0, "dev": 0.0, "rn": 0.0, "resid": 0.0})

    @staticmethod
    def _weight(dt, half_life):
        return 1.0 - math.exp(-math.log(2.0) * dt / half_life)

    def step(self, event):
        metric = event[self.metric_field] if self.metric_field else None
        s = self.series.setdefault((key_of(event, self.by), metric), {
            "last": -math.inf, "n": 0.0, "level": 0.0, "spread": 0.0, "m": 0.0, "run": 0, "run_sum": 0.0,
            "run_start": 0.0, "previous": [0.0] * 4, "up": 0.0, "down": 0.0, "last_x": 0.0, "repeats": 0.0, "rate": 0.0, "day": {}, "week": {}, "day_spread": defaultdict(float)})
        p = self.pooled[metric]
        t, dt = event["time"], 0.0
        if t < s["last"]:
            t = s["last"]
        else:
            if s["n"] > 0:
                dt = t - s["last"]
            s["last"] = t
        x, n = event[self.field], s["n"]
        hour = int(math.floor((t % 86400.0) / 3600.0))
        day_slot = int(math.floor((t % 86400.0) / self.slot))
        week_slot = int((math.floor(t / 86400.0) + 3) % 7) * 24 + hour
        offset, profile = 0.0, None
        if self.season != "none" and n > 0:
            if self.season == "weekly" and s["week"].get(week_slot, (0.0, 0))[1] >= 2:
                offset, profile = s["week"][week_slot][0], "week"
            elif s["day"].get(day_slot, (0.0, 0))[1] >= 2:
                offset, profile = s["day"][day_slot][0], "day"
        if n == 0:
            expected = p["level"] if p["n"] > 0 else x
            spread = p["dev"]
        else:
            expected = s["level"] + offset
            spread = s["spread"]
            if p["rn"] > 0 and s["m"] + self.prior_weight > 0:
                spread = (s["m"] * spread + self.prior_weight * p["resid"]) / (s["m"] + self.prior_weight)
        if self.season != "none" and n > 0 and s["day"].get(day_slot, (0.0, 0))[1] > 2:
            spread = max(spread, s["day_spread"][day_slot])
        sigma = max(1.2533 * max(spread, self.min_rel * abs(expected), 1e-9), self.min_spread)
        z = (x - expected) / sigma if (n > 0 or p["n"] > 0) else 0.0
        output = z
        if self.sustained > 1:
            window = [z] + s["previous"][: self.sustained - 1]
            output = min(window, key=abs) if all(v * z > 0 for v in window) else 0.0
            s["previous"] = [z] + s["previous"][:-1]
        if self.trend and n > 0 and (self.season == "none" or profile is not None):
            step = min(max(z, -self.clip_z), self.clip_z)
            s["up"], s["down"] = max(0.0, s["up"] + step - 0.5), min(0.0, s["down"] + step + 0.5)
        trend = s["up"] if s["up"] >= -s["down"] else s["down"]
        stuck_z = 0.0
        if self.stuck:
            same = n > 0 and x == s["last_x"]
            s["repeats"] = s["repeats"] + 1 if same else 1.0
            if s["repeats"] >= 3 and n >= 20:
                a = -2.0 * s["repeats"] * math.log(min(max(s["rate"], 1e-3), 0.99))
                stuck_z = math.sqrt(max(a - math.log(a) - math.log(2 * math.pi), 0.0)) if a > 1 else 0.0
            if n > 0:
                s["rate"] += max(1.0 / n, 1e-3) * ((1.0 if same else 0.0) - s["rate"])
            s["last_x"] = x
        if n == 0:
            s["level"] = x
        else:
            profiled = self.season == "none" or profile is not None
            r = min(max(x - expected, -self.clip_z * sigma), self.clip_z * sigma) if profiled else x - expected
            if profiled and abs(z) > self.shift_z:
                sign = 1 if z > 0 else -1
                if s["run"] * sign > 0:
                    s["run"] += sign
                    s["run_sum"] += x - offset
                else:
                    s["run"], s["run_sum"], s["run_start"] = sign, x - offset, t
            else:
                s["run"], s["run_sum"] = 0, 0.0
            if abs(s["run"]) >= 5 and t - s["run_start"] >= self.shift_after:
                s["level"] = s["run_sum"] / abs(s["run"])
                s["run"], s["run_sum"], s["up"], s["down"] = 0, 0.0, 0.0, 0.0
            else:
                s["level"] += max(1.0 / (n + 1.0), self._weight(dt, self.level_hl)) * (expected + r - offset - s["level"])
            if profiled:
                s["m"] += 1.0
                s["spread"] += max(1.0 / s["m"], self._weight(dt, self.spread_hl)) * (abs(r) - s["spread"])
                if p["rn"] == 0:
                    p["resid"] = abs(r)
                else:
                    p["resid"] += max(1.0 / (p["rn"] + 1.0), 1e-4) * (abs(r) - p["resid"])
                p["rn"] += 1.0
            if self.season != "none":
                deviation = expected + r - s["level"]
                value, count = s["day"].get(day_slot, (0.0, 0))
                if profiled and count >= 2:
                    s["day_spread"][day_slot] += max(1.0 / (count - 2 + 1.0), self._weight(dt, self.season_hl)) * (
                        abs(x - expected) - s["day_spread"][day_slot])
                for table, slot in (("day", day_slot), ("week", week_slot)):
                    if table == "week" and self.season != "weekly":
                        continue
                    value, count = s[table].get(slot, (0.0, 0))
                    value += max(1.0 / (count + 1.0), self._weight(dt, self.season_hl)) * (deviation - value)
                    s[table][slot] = (value, count + 1)
        s["n"] = n + 1.0
        if p["n"] == 0:
            p["level"] = x
        else:
            w = max(1.0 / (p["n"] + 1.0), 1e-4)
            p["level"] += w * (x - p["level"])
            p["dev"] += w * (abs(x - p["level"]) - p["dev"])
        p["n"] += 1.0
        return [output] + ([trend] if self.trend else []) + ([stuck_z] if self.stuck else [])


class RefTravel:
    """Haversine distance from the key's previous place and the speed, the gap floored at min_seconds."""

    def __init__(self, lat_field, lon_field, min_seconds=60.0, by="entity"):
        self.lat, self.lon, self.min_seconds, self.by = lat_field, lon_field, min_seconds, by
        self.names = [f"{prefix_of(by)}travel_km", f"{prefix_of(by)}travel_speed_kmh"]
        self.state = {}

    def step(self, event):
        key = key_of(event, self.by)
        lat, lon, t = event[self.lat], event[self.lon], event["time"]
        out = [0.0, 0.0]
        if key in self.state:
            last, plat, plon = self.state[key]
            p1, p2 = math.radians(plat), math.radians(lat)
            a = math.sin((p2 - p1) / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(math.radians(lon - plon) / 2) ** 2
            km = 2 * 6371.0088 * math.asin(min(1.0, math.sqrt(max(a, 0.0))))
            out = [km, km / (max(t - last, self.min_seconds) / 3600.0)]
            t = max(t, last)
        self.state[key] = (t, lat, lon)
        return out


def from_feature_spec(feature) -> object:
    """The reference operator for one parsed feature spec."""
    by = getattr(feature, "by", None) or "entity"
    if feature.kind == "window":
        return RefWindow(feature.windows, feature.field, by)
    if feature.kind == "decayed_stats":
        return RefDecayed(feature.field, feature.half_life, feature.outputs, by)
    if feature.kind == "recency":
        return RefRecency(feature.cap, by)
    if feature.kind == "velocity":
        return RefVelocity(feature.half_life, by, feature.baseline)
    if feature.kind == "novelty":
        return RefNovelty(feature.field, by)
    if feature.kind == "value":
        return RefValue(feature.field, feature.log)
    if feature.kind == "travel":
        return RefTravel(feature.lat_field, feature.lon_field, feature.min_seconds, by)
    if feature.kind == "series":
        return RefSeries(feature.field, by, feature.metric_field, feature.season, feature.level_half_life,
                         feature.spread_half_life, feature.season_memory, feature.prior_weight, feature.clip_z,
                         feature.shift_z, feature.shift_after, feature.min_rel_spread, feature.slot, feature.sustained, feature.trend, feature.min_spread, feature.stuck)
    raise ValueError(feature.kind)


def run(operators, events) -> tuple[list[str], list[list[float]]]:
    """Feature names and one row per event, operators side by side."""
    names = [name for op in operators for name in op.names]
    rows = [[value for op in operators for value in op.step(event)] for event in events]
    return names, rows
