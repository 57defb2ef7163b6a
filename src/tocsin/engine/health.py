"""A driver's health: ``ok`` or ``degraded`` with the component that is down, and since when.

The driver core marks a component down when a write to it fails (and up when a
retry succeeds), so health says *which* dependency a stalled worker waits for.
Processes without the HTTP API write it to a JSON file (atomically) that
orchestrators and tests read; the API serves its own ``/health``.
"""

from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)


@dataclass
class ComponentHealth:
    ok: bool = True
    error: str | None = None
    since: float | None = None
    failures: int = 0


class Health:
    """The worker's health: ``ok`` or ``degraded`` with the component that is down."""

    COMPONENTS = ("kafka", "store", "checkpoint", "cache", "registry")

    def __init__(self, path: Path | None = None, worker: str = "") -> None:
        self.path = path
        self.worker = worker
        self.components = {name: ComponentHealth() for name in self.COMPONENTS}
        self.paused = False
        self.partitions: list[int] = []
        self.events = 0
        self._written = 0.0

    def down(self, component: str, error: BaseException | str) -> None:
        state = self.components[component]
        first_line = (str(error).splitlines() or [""])[0][:500]  # a database error goes on with its SQL: never log that
        if state.ok:
            log.warning("%s is down: %s; retrying", component, first_line)
            state.ok, state.since = False, time.time()
        state.error, state.failures = first_line, state.failures + 1
        self.write(force=True)

    def up(self, component: str) -> None:
        state = self.components[component]
        if not state.ok:
            log.warning("%s is back after %.1f s", component, time.time() - (state.since or time.time()))
            self.components[component] = ComponentHealth()
            self.write(force=True)

    @property
    def status(self) -> str:
        return "ok" if all(c.ok for c in self.components.values()) else "degraded"

    def as_dict(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "worker": self.worker,
            "pid": os.getpid(),
            "paused": self.paused,
            "degraded": [name for name, c in self.components.items() if not c.ok],
            "components": {name: {"ok": c.ok, "error": c.error, "since": c.since, "failures": c.failures}
                           for name, c in self.components.items()},
            "partitions": list(self.partitions),
            "events": self.events,
            "updated_at": time.time(),
        }

    def write(self, force: bool = False) -> None:
        """Write the health JSON atomically (at most twice a second unless forced)."""
        if self.path is None or (not force and time.monotonic() - self._written < 0.5):
            return
        self._written = time.monotonic()
        tmp = self.path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(self.as_dict()))
        os.replace(tmp, self.path)
