"""The Service: what the HTTP routes call. It owns the Pipeline, the Store, the
queue behind ``POST /v1/events`` with the thread that drains it, and the metrics.

Concurrency: the Pipeline is not thread-safe, so every call into it (sync
scoring from request threads, the queue runner, a streaming runner attached
with :meth:`Service.attach_runner`, checkpoints) holds ``self.lock``. Store
writes happen outside the lock (the store is idempotent on event id and safe
to call from several threads).

Sync scoring writes its anomalies, alerts and dead letters to the Store before
returning, so ``GET /v1/anomalies`` sees them. Sensitive fields are encrypted
in the stored ``fields`` and masked for viewers on the way out.

Until the detector is fitted (``detector.warmup_events`` events seen) events
update feature state and become training rows but are not scored: they come
back with ``status="warming_up"``, ``score=None`` and ``is_anomaly=False``.

"Recent events" of an entity are what this process has seen (a ring of the last
``recent_capacity`` events in memory); stored anomalies outlive restarts.
"""

from __future__ import annotations

import base64
import logging
import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import Any

import numpy as np
from sqlalchemy import func, select

from tocsin.alerting.outbox import alert_documents
from tocsin.alerting.metrics import register_alert_metrics
from tocsin.engine.outputs import OutputWriter
from tocsin.api.auth import Principal, Role
from tocsin.api.crypto import FieldCipher
from tocsin.api.metrics import SEVERITIES, ServiceMetrics
from tocsin.checkpoint.base import CheckpointStore
from tocsin.engine.pipeline import Pipeline, ScoredBatch
from tocsin.spec import PipelineSpec
from tocsin.store.sql import Store
from tocsin.store.tables import alerts as alerts_table
from tocsin.store.tables import anomalies as anomalies_table

log = logging.getLogger("tocsin.api")

CHECKPOINT_PARTITION = "api"
SERIES_SECONDS = 300
RATE_WINDOW_S = 10


class QueueFull(RuntimeError):
    """``POST /v1/events`` would exceed the queue bound; the client should retry later."""


class NotFound(LookupError):
    pass


# --- small holders ---------------------------------------------------------------


class RecentEvents:
    """A ring of the last ``capacity`` decided events (vectorised appends, scan per lookup)."""

    def __init__(self, capacity: int, numeric: list[str], categorical: list[str]) -> None:
        self.capacity = capacity
        self.lock = threading.Lock()
        self.keys = np.empty(capacity, dtype=object)
        self.ids = np.empty(capacity, dtype=object)
        self.times = np.zeros(capacity)
        self.score = np.full(capacity, np.nan)
        self.severity = np.full(capacity, -1, dtype=np.int8)
        self.is_anomaly = np.zeros(capacity, dtype=bool)
        self.values = {name: np.zeros(capacity) for name in numeric}
        self.values.update({name: np.empty(capacity, dtype=object) for name in categorical})
        self.filled = 0
        self.next = 0
        self.order = np.zeros(capacity, dtype=np.int64)
        self.counter = 0

    def add(self, scored: ScoredBatch) -> None:
        events, n = scored.events, len(scored)
        if n == 0:
            return
        start = max(0, n - self.capacity)
        with self.lock:
            rows = np.arange(start, n)
            slots = (self.next + np.arange(len(rows))) % self.capacity
            self.keys[slots] = events.keys[rows]
            self.ids[slots] = events.ids[rows]
            self.times[slots] = events.times[rows]
            self.score[slots] = scored.score[rows]
            self.severity[slots] = scored.severity[rows]
            self.is_anomaly[slots] = scored.is_anomaly[rows]
            for name, column in self.values.items():
                source = events.numeric.get(name)
                if source is None:
                    source = events.categorical.get(name)
                if source is not None:
                    column[slots] = source[rows]
            self.order[slots] = self.counter + np.arange(len(rows))
            self.counter += len(rows)
            self.next = int((self.next + len(rows)) % self.capacity)
            self.filled = min(self.capacity, self.filled + len(rows))

    def of(self, key: str, limit: int) -> list[dict[str, Any]]:
        with self.lock:
            hits = np.flatnonzero(self.keys[: self.filled] == key)
            hits = hits[np.argsort(self.order[hits], kind="stable")][-limit:]
            out = []
            for i in hits.tolist():
                score = float(self.score[i])
                code = int(self.severity[i])
                out.append(
                    {
                        "event_id": str(self.ids[i]),
                        "event_time": float(self.times[i]),
                        "score": None if score != score else score,
                        "score_100": None if score != score else round(score * 100, 2),
                        "is_anomaly": bool(self.is_anomaly[i]),
                        "severity": SEVERITIES[code] if code >= 0 else None,
                        "values": {name: _plain(column[i]) for name, column in self.values.items()},
                    }
                )
            return out


class Activity:
    """Events and anomalies per wall-clock second, for the live overview."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.buckets: deque[list[int]] = deque()  # [second, events, anomalies]
        self.events = 0
        self.scored = 0
        self.anomalies = 0
        self.dead_letters = 0
        self.by_severity = dict.fromkeys(SEVERITIES, 0)

    def add(self, events: int, scored: int, anomalies: int, dead_letters: int, severity_counts: dict[str, int]) -> None:
        now = int(time.time())
        with self.lock:
            self.events += events
            self.scored += scored
            self.anomalies += anomalies
            self.dead_letters += dead_letters
            for name, count in severity_counts.items():
                self.by_severity[name] += count
            if self.buckets and self.buckets[-1][0] == now:
                self.buckets[-1][1] += events
                self.buckets[-1][2] += anomalies
            else:
                self.buckets.append([now, events, anomalies])
            while self.buckets and self.buckets[0][0] < now - SERIES_SECONDS:
                self.buckets.popleft()

    def snapshot(self) -> dict[str, Any]:
        now = int(time.time())
        with self.lock:
            recent = sum(b[1] for b in self.buckets if b[0] > now - RATE_WINDOW_S)
            series = [{"t": float(b[0]), "events": b[1], "anomalies": b[2]} for b in self.buckets]
            return {
                "events": self.events,
                "events_per_s": recent / RATE_WINDOW_S,
                "anomalies": self.anomalies,
                "anomaly_rate": self.anomalies / self.scored if self.scored else 0.0,
                "anomalies_by_severity": dict(self.by_severity),
                "dead_letters": self.dead_letters,
                "series": series,
            }


@dataclass
class _Chunk:
    records: list[dict[str, Any]]
    received: float


def _plain(value: Any) -> Any:
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and value != value:
        return None
    return value


def encode_cursor(row_id: int) -> str:
    return base64.urlsafe_b64encode(f"id:{row_id}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> int:
    """The row id in a cursor; ValueError when it is not one this API issued."""
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        if not text.startswith("id:"):
            raise ValueError
        return int(text[3:])
    except (ValueError, UnicodeDecodeError):
        raise ValueError("not a cursor returned by this API; omit it for the first page") from None


# --- the service -------------------------------------------------------------------


class Service:
    """The engine behind the HTTP API (see the module docstring)."""

    def __init__(
        self,
        spec: PipelineSpec,
        *,
        pipeline: Pipeline | None = None,
        store: Store | None = None,
        sensitive_fields: list[str] | tuple[str, ...] | None = None,
        encryption_key: bytes | None = None,
        checkpoints: CheckpointStore | None = None,
        queue_max_events: int = 200_000,
        recent_capacity: int = 100_000,
    ) -> None:
        self.spec = spec
        self.pipeline = pipeline or Pipeline(spec)
        self.store = store if store is not None else Store(spec.store.url)
        self.outputs = OutputWriter(spec, self.store)
        self._output_lock = threading.Lock()
        self.lock = threading.RLock()
        if sensitive_fields is None:
            sensitive_fields = list(getattr(spec.event_schema, "sensitive", None) or [])
        schema = spec.event_schema
        if schema.key_field in sensitive_fields or schema.id_field in sensitive_fields:
            raise ValueError(
                f"sensitive fields {list(sensitive_fields)}: the key and id fields are used to look events up and "
                "cannot be encrypted; pseudonymise them upstream instead"
            )
        self.cipher = FieldCipher(encryption_key, sensitive_fields)
        self.metrics = ServiceMetrics(spec.name)
        #: whose alert manager the alert gauges read: this service's, or an attached runner's
        self._alert_writer: OutputWriter = self.outputs
        register_alert_metrics(
            self.metrics.registry, spec.name, lambda: self._alert_writer.alerts,
            lambda: self._alert_writer.dispatcher.pending() if self._alert_writer.dispatcher is not None else 0,
        )
        self.recent = RecentEvents(recent_capacity, list(schema.numeric), list(schema.categorical))
        self.activity = Activity()
        self.checkpoints = checkpoints
        self.last_checkpoint: float | None = None
        self.metrics.watch_checkpoint(lambda: self.last_checkpoint)
        self.metrics.watch_queue(lambda: self.queue_depth)
        self._refresh_model_metric()

        self.queue_max_events = queue_max_events
        self._queue: deque[_Chunk] = deque()
        self._queued_events = 0
        self._wakeup = threading.Condition()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._thread_error: BaseException | None = None
        self._dead_position = time.time_ns() // 1_000  # unique dead-letter positions across restarts

    # --- lifecycle ------------------------------------------------------------

    def start(self) -> None:
        """Restore the last checkpoint (if any) and start the queue runner thread."""
        if self._thread is not None:
            return
        self.restore()
        self._stop.clear()
        self._thread = threading.Thread(target=self._run_queue, name="tocsin-api-runner", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Drain what is queued, checkpoint, stop the thread."""
        self._stop.set()
        with self._wakeup:
            self._wakeup.notify_all()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
        self.checkpoint()

    def restore(self) -> bool:
        if self.checkpoints is None:
            return False
        checkpoint = self.checkpoints.load(CHECKPOINT_PARTITION)
        if checkpoint is None:
            return False
        with self.lock, self._output_lock:
            self.pipeline.load_state_dict(checkpoint.state)
            self.outputs.load_state_dict(checkpoint.state)
        self.last_checkpoint = time.monotonic()
        self._refresh_model_metric()
        log.info("restored pipeline state", extra={"events_seen": self.pipeline.events_seen})
        return True

    def checkpoint(self) -> None:
        """Save the pipeline state. The store already holds every output of the events folded into it."""
        if self.checkpoints is None:
            return
        with self.lock, self._output_lock:
            state = self.pipeline.state_dict()
            state.update(self.outputs.state_dict())
            seen = self.pipeline.events_seen
        self.checkpoints.save(CHECKPOINT_PARTITION, state, seen, meta={"pipeline": self.spec.name, "driver": "api"})
        self.last_checkpoint = time.monotonic()

    # --- scoring ----------------------------------------------------------------

    @property
    def is_warm(self) -> bool:
        return self.pipeline.is_warm

    @property
    def model_status(self) -> str:
        return "warm" if self.pipeline.is_warm else "warming_up"

    def score(self, records: list[dict[str, Any]]) -> dict[str, Any]:
        """Score ``records`` now (state updated), store the outputs, and describe every event in request order."""
        received = time.monotonic()
        with self.lock:
            scored = self.pipeline.process_records(records, source="api:score")
            warm_after = self.pipeline.is_warm
            version = self.pipeline.fits
        self._finish(scored, "score", received, len(records), write=True)
        return {
            "pipeline": self.spec.name,
            "model_status": "warm" if warm_after else "warming_up",
            "model_version": version,
            "scored": int(scored.scored.sum()) if scored.scored is not None else 0,
            "dead_letters": len(scored.dead_letters),
            "results": _results(scored, len(records)),
        }

    def process_events(self, events: Any, path: str = "stream") -> ScoredBatch:
        """Score an :class:`EventBatch` (e.g. simulator events) through the same pipeline, storing the outputs."""
        received = time.monotonic()
        with self.lock:
            scored = self.pipeline.process(events)
        self._finish(scored, path, received, len(events), write=True)
        return scored

    def _finish(self, scored: ScoredBatch, path: str, received: float, n_in: int, *, write: bool) -> None:
        """Metrics, the recent-events ring, the live activity and (``write``) the store, for one scored batch."""
        decided_at = time.monotonic()
        m, name = self.metrics, self.spec.name
        n_dead = len(scored.dead_letters)
        m.events_in.labels(name, path).inc(n_in)
        m.events_out.labels(name, path).inc(len(scored))
        if n_dead:
            m.dead_letters.labels(name, path).inc(n_dead)
        m.batch_latency.labels(name, path).observe(scored.seconds)
        if len(scored):
            m.decision_lag.labels(name, path).observe(decided_at - received)
        severity_counts: dict[str, int] = {}
        n_anomalies = int(scored.is_anomaly.sum()) if len(scored) else 0
        if n_anomalies:
            codes, counts = np.unique(scored.severity[scored.is_anomaly], return_counts=True)
            for code, count in zip(codes.tolist(), counts.tolist()):
                severity_counts[SEVERITIES[code]] = count
                m.anomalies.labels(name, SEVERITIES[code]).inc(count)
        n_scored = int(scored.scored.sum()) if scored.scored is not None and len(scored) else 0
        if write and (n_anomalies or n_dead):  # stored before counted: whoever sees the count finds the rows
            self._write(scored, path)
        self.activity.add(len(scored), n_scored, n_anomalies, n_dead, severity_counts)
        self.recent.add(scored)
        self._refresh_model_metric()

    def _write(self, scored: ScoredBatch, path: str) -> None:
        def encrypt(fields: dict[str, Any], event_id: str) -> dict[str, Any]:
            return self.cipher.encrypt_fields(fields, self.spec.name, event_id)

        def dead_rows(letters: list[Any]) -> list[dict[str, Any]]:
            return [{**letter.as_row(), "position": self._next_dead_position()} for letter in letters]

        with self._output_lock:  # the alert manager groups in the order batches are written
            self.outputs.write(scored, transform_fields=encrypt, dead_letter_rows=dead_rows)

    def _next_dead_position(self) -> int:
        with self._wakeup:
            self._dead_position += 1
            return self._dead_position

    def _refresh_model_metric(self) -> None:
        self.metrics.set_model(self.spec.detector.kind, self.pipeline.fits, self.model_status)

    # --- the queue (POST /v1/events) ---------------------------------------------

    @property
    def queue_depth(self) -> int:
        return self._queued_events

    def enqueue(self, records: list[dict[str, Any]]) -> int:
        """Accept events for the runner thread; :class:`QueueFull` past ``queue_max_events``."""
        with self._wakeup:
            if self._queued_events + len(records) > self.queue_max_events:
                raise QueueFull(f"the event queue holds {self._queued_events} of {self.queue_max_events} events; retry later")
            self._queue.append(_Chunk(records, time.monotonic()))
            self._queued_events += len(records)
            self._wakeup.notify()
            return self._queued_events

    def accept(self, records: list[dict[str, Any]]) -> dict[str, Any]:
        """Queue ``records`` (see :meth:`enqueue`) and say which ids were accepted."""
        id_field = self.spec.event_schema.id_field
        depth = self.enqueue(records)
        ids = [None if r.get(id_field) is None else str(r.get(id_field)) for r in records]
        return {"accepted": len(records), "ids": ids, "queue_depth": depth}

    def _take(self, max_events: int, max_wait: float) -> list[_Chunk]:
        with self._wakeup:
            if not self._queue:
                self._wakeup.wait(max_wait)
            chunks, n = [], 0
            while self._queue and (not chunks or n + len(self._queue[0].records) <= max_events):
                chunk = self._queue.popleft()
                chunks.append(chunk)
                n += len(chunk.records)
            self._queued_events -= n
            return chunks

    def _run_queue(self) -> None:
        batch_size, max_wait = self.spec.runner.batch_size, self.spec.runner.max_wait
        interval = self.spec.checkpoint.interval
        last_checkpoint = time.monotonic()
        try:
            while True:
                chunks = self._take(batch_size, max_wait)
                if chunks:
                    records = [r for c in chunks for r in c.records]
                    with self.lock:
                        scored = self.pipeline.process_records(records, source="api:events")
                    self._finish(scored, "events", chunks[0].received, len(records), write=True)
                elif self._stop.is_set():
                    break
                if self.checkpoints is not None and time.monotonic() - last_checkpoint >= interval:
                    self.checkpoint()
                    last_checkpoint = time.monotonic()
        except BaseException as error:  # noqa: BLE001 - reported by /health, then re-raised for the log
            self._thread_error = error
            log.exception("the event queue runner stopped")
            raise

    def runner_alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def wait_idle(self, timeout: float = 10.0) -> bool:
        """Block until the queue is drained (tests, shutdown)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._queued_events == 0 and not self._queue:
                # the last chunk may still be in the pipeline: taking the lock waits for it
                with self.lock:
                    return True
            time.sleep(0.01)
        return False

    # --- a streaming runner sharing this service (tocsin demo + API) -------------

    def attach_runner(self, runner: Any) -> None:
        """Let an engine ``Runner`` drive this service's pipeline: its batches go through the lock and
        feed the metrics and the live views; the runner keeps writing its own outputs to the store."""
        if runner.pipeline is not self.pipeline:
            raise ValueError("build the Service with pipeline=runner.pipeline (and store=runner.store) first")
        runner.pipeline = _LockedPipeline(self)
        self._alert_writer = runner.outputs

    # --- reads ---------------------------------------------------------------------

    def present_anomaly(self, row: dict[str, Any], principal: Principal) -> dict[str, Any]:
        fields = row.get("fields") or {}
        if principal.can(Role.analyst):
            fields = self.cipher.decrypt_fields(fields, self.spec.name, row["event_id"])
        else:
            fields = self.cipher.mask_fields(fields)
        return {**row, "fields": fields}

    def anomalies(self, principal: Principal, *, cursor: str | None, limit: int, **filters: Any) -> dict[str, Any]:
        after_id = decode_cursor(cursor) if cursor else None
        rows = self.store.anomalies(pipeline=self.spec.name, limit=limit + 1, after_id=after_id, **filters)
        return _page([self.present_anomaly(r, principal) for r in rows], limit)

    def alerts(self, *, cursor: str | None, limit: int, **filters: Any) -> dict[str, Any]:
        after_id = decode_cursor(cursor) if cursor else None
        rows = self.store.alerts(pipeline=self.spec.name, limit=limit + 1, after_id=after_id, **filters)
        page = _page(rows, limit)
        # pattern, window, budget cut-off and per-channel delivery status live beside the alert row
        documents = {d["id"]: d for d in alert_documents(self.store, self.spec.name, alert_ids=[r["id"] for r in page["items"]])}
        page["items"] = [documents.get(row["id"], row) for row in page["items"]]
        return page

    def alert(self, alert_id: int) -> dict[str, Any]:
        documents = alert_documents(self.store, self.spec.name, alert_ids=[int(alert_id)])
        if not documents:
            raise NotFound(f"no alert {alert_id}")
        return documents[0]

    def set_alert_status(self, alert_id: int, status: str) -> dict[str, Any]:
        if not self.store.set_alert_status(self.spec.name, alert_id, status):
            raise NotFound(f"no alert {alert_id}")
        log.info("alert status changed", extra={"alert_id": alert_id, "status": status})
        return self.alert(alert_id)

    def feedback(self, event_id: str, label: str, note: str | None, principal: Principal) -> dict[str, Any]:
        t = anomalies_table
        found = self.store.fetch(select(t.c.id).where(t.c.pipeline == self.spec.name, t.c.event_id == event_id))
        if not found:
            raise NotFound(f"no anomaly with event id {event_id!r}")
        self.store.write_feedback(self.spec.name, [{"event_id": event_id, "label": label, "note": note}])
        log.info("feedback recorded", extra={"event_id": event_id, "label": label, "by": principal.subject})
        return {"event_id": event_id, "label": label, "note": note}

    def entity(self, key: str, principal: Principal, limit: int = 200) -> dict[str, Any]:
        with self.lock:
            state = self.pipeline.features.entity_state(key)
        recent = self.recent.of(key, limit)
        anomalies = [self.present_anomaly(r, principal) for r in self.store.anomalies(pipeline=self.spec.name, entity=key, limit=50)]
        if not state and not recent and not anomalies:
            raise NotFound(f"no entity {key!r} has been seen")
        if not principal.can(Role.analyst) and self.cipher.sensitive:
            for event in recent:
                event["values"] = self.cipher.mask_fields(event["values"])
        return {"key": key, "state": {k: float(v) for k, v in state.items()}, "recent_events": recent, "anomalies": anomalies}

    def pipeline_info(self) -> dict[str, Any]:
        spec = self.spec
        return {
            "name": spec.name,
            "detector": spec.detector.kind,
            "model_status": self.model_status,
            "model_version": self.pipeline.fits,
            "events_seen": self.pipeline.events_seen,
            "warmup_events": spec.detector.warmup_events,
            "features": list(self.pipeline.feature_names),
            "event_schema": spec.event_schema.model_dump(mode="json"),
            "threshold": spec.threshold.model_dump(mode="json"),
            "severity": spec.severity.model_dump(mode="json"),
            "sensitive_fields": list(self.cipher.sensitive),
        }

    def model_info(self) -> dict[str, Any]:
        return {
            "detector": self.spec.detector.kind,
            "status": self.model_status,
            "version": self.pipeline.fits,
            "training_rows": len(self.pipeline.training),
            "params": dict(self.spec.detector.params),
            "features": list(self.pipeline.feature_names),
        }

    def stats(self) -> dict[str, Any]:
        snapshot = self.activity.snapshot()
        by_severity = dict.fromkeys(("warning", "critical"), 0)
        by_status = dict.fromkeys(("open", "acknowledged", "resolved"), 0)
        t = alerts_table
        rows = self.store.fetch(
            select(t.c.severity, t.c.status, func.count().label("n")).where(t.c.pipeline == self.spec.name).group_by(t.c.severity, t.c.status)
        )
        for row in rows:
            by_severity[row["severity"]] = by_severity.get(row["severity"], 0) + row["n"]
            by_status[row["status"]] = by_status.get(row["status"], 0) + row["n"]
        return {
            "pipeline": self.spec.name,
            **snapshot,
            "alerts_by_severity": by_severity,
            "alerts_by_status": by_status,
            "queue_depth": self.queue_depth,
            "model_status": self.model_status,
        }

    def health(self) -> dict[str, Any]:
        store_ok = self.store.ping()
        components = {
            "store": {"status": "ok" if store_ok else "down", "detail": repr(self.store)},
            "broker": (
                {"status": "ok", "detail": f"in-process queue, {self.queue_depth} events waiting"}
                if self._thread is None or self._thread.is_alive()
                else {"status": "down", "detail": f"the queue runner stopped: {self._thread_error!r}"}
            ),
            "cache": {"status": "not_configured", "detail": "no cache: per-entity state lives in the pipeline"},
            "model": (
                {"status": "ok", "detail": f"{self.spec.detector.kind} version {self.pipeline.fits}"}
                if self.pipeline.is_warm
                else {
                    "status": "warming_up",
                    "detail": f"{self.pipeline.events_seen} of {self.spec.detector.warmup_events} warm-up events seen",
                }
            ),
        }
        degraded = any(c["status"] == "down" for c in components.values())
        return {"status": "degraded" if degraded else "ok", "components": components}


class _LockedPipeline:
    """What an attached Runner sees as its pipeline: the service's, behind the lock, reporting to the service."""

    def __init__(self, service: Service) -> None:
        self._service = service

    def process_raw(self, raw: Any, source: str) -> ScoredBatch:
        received = time.monotonic()
        with self._service.lock:
            scored = self._service.pipeline.process_raw(raw, source)
        self._service._finish(scored, "stream", received, len(raw), write=False)
        return scored

    def state_dict(self) -> dict[str, np.ndarray]:
        with self._service.lock:
            return self._service.pipeline.state_dict()

    def load_state_dict(self, state: dict[str, np.ndarray]) -> None:
        with self._service.lock:
            self._service.pipeline.load_state_dict(state)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._service.pipeline, name)


def _page(rows: list[dict[str, Any]], limit: int) -> dict[str, Any]:
    more = len(rows) > limit
    rows = rows[:limit]
    return {"items": rows, "next_cursor": encode_cursor(rows[-1]["id"]) if more and rows else None}


def _results(scored: ScoredBatch, n: int) -> list[dict[str, Any]]:
    """One result per request event, in request order: valid events interleaved with dead letters."""
    dead = {d.position: d.reason for d in scored.dead_letters}
    events = scored.events
    ids, keys = events.ids.tolist(), events.keys.tolist()
    score, score_100 = scored.score.tolist(), scored.score_100.tolist()
    flags, codes = scored.is_anomaly.tolist(), scored.severity.tolist()
    was_scored = scored.scored.tolist() if scored.scored is not None else [False] * len(ids)
    out: list[dict[str, Any]] = []
    row = 0
    for index in range(n):
        reason = dead.get(index)
        if reason is not None:
            out.append({"index": index, "status": "dead_letter", "is_anomaly": False, "reason": reason,
                        "id": None, "entity": None, "score": None, "score_100": None, "severity": None, "explanation": []})
            continue
        if was_scored[row]:
            out.append({
                "index": index, "id": ids[row], "entity": keys[row], "status": "scored", "score": score[row],
                "score_100": score_100[row], "is_anomaly": flags[row],
                "severity": SEVERITIES[codes[row]] if codes[row] >= 0 else None,
                "explanation": scored.explanations.get(row, []), "reason": None,
            })
        else:
            out.append({"index": index, "id": ids[row], "entity": keys[row], "status": "warming_up", "score": None,
                        "score_100": None, "is_anomaly": False, "severity": None, "explanation": [], "reason": None})
        row += 1
    return out
