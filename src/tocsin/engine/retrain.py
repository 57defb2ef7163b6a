"""The drift policy: a model-drift alert starts training a new version on recent data, named challenger.

With ``drift.retrain: true``, the first model-drift alert a stream raises under a
champion from the registry snapshots that stream's latest ``detector.train_window``
feature rows (what the pipeline would refit on now, computed by the same features
as live) and, in a background thread, fits the spec's detector and calibration on
them, registers the result as a version (``created_by`` ``tocsin:drift``, the note
naming the champion and the feature that moved) and points ``challenger`` at it.
It then scores in shadow beside the champion (:mod:`tocsin.engine.shadow`) until a
person promotes it: retraining never replaces the live model by itself, because
drift is also what an attack or a broken upstream looks like.

**Good at**: having a candidate ready, measured on the same events, by the time
someone looks at the drift alert.

**Fails at**: drift that *is* the anomaly (the new version learns it as normal:
that is why it is only a challenger). One retrain per champion and process, so
a second shift under the same champion waits for a promotion or a restart.
Several workers of a group may each train one; the note lets the later ones see
that the challenger is already a retrain of this champion and skip.

**Cost**: one detector fit on ``train_window`` rows in a thread (about a second
for 50,000 rows and the default forest); the hot path only copies the rows.
"""

from __future__ import annotations

import logging
import threading
import time

import numpy as np

from tocsin import __version__
from tocsin.engine.pipeline import Pipeline, ScoredBatch
from tocsin.registry import CHALLENGER, ModelVersion, Registry, model_sections, spec_hash
from tocsin.spec import PipelineSpec

log = logging.getLogger(__name__)

#: who registers the versions this policy trains
RETRAINER = "tocsin:drift"


def retrain_note(champion: int) -> str:
    """The note that marks a version as this policy's retrain of ``champion`` (workers skip a second one)."""
    return f"retrained on drift under champion v{champion}"


class DriftRetrainer:
    """Trains one challenger per champion when that champion's inputs drift."""

    def __init__(self, spec: PipelineSpec, registry: Registry) -> None:
        self.spec = spec
        self.registry = registry
        self._done_for: set[int] = set()
        self._thread: threading.Thread | None = None
        #: the versions this process registered, oldest first
        self.registered: list[int] = []
        #: the last training error (None when the last one worked)
        self.error: BaseException | None = None

    @property
    def busy(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def observe(self, pipeline: Pipeline, scored: ScoredBatch) -> bool:
        """After a processed batch: start a retrain when it raised drift under a champion not retrained yet.
        True when one started."""
        champion = pipeline.model_version
        if not scored.drift or not champion or champion in self._done_for or self.busy:
            return False
        if len(pipeline.training) < self.spec.detector.warmup_events:
            return False
        self._done_for.add(champion)
        rows = pipeline.training.rows()  # a copy: the stream goes on
        threshold = pipeline.threshold.state_dict()
        times = scored.events.times
        until = float(np.nanmax(times)) if len(times) else None
        moved = ", ".join(sorted({f"{column} (PSI {psi:.2f})" for _, column, psi in scored.drift}))
        self._thread = threading.Thread(target=self._train, args=(champion, rows, threshold, until, moved),
                                        name="tocsin-drift-retrain", daemon=True)
        self._thread.start()
        return True

    def join(self, timeout: float | None = None) -> None:
        if self._thread is not None:
            self._thread.join(timeout)

    def _train(self, champion: int, rows: np.ndarray, threshold: dict[str, np.ndarray], until: float | None, moved: str) -> None:
        note = retrain_note(champion)
        try:
            current = self.registry.alias(self.spec.name, CHALLENGER)
            if current is not None and self.registry.get(self.spec.name, current).note.startswith(note):
                log.info("challenger v%d is already a retrain of champion v%d", current, champion)
                return
            fresh = Pipeline(self.spec)
            fresh.threshold.load_state_dict(threshold)
            fresh.fit(rows)
            fresh.frozen = True
            version = ModelVersion(
                pipeline=self.spec.name, spec_hash=spec_hash(self.spec), feature_names=list(fresh.feature_names),
                detector=self.spec.detector.kind, sections=model_sections(self.spec), trained_from=None, trained_until=until,
                rows=len(rows), metrics={}, tocsin_version=__version__, created_by=RETRAINER, created_at=time.time(),
                note=f"{note}: {moved} moved",
            )
            stored = self.registry.register(version, fresh.model_arrays())
            self.registry.promote(self.spec.name, stored.version, CHALLENGER, by=RETRAINER)
            self.registered.append(stored.version)
            self.error = None
            log.warning("drift under champion v%d: trained v%d on the latest %d rows and named it challenger", champion, stored.version, len(rows))
        except Exception as error:  # noqa: BLE001 - a failed retrain leaves the champion scoring; reported, not raised
            self.error = error
            log.error("drift retrain under champion v%d failed: %s", champion, error)
