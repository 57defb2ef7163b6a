"""Hot reload: which model versions the registry's aliases name, fetched in the background for the core.

A :class:`ModelFollower` asks the registry every ``registry.poll_interval`` which
versions ``champion`` and ``challenger`` name, and downloads a new one's arrays in
its own thread (a download never stalls scoring). The driver core then installs
the champion into every stream at its next batch boundary and saves a
checkpoint right away, so the switch — the version and the stream position it
took over after — is part of the state a crash resumes from
(:meth:`tocsin.engine.core.DriverCore.follow_models`). The challenger is only
held, for shadow scoring.

A registry that cannot be reached is reported (health ``registry``) and asked
again at the next poll; the running model keeps scoring meanwhile.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from tocsin.registry import CHALLENGER, CHAMPION, Registry

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class FetchedModel:
    """A version and its arrays, ready to install."""

    version: int
    arrays: dict[str, np.ndarray]


class ModelFollower:
    """Keeps the arrays of the versions ``champion`` and ``challenger`` name, fetched in the background."""

    def __init__(self, registry: Registry, pipeline: str, poll_interval: float,
                 on_health: Callable[[str, BaseException | None], None] | None = None) -> None:
        self.registry = registry
        self.pipeline = pipeline
        self.poll_interval = poll_interval
        self.on_health = on_health or (lambda _component, _error: None)
        self._models: dict[str, FetchedModel | None] = {CHAMPION: None, CHALLENGER: None}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        #: the version the registry's champion alias named at the last poll
        self.registry_champion: int | None = None
        self._thread: threading.Thread | None = None
        #: versions refused by a stream (trained for another spec) and why: not fetched again
        self.refused: dict[int, str] = {}

    def start(self) -> ModelFollower:
        self.poll()  # the first answer before the first batch: a driver starts with the champion
        self._thread = threading.Thread(target=self._run, name="tocsin-model-follower", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)
            self._thread = None

    def refuse(self, version: int, error: BaseException) -> None:
        """A stream could not install ``version``: it is not fetched again, and while the champion names it
        the registry is reported down with the reason (the running model keeps scoring)."""
        self.refused[version] = str(error)
        self.on_health("registry", error)

    def model(self, alias: str) -> FetchedModel | None:
        """The latest fetched version ``alias`` names (None: none named, or not fetched yet)."""
        with self._lock:
            return self._models[alias]

    def poll(self) -> None:
        """Ask the registry once; fetch what changed."""
        try:
            for alias in (CHAMPION, CHALLENGER):
                version = self.registry.alias(self.pipeline, alias)
                if alias == CHAMPION:
                    self.registry_champion = version
                current = self.model(alias)
                if version is None:
                    with self._lock:
                        self._models[alias] = None
                elif version not in self.refused and (current is None or current.version != version):
                    arrays = self.registry.arrays(self.pipeline, version)
                    with self._lock:
                        self._models[alias] = FetchedModel(version, arrays)
                    log.warning("model version %d is the %s of %s", version, alias, self.pipeline)
        except Exception as error:  # noqa: BLE001 - an unreachable registry leaves the running model scoring
            self.on_health("registry", error)
            return
        champion = self.registry_champion
        refusal = self.refused.get(champion) if champion is not None else None
        self.on_health("registry", RuntimeError(f"champion version {champion} refused: {refusal}") if refusal else None)

    def _run(self) -> None:
        while not self._stop.wait(self.poll_interval):
            self.poll()
