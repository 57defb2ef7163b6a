"""Travel: how far a key moved since its previous event, and how fast that would have been.

For events that carry a place (a login's geolocated IP, a card-present
payment's terminal): ``travel_km`` is the great-circle distance from the key's
previous event's place, and ``travel_speed_kmh`` that distance over the time
between them, the gap floored at ``min_seconds`` (two logins a second apart
from neighbouring cells are not a supersonic flight). A login from Paris and,
45 minutes later, one from Singapore is 10,700 km at 14,300 km/h: impossible
travel, which a rule (``travel_speed_kmh > 1000``) or a model can see.

Events are taken per key in arrival order; a late event counts as happening at
the key's last time (the gap is then 0, floored at ``min_seconds``). The place
moves to every event's place, late ones too.

Good at: impossible travel and account sharing. Where it fails: a VPN or a
mobile carrier's gateway puts the user where it is, not where the user is;
coordinates that are missing must be dropped upstream (they are required
numeric fields). Cost: three floats per key, O(1) per event.
"""

from __future__ import annotations

import numpy as np

from tocsin.batch import EventBatch
from tocsin.features.base import BatchKeys, FeatureOperator, FeatureOutput, format_number
from tocsin.features.kernels import grow, travel_update
from tocsin.features.recency import format_seconds

_EMPTY_ROW = np.array([-np.inf, 0.0, 0.0])


class Travel(FeatureOperator):
    """``travel_km`` and ``travel_speed_kmh`` from the key's previous event's place.

    >>> batch = EventBatch(
    ...     ids=np.array(["a", "b", "c"], dtype=object), keys=np.array(["ana"] * 3, dtype=object),
    ...     times=np.array([0.0, 3_600.0, 6_300.0]),
    ...     numeric={"lat": np.array([48.8566, 48.8606, 1.3521]), "lon": np.array([2.3522, 2.3376, 103.8198])})
    >>> op = Travel("lat", "lon", this="this user", possessive="this user's")
    >>> out = op.transform_update(batch, BatchKeys(by={"entity": np.zeros(3, dtype=np.int64)}))
    >>> np.round(out.columns["travel_speed_kmh"]).tolist()
    [0.0, 1.0, 14307.0]
    >>> op.describe("travel_speed_kmh", 2, batch, out)
    "moved 10,700 km in 45m (14,300 km/h) since this user's previous event"
    """

    def __init__(self, lat_field: str, lon_field: str, min_seconds: float = 60.0, by: str = "entity",
                 this: str = "this key", possessive: str = "this key's") -> None:
        if min_seconds <= 0:
            raise ValueError(f"min_seconds must be positive, got {min_seconds}")
        self.lat_field, self.lon_field = lat_field, lon_field
        self.field = lat_field  # what sensitivity checks read (the place is derived from both)
        self.min_seconds = float(min_seconds)
        self.by = by
        self.this, self.possessive = this, possessive
        prefix = "" if by == "entity" else f"{by}."
        self._km, self._kmh = f"{prefix}travel_km", f"{prefix}travel_speed_kmh"
        self.names = [self._km, self._kmh]
        self._state = np.empty((0, 3), dtype=np.float64)

    def transform_update(self, batch: EventBatch, keys: BatchKeys) -> FeatureOutput:
        key_ids = np.ascontiguousarray(keys.by[self.by], dtype=np.int64)
        km, kmh = np.zeros(len(key_ids)), np.zeros(len(key_ids))
        if len(key_ids):
            self._state = grow(self._state, int(key_ids.max()) + 1, _EMPTY_ROW)
            travel_update(key_ids, np.ascontiguousarray(batch.times, dtype=np.float64),
                          np.ascontiguousarray(batch.numeric[self.lat_field], dtype=np.float64),
                          np.ascontiguousarray(batch.numeric[self.lon_field], dtype=np.float64),
                          self.min_seconds, self._state, km, kmh)
        return FeatureOutput(columns={self._km: km, self._kmh: kmh})

    def key_state(self, key_id: int) -> dict[str, float]:
        return {}

    def describe(self, name: str, row: int, batch: EventBatch, output: FeatureOutput) -> str:
        km, kmh = float(output.columns[self._km][row]), float(output.columns[self._kmh][row])
        if km == 0.0 and kmh == 0.0:
            return f"the same place as {self.possessive} previous event (or its first)"
        hours = km / kmh if kmh > 0 else 0.0
        return (f"moved {format_number(km)} km in {format_seconds(hours * 3600.0)} ({format_number(kmh)} km/h) "
                f"since {self.possessive} previous event")

    def state_dict(self) -> dict[str, np.ndarray]:
        return {"state": self._state.copy()}

    def load_state_dict(self, state: dict[str, np.ndarray]) -> None:
        self._state = np.array(state["state"], dtype=np.float64).reshape(-1, 3)
