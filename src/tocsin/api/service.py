"""The Service: what the HTTP routes call — a journal of accepted requests folded in through the driver core.

Every request that gives the service events (``POST /v1/events``, ``POST
/v1/score``) becomes one entry of its journal before it is answered, and entries
are folded into the pipeline in journal order through the driver core
(:mod:`tocsin.api.inbox`). The journal is this driver's source and an entry's
seq its position: every output of an entry (anomalies, alerts, dead letters,
scored events when the spec keeps them) is stored before the position passes
it, a checkpoint saves (state, last seq) only between entries, and entries are
dropped from the journal only once a checkpoint holds them. After a crash the
service loads its checkpoint and replays the journal after it: every event
answered 202 is stored once, with the score an uninterrupted run gives.

Until the detector is fitted (``detector.warmup_events`` events seen) events
update feature state and become training rows but are not scored: they come
back with ``status="warming_up"``, ``score=None`` and ``is_anomaly=False``.

Sensitive fields are encrypted in the stored ``fields`` and masked for viewers on
the way out. Without a checkpoint store the journal lives in memory (nothing
survives a restart, as nothing else does). A service *attached* to a running
runner (``tocsin demo``) serves reads over the runner's stream and accepts no
events (409): they would not be part of the runner's source.
"""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

from tocsin.alerting.metrics import register_alert_metrics
from tocsin.alerting.mutes import DAY, add_mute, lift_mute, mute_rows, mutes_for_alerts
from tocsin.alerting.patterns import families
from tocsin.alerting.outbox import alert_documents
from tocsin.api.auth import Principal, Role
from tocsin.sensitive import FieldCipher, sealer_for
from tocsin.api.inbox import RECORD_BITS, Inbox, MemoryJournal, Unavailable
from tocsin.api.live import Activity, RecentEvents, metric_series, series_metrics
from tocsin.api.metrics import ServiceMetrics
from tocsin.api.pagination import decode_cursor, page
from tocsin.checkpoint.base import CheckpointStore
from tocsin.engine.core import DriverCore, Stream
from tocsin.engine.pipeline import Pipeline, ScoredBatch
from tocsin.features.featureset import ENTITY
from tocsin.features.series import SeriesModel
from tocsin.engine.stats import RunStats
from tocsin.sources.journal import Journal
from tocsin.spec import PipelineSpec
from tocsin.spec.quality import READING_METRIC, READING_VALUE
from tocsin.store.sql import Store, StoreUnavailable
from tocsin.vocabulary import SEVERITIES, Words

log = logging.getLogger("tocsin.api")

#: the stream (and checkpoint partition) of the service's journal
CHECKPOINT_PARTITION = "api"
#: seconds a failed store write is retried before the request is told 503 (the retries go on)
WRITE_PATIENCE = 2.0


class NotAccepting(RuntimeError):
    """This service cannot take these events here: it shares a runner's stream (``tocsin demo``), or it aggregates
    events into buckets and has no per-event score (``POST /v1/score`` on a spec with ``aggregate``)."""


class NotFound(LookupError):
    pass


def journal_path(checkpoint_dir: Path | str, pipeline: str) -> Path:
    """Where ``tocsin serve`` keeps a pipeline's journal: beside its local checkpoints."""
    return Path(checkpoint_dir) / pipeline / "api-journal.sqlite"


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
        journal: Journal | MemoryJournal | None = None,
        queue_max_events: int = 200_000,
        recent_capacity: int = 100_000,
        attach_to: Any = None,
    ) -> None:
        self.spec = spec
        if sensitive_fields is None:
            sensitive_fields = list(spec.event_schema.sensitive or [])
        schema = spec.event_schema
        if schema.key_field in sensitive_fields or (schema.id_field is not None and schema.id_field in sensitive_fields):
            raise ValueError(
                f"sensitive fields {list(sensitive_fields)}: the key and id fields are used to look events up and "
                "cannot be encrypted; pseudonymise them upstream instead"
            )
        #: seals sensitive values (and what is derived from them) at rest; opens or masks them per reader
        self.sealer = sealer_for(spec, encryption_key, sensitive_fields)
        self.cipher = self.sealer.cipher if self.sealer is not None else FieldCipher(None, ())
        #: the metrics a series feature models per entity (their charts get the usual band)
        self.series_metrics = series_metrics(spec)
        numeric, categorical = list(schema.numeric), list(schema.categorical)
        if spec.aggregate is not None:  # the pipeline's events are the readings: one field per metric
            numeric, categorical = [metric.name for metric in spec.aggregate.metrics], []
        elif spec.quality is not None:  # the readings of a profiled source: one measure each, named by `metric`
            numeric, categorical = [READING_VALUE], [READING_METRIC]
        self.recent = RecentEvents(recent_capacity, numeric, categorical, self.series_metrics)
        self.activity = Activity()
        #: the runner whose stream this service reads (tocsin demo), or None
        self.attached = attach_to
        if attach_to is not None:
            self.core: DriverCore = attach_to.core
            self.metrics = self.core.metrics
        else:
            self.metrics = ServiceMetrics(spec.name)
            self.core = DriverCore(spec, driver="api", store=store, checkpoints=checkpoints, metrics=self.metrics,
                                   retry=self._retry, commit=self._commit, sealer=self.sealer)
            self.metrics.watch_queue(lambda: self.queue_depth)
        self._stream: Stream | None = None
        self.core.listeners.append(self._observe)
        self._pipeline = pipeline
        self.journal = journal if journal is not None else MemoryJournal()
        self.inbox = Inbox(self.core, lambda: self.stream, self.journal, batch_size=spec.runner.batch_size,
                           max_wait=spec.runner.max_wait, max_events=queue_max_events, every_pass=self._checkpoint_when_due,
                           unavailable=self._unavailable, backoff=(spec.stream.retry_initial, spec.stream.retry_max))
        register_alert_metrics(
            self.metrics.registry, spec.name, lambda: self.stream.alerts.alerts,
            lambda: self.core.dispatcher.pending() if self.core.dispatcher is not None else 0,
        )
        self._started = False
        self._last_checkpoint = time.monotonic()

    # --- what the routes and tests read ---------------------------------------------------

    @property
    def stream(self) -> Stream:
        """The journal's stream (opened fresh until :meth:`start` restores it from its checkpoint), or
        the attached runner's."""
        if self.attached is not None:
            return self.attached.stream
        if self._stream is None:
            self._stream = self.core.open_stream(CHECKPOINT_PARTITION, CHECKPOINT_PARTITION, pipeline=self._pipeline, resume=False)
        return self._stream

    @property
    def pipeline(self) -> Pipeline:
        return self.stream.pipeline

    @property
    def store(self) -> Store:
        return self.core.store

    @property
    def lock(self) -> threading.RLock:
        """Held while events are folded in or state is read consistently."""
        return self.core.lock

    @property
    def is_warm(self) -> bool:
        return self.pipeline.is_warm

    @property
    def model_status(self) -> str:
        return "warm" if self.pipeline.is_warm else "warming_up"

    # --- lifecycle ------------------------------------------------------------------------

    def start(self) -> None:
        """Restore the last checkpoint, replay the journal after it, and start the queue thread."""
        if self._started or self.attached is not None:
            return
        self.restore()
        self.inbox.start()
        self._started = True

    def stop(self, timeout: float = 10.0) -> None:
        """Fold in what is queued, checkpoint, stop the thread."""
        if self.attached is not None:
            return
        self.inbox.stop(timeout)
        self.checkpoint()
        followed = self.core.follower.registry if self.core.follower is not None else None
        self.core.close()
        self.journal.close()
        registry = getattr(self, "_registry", None)
        if registry is not None and registry is not followed:  # the core closes the one it follows
            registry.close()

    def restore(self) -> bool:
        """Open the journal's stream from its checkpoint (if any) and queue the entries after it."""
        if self._stream is not None and self._stream.position >= 0:
            return False  # already folding events in
        pipeline = self._stream.pipeline if self._stream is not None else self._pipeline
        self._stream = self.core.open_stream(CHECKPOINT_PARTITION, CHECKPOINT_PARTITION, pipeline=pipeline, resume=True)
        position = max(self._stream.position, 0)
        replayed = self.inbox.replay_after(position)
        if self._stream.resumed_at is not None or replayed:
            log.warning("api: resuming after journal entry %d; %d entr%s (%d events) to replay", position, len(replayed),
                        "y" if len(replayed) == 1 else "ies", sum(len(e.records) for e in replayed))
        return self._stream.resumed_at is not None

    def checkpoint(self) -> None:
        """Save (state, last seq folded in) between entries; then the journal drops what it holds."""
        if self.attached is None:
            self.core.checkpoint([self.stream])
        self._last_checkpoint = time.monotonic()

    def _checkpoint_when_due(self) -> None:
        if time.monotonic() - self._last_checkpoint >= self.spec.checkpoint.interval and not self.core.unacknowledged:
            self.checkpoint()

    def _retry(self, component: str, action: Any) -> Any:
        """A failed write is tried again with back-off for up to ``WRITE_PATIENCE`` seconds (a request
        waits that long at most), then :class:`Unavailable`: the outputs stay with the sinks and the
        queue thread goes on trying; meanwhile nothing new is accepted."""
        health = self.core.health
        delay, deadline = self.spec.stream.retry_initial, time.monotonic() + WRITE_PATIENCE
        while True:
            try:
                result = action()
            except Exception as error:  # noqa: BLE001 - any failure of a write means "not now"
                health.down(component, error)
                if time.monotonic() + delay > deadline:
                    raise Unavailable(f"{component} unavailable: {_first_line(error)}") from error
                time.sleep(delay)
                delay = min(delay * 2, self.spec.stream.retry_max)
                continue
            health.up(component)
            return result

    def _unavailable(self) -> str | None:
        """Why no event can be accepted now, or None."""
        down = [f"{name}: {c.error}" for name, c in self.core.health.components.items() if not c.ok]
        if down:
            return "the service cannot store outputs (" + "; ".join(down) + "); retry later"
        if self.core.unacknowledged:
            return "earlier outputs are still waiting to be stored; retry later"
        return None

    def _commit(self, streams: list[Stream]) -> None:
        for stream in streams:
            self.journal.truncate(stream.checkpointed)

    # --- accepting events -----------------------------------------------------------------

    @property
    def queue_depth(self) -> int:
        return self.inbox.depth

    def _refuse_if_attached(self) -> None:
        if self.attached is not None:
            raise NotAccepting("this API shares a running pipeline's stream (tocsin demo); send events to its source")

    def accept(self, records: list[dict[str, Any]]) -> dict[str, Any]:
        """Journal ``records`` for the queue thread (:class:`QueueFull` past ``queue_max_events``) and
        say which ids were accepted, and as which journal entry."""
        self._refuse_if_attached()
        entry = self.inbox.append(records, "events")
        id_field = self.spec.event_schema.id_field
        ids = [None if id_field is None or r.get(id_field) is None else str(r.get(id_field)) for r in records]
        return {"accepted": len(records), "ids": ids, "queue_depth": self.inbox.depth, "position": entry.seq}

    def score(self, records: list[dict[str, Any]]) -> dict[str, Any]:
        """Journal ``records``, fold in everything queued before them and then them, store the outputs,
        and describe every event in request order."""
        self._refuse_if_attached()
        aggregate = self.spec.aggregate
        if aggregate is not None:  # refused before anything is journaled
            raise NotAccepting(
                f"pipeline {self.spec.name!r} aggregates events into {aggregate.every:g}-second buckets per "
                f"{aggregate.by or self.spec.event_schema.key_field} (spec aggregate): an event has no score of its own, and "
                "a bucket is scored when it closes; send events to POST /v1/events and read anomalies at GET /v1/anomalies")
        if self.spec.quality is not None:
            raise NotAccepting(
                f"pipeline {self.spec.name!r} profiles rows per {self.spec.event_schema.key_field} and "
                f"{self.spec.quality.every:g}-second bucket (spec quality): a row has no score of its own, and a bucket's "
                "readings are scored when it closes; send rows to POST /v1/events and read anomalies at GET /v1/anomalies")
        entry = self.inbox.append(records, "score")
        scored = self.inbox.fold_until(entry)
        pipeline = self.pipeline
        return {
            "pipeline": self.spec.name,
            "model_status": self.model_status,
            "model_version": pipeline.fits,
            "scored": int(scored.scored.sum()) if scored.scored is not None else 0,
            "dead_letters": len(scored.dead_letters),
            "results": _results(scored, entry.seq, len(records)),
            "position": entry.seq,
        }

    def wait_idle(self, timeout: float = 10.0) -> bool:
        """Block until the queue is drained (tests, shutdown)."""
        return self.inbox.wait_idle(timeout)

    def _observe(self, scored: ScoredBatch, _stats: RunStats) -> None:
        """Every batch the core folded in (this service's, or an attached runner's): the live views."""
        anomalies = int(scored.is_anomaly.sum()) if len(scored) else 0
        n_scored = int(scored.scored.sum()) if scored.scored is not None and len(scored) else 0
        severity_counts: dict[str, int] = {}
        if anomalies:
            codes, counts = np.unique(scored.severity[scored.is_anomaly], return_counts=True)
            severity_counts = {SEVERITIES[c]: n for c, n in zip(codes.tolist(), counts.tolist())}
        self.activity.add(len(scored), n_scored, anomalies, len(scored.dead_letters), severity_counts)
        self.recent.add(scored)

    # --- reads ------------------------------------------------------------------------------

    def present_anomaly(self, row: dict[str, Any], principal: Principal) -> dict[str, Any]:
        """An anomaly as ``principal`` may see it: sensitive fields and what was derived from them
        (explanations) unsealed for analysts and admins, masked for viewers."""
        return self._present(row, "fields", row["event_id"], principal)

    def present_alert(self, document: dict[str, Any], principal: Principal) -> dict[str, Any]:
        """An alert as ``principal`` may see it (its attributes are the fields of the event that opened it)."""
        return self._present(document, "attributes", document.get("first_event_id", ""), principal)

    def _present(self, row: dict[str, Any], fields_key: str, event_id: str, principal: Principal) -> dict[str, Any]:
        if self.sealer is None:
            return row
        fields, explanation = row.get(fields_key) or {}, row.get("explanation") or []
        if principal.can(Role.analyst):
            fields = self.cipher.decrypt_fields(fields, self.spec.name, event_id)
            explanation = self.sealer.reveal_explanation(explanation, event_id)
        else:
            fields = self.cipher.mask_fields(fields)
            explanation = self.sealer.mask_explanation(explanation)
        return {**row, fields_key: fields, "explanation": explanation}

    def anomalies(self, principal: Principal, *, cursor: str | None, limit: int, **filters: Any) -> dict[str, Any]:
        after_id = decode_cursor(cursor) if cursor else None
        rows = self.store.anomalies(pipeline=self.spec.name, limit=limit + 1, after_id=after_id, **filters)
        return page([self.present_anomaly(r, principal) for r in rows], limit)

    def alerts(self, principal: Principal, *, cursor: str | None, limit: int, **filters: Any) -> dict[str, Any]:
        after_id = decode_cursor(cursor) if cursor else None
        rows = self.store.alerts(pipeline=self.spec.name, limit=limit + 1, after_id=after_id, **filters)
        result = page(rows, limit)
        # pattern, window, budget cut-off and per-channel delivery status live beside the alert row
        documents = {d["id"]: d for d in alert_documents(self.store, self.spec.name, alert_ids=[r["id"] for r in result["items"]])}
        mutes = mutes_for_alerts(self.store, self.spec.name, list(documents))
        for alert_id, document in documents.items():
            document["mutes"] = mutes.get(alert_id, [])
        result["items"] = [self.present_alert(documents.get(row["id"], row), principal) for row in result["items"]]
        return result

    def alert(self, alert_id: int, principal: Principal) -> dict[str, Any]:
        documents = alert_documents(self.store, self.spec.name, alert_ids=[int(alert_id)])
        if not documents:
            raise NotFound(f"no alert {alert_id}")
        documents[0]["mutes"] = mutes_for_alerts(self.store, self.spec.name, [int(alert_id)]).get(int(alert_id), [])
        documents[0]["verdicts"] = self._verdicts(int(alert_id))
        return self.present_alert(documents[0], principal)

    def _verdicts(self, alert_id: int) -> list[dict[str, Any]]:
        """The verdicts given on an alert, newest first: one per call, with how many anomalies it labelled."""
        calls: dict[tuple, dict[str, Any]] = {}
        for row in self.store.feedback(self.spec.name, alert_id=alert_id, limit=10_000):
            key = (row["created_at"], row["author"], row["label"])
            call = calls.setdefault(key, {"label": row["label"], "author": row["author"], "note": row["note"],
                                          "created_at": row["created_at"], "anomalies": 0})
            call["anomalies"] += 1
        return list(calls.values())

    def set_alert_status(self, alert_id: int, status: str, principal: Principal) -> dict[str, Any]:
        """Move an alert to ``status``, recording who (the principal's subject) and when in the store."""
        by = principal.subject if principal is not None else None
        if not self.store.set_alert_status(self.spec.name, alert_id, status, by=by):
            raise NotFound(f"no alert {alert_id}")
        log.info("alert status changed", extra={"alert_id": alert_id, "status": status, "by": by})
        return self.alert(alert_id, principal)

    def feedback(self, body: Any, principal: Principal) -> dict[str, Any]:
        """A verdict on one anomaly or on one alert (every anomaly it grouped gets the label); a
        false-positive verdict with a ``mute`` also records the mute, resolves the alert it was given on,
        and is in force for this process's streams at once (other processes read it within ~1 s)."""
        by, now = principal.subject, time.time()
        if body.alert_id is not None:
            documents = alert_documents(self.store, self.spec.name, alert_ids=[body.alert_id])
            if not documents:
                raise NotFound(f"no alert {body.alert_id}")
            alert = documents[0]
            targets = self._alert_anomalies(alert)
            entity, pattern, since = alert["entity"], alert.get("pattern"), float(alert.get("window_start") or alert["event_time"])
            last = float(alert.get("last_event_time") or since)
        else:
            rows = self.store.anomaly_rows(self.spec.name, [body.event_id])
            if not rows:
                raise NotFound(f"no anomaly with event id {body.event_id!r}")
            targets = rows
            entity, pattern = rows[0]["entity"], families(rows[0].get("explanation") or [])[0]
            since = last = float(rows[0]["event_time"])
        self.store.write_feedback(self.spec.name, [
            {"event_id": row["event_id"], "label": body.label, "note": body.note, "author": by, "created_at": now,
             "alert_id": body.alert_id} for row in targets])
        out: dict[str, Any] = {"event_id": body.event_id, "alert_id": body.alert_id, "label": body.label, "note": body.note,
                               "author": by, "created_at": now, "anomalies": len(targets), "mute": None}
        if body.mute is not None:
            out["mute"] = add_mute(self.store, self.spec.name, entity=entity,
                                   pattern=pattern if body.mute.scope == "entity_pattern" else None,
                                   since=since, until=max(now, last) + body.mute.days * DAY, author=by, note=body.note,
                                   alert_id=body.alert_id, event_id=body.event_id, created_at=now)
            if body.alert_id is not None:
                self.store.set_alert_status(self.spec.name, body.alert_id, "resolved", by=by)
            self.core.mute_refresher.refresh(force=True)
        if self.core.feedback_labels is not None:  # the verdict is a label for this service's features at once
            with self.core.lock:
                self.core.feedback_labels.refresh([s.pipeline for s in self.core.streams], force=True)
        log.info("feedback recorded", extra={"event_id": body.event_id, "alert_id": body.alert_id, "label": body.label,
                                             "by": by, "anomalies": len(targets), "muted": out["mute"] is not None})
        return out

    def _alert_anomalies(self, alert: dict[str, Any]) -> list[dict[str, Any]]:
        """The anomalies an alert grouped: its entity's, inside its window, whose explanation shows its pattern."""
        start = float(alert.get("window_start") or alert["event_time"])
        end = float(alert.get("last_event_time") or start)
        rows = self.store.anomalies(pipeline=self.spec.name, entity=alert["entity"], since=start, until=np.nextafter(end, np.inf),
                                    limit=max(int(alert["count"]), 1) * 2)
        pattern = alert.get("pattern")
        return [r for r in rows if pattern is None or pattern in families(r.get("explanation") or [])] or rows

    def mutes(self, *, in_force: bool = False) -> dict[str, Any]:
        return {"items": mute_rows(self.store, self.spec.name, not_lifted=in_force)}

    def lift_mute(self, mute_id: int, principal: Principal) -> dict[str, Any]:
        if not lift_mute(self.store, self.spec.name, mute_id, principal.subject):
            raise NotFound(f"no mute {mute_id} in force")
        self.core.mute_refresher.refresh(force=True)
        log.info("mute lifted", extra={"mute_id": mute_id, "by": principal.subject})
        return next(row for row in mute_rows(self.store, self.spec.name) if row["id"] == int(mute_id))

    def dead_letters(self, principal: Principal, *, cursor: str | None, limit: int, source: str | None = None) -> dict[str, Any]:
        """Stored dead letters, newest first, raw records as text. A raw record is whatever was sent,
        sensitive fields included: the route admits analysts and admins only, and anyone else would get
        no ``raw`` here either."""
        after_id = decode_cursor(cursor) if cursor else None
        rows = self.store.dead_letters(pipeline=self.spec.name, source=source, limit=limit + 1, after_id=after_id)
        show = principal.can(Role.analyst)
        for row in rows:
            if show and row["raw"] is not None and self.sealer is not None:  # sealed at rest when fields are sensitive
                row["raw"] = self.sealer.reveal_raw(row["raw"], row["source"], row["position"])
        return page([_dead_letter(row, show_raw=show) for row in rows], limit)

    def entity(self, key: str, principal: Principal, limit: int = 200) -> dict[str, Any]:
        hidden = frozenset() if principal.can(Role.analyst) else frozenset(self.cipher.sensitive)
        with self.core.lock:  # a viewer gets no state derived from sensitive fields (amount_sum_1m is an amount)
            state = self.pipeline.features.entity_state(key, without=hidden)
        recent = self.recent.of(key, limit)
        anomalies = [self.present_anomaly(r, principal) for r in self.store.anomalies(pipeline=self.spec.name, entity=key, limit=50)]
        if not state and not recent and not anomalies:
            raise NotFound(f"no entity {key!r} has been seen")
        metrics = metric_series(recent, self.series_metrics, self._series_features(), hidden)
        for event in recent:
            del event["bands"], event["explained"]
            if hidden:
                event["values"] = self.cipher.mask_fields(event["values"])
        return {"key": key, "state": {k: float(v) for k, v in state.items()}, "recent_events": recent, "anomalies": anomalies,
                "metrics": metrics}

    def _series_features(self) -> dict[str, str]:
        """The metric each feature of a per-entity series comes from (``cpu_surprise`` and ``cpu_trend``: cpu)."""
        return {name: op.field for op in self.pipeline.features.operators
                if isinstance(op, SeriesModel) and op.by == ENTITY and op.metric_field is None for name in op.names}

    def vocabulary(self) -> dict[str, Any]:
        schema = self.spec.event_schema
        words = Words.of(schema.key_field, schema.label_field)
        return {"pipeline": self.spec.name, "entity": words.entity, "entities": words.entities, "label": words.label,
                "labels": words.labels, "events": "readings" if self.spec.aggregate is not None or self.spec.quality is not None else "events",
                "metrics": list(self.series_metrics)}

    def pipeline_info(self) -> dict[str, Any]:
        spec, pipeline = self.spec, self.pipeline
        return {
            "name": spec.name,
            "detector": spec.detector.kind,
            "model_status": self.model_status,
            "model_version": pipeline.fits,
            "events_seen": pipeline.events_seen,
            "warmup_events": spec.detector.warmup_events,
            "features": list(pipeline.feature_names),
            "event_schema": spec.event_schema.model_dump(mode="json"),
            "threshold": spec.threshold.model_dump(mode="json"),
            "severity": spec.severity.model_dump(mode="json"),
            "sensitive_fields": list(self.cipher.sensitive),
        }

    def model_info(self) -> dict[str, Any]:
        pipeline = self.pipeline
        return {
            "detector": self.spec.detector.kind,
            "status": self.model_status,
            "version": pipeline.fits,
            "training_rows": len(pipeline.training),
            "params": dict(self.spec.detector.params),
            "features": list(pipeline.feature_names),
        }

    def stats(self) -> dict[str, Any]:
        counts = self.store.alert_counts(self.spec.name)
        return {
            "pipeline": self.spec.name,
            **self.activity.snapshot(),
            "alerts_by_severity": counts["by_severity"],
            "alerts_by_status": counts["by_status"],
            "queue_depth": self.queue_depth,
            "model_status": self.model_status,
        }

    def _store_health(self) -> dict[str, Any]:
        """Whether the store can take writes now (a write probe, not a read), and what waits for it."""
        state = self.core.health.components["store"]
        try:
            self.store.check_writable()
        except StoreUnavailable as error:
            self.core.health.down("store", error)
            return {"status": "down", "detail": str(error)}
        if not state.ok and not self.core.unacknowledged:
            self.core.health.up("store")  # writable again, nothing waiting: accept events again
        elif not state.ok:
            return {"status": "down", "detail": f"writable again; {self.core.unacknowledged} batch(es) of outputs being stored"}
        return {"status": "ok", "detail": repr(self.store)}

    def health(self) -> dict[str, Any]:
        if self.attached is not None:
            broker = {"status": "ok", "detail": "attached to a running pipeline; its source feeds the events"}
        elif not self.inbox.stopped_by_error:
            broker = {"status": "ok", "detail": f"journal {self.journal!r}, {self.queue_depth} events waiting"}
        else:
            broker = {"status": "down", "detail": f"the queue thread stopped: {self.inbox.error!r}"}
        pipeline = self.pipeline
        components = {
            "store": self._store_health(),
            "broker": broker,
            "cache": {"status": "not_configured", "detail": "no cache: per-entity state lives in the pipeline"},
            "model": (
                {"status": "ok", "detail": f"{self.spec.detector.kind} version {pipeline.fits}"}
                if pipeline.is_warm
                else {"status": "warming_up", "detail": f"{pipeline.events_seen} of {self.spec.detector.warmup_events} warm-up events seen"}
            ),
        }
        degraded = any(c["status"] == "down" for c in components.values())
        return {"status": "degraded" if degraded else "ok", "components": components}

    # --- the model registry (admin routes) ---------------------------------------------------

    @property
    def registry(self) -> Any:
        """The spec's model registry (:func:`tocsin.registry.open_registry`), opened on first use."""
        registry = getattr(self, "_registry", None)
        if registry is None and self.core.follower is not None:
            registry = self._registry = self.core.follower.registry  # the one the driver follows
        if registry is None:
            from tocsin.registry import open_registry

            registry = self._registry = open_registry(self.spec)
        return registry

    def model_versions(self) -> list[dict[str, Any]]:
        """Every registered version of this pipeline, oldest first, with its aliases."""
        return [version.as_dict() for version in self.registry.versions(self.spec.name)]

    def model_version(self, version: int) -> dict[str, Any]:
        """One version (:class:`~tocsin.registry.UnknownVersion` if there is none)."""
        return self.registry.get(self.spec.name, version).as_dict()

    def promote_model(self, version: int, alias: str, principal: Principal) -> dict[str, Any]:
        """Point ``alias`` at ``version``, recording who (the principal's subject); drivers following the
        registry install it at a batch boundary."""
        registry, name = self.registry, self.spec.name
        previous = registry.alias(name, alias)
        registry.promote(name, version, alias, by=principal.subject)
        return self._alias_moved(alias, previous)

    def rollback_model(self, alias: str, principal: Principal) -> dict[str, Any]:
        """Point ``alias`` back at the version it named before its latest promotion (a
        :class:`~tocsin.registry.RegistryError` when there is none)."""
        registry, name = self.registry, self.spec.name
        previous = registry.alias(name, alias)
        registry.rollback(name, alias, by=principal.subject)
        return self._alias_moved(alias, previous)

    def model_comparison(self, challenger: int | None = None) -> dict[str, Any] | None:
        """The challenger's shadow comparison with the champion (the latest challenger's, or ``challenger``'s);
        None before one has scored."""
        from tocsin.engine.shadow import comparison

        return comparison(self.store, self.spec.name, challenger)

    def model_drift(self) -> dict[str, Any]:
        """PSI and KS of every scored feature and of the score against the running model's training rows."""
        pipeline = self.pipeline
        limit = self.spec.drift.psi_alert
        rows = [{"feature": name, "psi": psi, "ks": ks, "drifted": limit is not None and psi > limit}
                for name, (psi, ks) in pipeline.drift.distances().items()]
        return {"model_version": pipeline.model_version, "psi_alert": limit, "features": sorted(rows, key=lambda r: -r["psi"])}

    def _alias_moved(self, alias: str, previous: int | None) -> dict[str, Any]:
        change = self.registry.alias_history(self.spec.name, alias)[-1]
        log.info("model alias moved", extra={"alias": alias, "version": change.version, "previous": previous, "kind": change.kind, "by": change.by})
        return {"alias": alias, "version": change.version, "previous": previous, "kind": change.kind, "by": change.by, "at": change.at,
                "model": self.model_version(change.version)}


#: the most of a dead letter's raw record the API returns
RAW_TEXT_BYTES = 64 * 1024


def _dead_letter(row: dict[str, Any], show_raw: bool) -> dict[str, Any]:
    """A stored dead letter as the API shows it: ``raw`` decoded as UTF-8 (bad bytes replaced), cut to
    :data:`RAW_TEXT_BYTES` on a character boundary."""
    raw: bytes | None = row.get("raw")
    text, truncated = None, False
    if raw is not None and show_raw:
        # a replacement character is 3 bytes for 1 bad one: cut again after decoding, on a character boundary
        encoded = raw[:RAW_TEXT_BYTES].decode("utf-8", "replace").encode()
        text = encoded[:RAW_TEXT_BYTES].decode("utf-8", "ignore")
        truncated = len(raw) > RAW_TEXT_BYTES or len(encoded) > RAW_TEXT_BYTES
    return {"id": row["id"], "source": row["source"], "position": row["position"], "reason": row["reason"], "raw": text,
            "raw_bytes": len(raw) if raw is not None else 0, "raw_truncated": truncated, "created_at": row["created_at"]}


def _first_line(error: BaseException) -> str:
    """An error's first line: database errors go on with the statement, which holds event values."""
    return str(error).splitlines()[0] if str(error) else type(error).__name__


def _results(scored: ScoredBatch, seq: int, n: int) -> list[dict[str, Any]]:
    """One result per request event, in request order: valid events interleaved with dead letters."""
    base = seq << RECORD_BITS
    dead = {d.position - base: d.reason for d in scored.dead_letters}
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
