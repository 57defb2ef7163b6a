"""The Dispatcher drains the outbox: every pending delivery is sent at least once.

Order per delivery: **claim** (push ``next_attempt_at`` one lease ahead and
count the attempt, in its own committed transaction), **send**, then **record**
(``delivered``, or the error and the next attempt time). What each step
prevents:

* claim before send: two dispatchers (or one restarted after a SIGKILL) never
  send the same delivery at the same time; a dispatcher that dies after the
  claim leaves a row that becomes due again when the lease (``retry.lease``)
  runs out, so a kill loses nothing — it can only cause one duplicate send,
  which the idempotency key lets the receiver drop;
* record after send: a crash between send and record re-sends (at least once),
  never skips (at most once would lose alerts).

Retries back off exponentially with jitter (``retry.initial`` ×
``retry.multiplier`` ^ attempts, capped at ``retry.max_delay``; a share
``retry.jitter`` of each delay is random so receivers coming back from an
outage are not hit by every dispatcher at once). A channel that failed is
paused until its next retry time, so a dead endpoint costs one attempt per
backoff step rather than one per pending alert; the other channels go on.

Run it as a thread (:meth:`start`/:meth:`stop`) beside the runner, or drive it
with :meth:`run_once`/:meth:`drain` (tests, a separate process).
"""

from __future__ import annotations

import logging
import random
import threading
import time
from typing import Any

from sqlalchemy import func, select

from tocsin.alerting.channels import Channel, DeliveryError, build_channels
from tocsin.spec.alerting import AlertingSpec, RetrySpec
from tocsin.alerting.outbox import alert_documents, claim, due_deliveries, mark_delivered, mark_failed_attempt
from tocsin.alerting.tables import alert_deliveries, ensure_tables
from tocsin.store.sql import Store

log = logging.getLogger(__name__)


def backoff(attempt: int, retry: RetrySpec, rng: random.Random) -> float:
    """Seconds before the next attempt after ``attempt`` failed attempts (1-based).

    >>> r = RetrySpec(initial=1, multiplier=2, max_delay=60, jitter=0)
    >>> [backoff(n, r, random.Random(0)) for n in (1, 2, 3, 10)]
    [1.0, 2.0, 4.0, 60.0]
    """
    delay = min(retry.max_delay, retry.initial * retry.multiplier ** max(0, attempt - 1))
    return delay * (1.0 - retry.jitter) + delay * retry.jitter * rng.random()


class Dispatcher:
    """Delivers the outbox of ``store`` (one pipeline, or all when ``pipeline`` is None)."""

    def __init__(
        self,
        store: Store,
        spec: AlertingSpec,
        pipeline: str | None = None,
        channels: dict[str, Channel] | None = None,
        *,
        poll_interval: float = 0.5,
        batch_size: int = 100,
        seed: int | None = None,
    ) -> None:
        self.store = store
        self.spec = spec
        self.pipeline = pipeline
        self.channels = channels if channels is not None else build_channels(spec)
        self.poll_interval = poll_interval
        self.batch_size = batch_size
        self.rng = random.Random(seed)
        self.sent = 0
        self.failures = 0
        self._paused_until: dict[str, float] = {}
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        ensure_tables(store.engine)

    # --- one pass -------------------------------------------------------------------

    def run_once(self, now: float | None = None) -> int:
        """Attempt every delivery due now (at most ``batch_size``); returns the number attempted."""
        now = time.time() if now is None else now
        with self.store.engine.connect() as conn:
            rows = due_deliveries(conn, now, self.batch_size, self.pipeline)
        attempted = 0
        documents: dict[tuple[str, str], dict[str, Any]] = {}
        for row in rows:
            if self._stop.is_set():
                break
            channel = self.channels.get(row["channel"])
            if self._paused_until.get(row["channel"], 0.0) > now:
                continue
            with self.store.engine.begin() as conn:
                if not claim(conn, row, now, self.spec.retry.lease):
                    continue  # another dispatcher has it
            attempted += 1
            attempt = row["attempts"] + 1
            try:
                if channel is None:
                    raise DeliveryError(f"no channel {row['channel']!r} in alerting.channels", permanent=True)
                key = (row["pipeline"], row["alert_key"])
                if key not in documents:
                    found = alert_documents(self.store, row["pipeline"], keys=[row["alert_key"]])
                    if not found:
                        raise DeliveryError(f"alert {row['alert_key']!r} is not in the store", permanent=True)
                    documents[key] = found[0]
                document = {**documents[key], "pipeline": row["pipeline"], "notification": row["notification"],
                            "idempotency_key": row["idempotency_key"]}
                document.pop("deliveries", None)
                channel.send(document, row["idempotency_key"])
            except Exception as error:  # noqa: BLE001 - any failure of a channel is a failed attempt
                self.failures += 1
                permanent = isinstance(error, DeliveryError) and error.permanent
                message = str(error) if isinstance(error, DeliveryError) else f"{type(error).__name__}: {error}"
                done_trying = permanent or (self.spec.retry.max_attempts is not None and attempt >= self.spec.retry.max_attempts)
                finished = time.time()
                retry_at = None if done_trying else finished + backoff(attempt, self.spec.retry, self.rng)
                if retry_at is not None:
                    self._paused_until[row["channel"]] = retry_at
                with self.store.engine.begin() as conn:
                    mark_failed_attempt(conn, row["id"], finished, message, retry_at)
                log.warning("alert delivery failed", extra={"alert_key": row["alert_key"], "channel": row["channel"],
                                                            "attempt": attempt, "error": message, "permanent": permanent})
                continue
            with self.store.engine.begin() as conn:
                mark_delivered(conn, row["id"], time.time())
            self.sent += 1
        return attempted

    def pending(self) -> int:
        """Deliveries not yet delivered nor failed for good."""
        o = alert_deliveries
        statement = select(func.count()).select_from(o).where(o.c.status == "pending")
        if self.pipeline is not None:
            statement = statement.where(o.c.pipeline == self.pipeline)
        with self.store.engine.connect() as conn:
            return int(conn.execute(statement).scalar_one())

    def drain(self, timeout: float = 30.0) -> bool:
        """Run passes until nothing is pending (True) or ``timeout`` seconds passed (False)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.run_once()
            if self.pending() == 0:
                return True
            time.sleep(min(self.poll_interval, max(0.0, deadline - time.monotonic())))
        return self.pending() == 0

    # --- as a thread ------------------------------------------------------------------

    def start(self) -> Dispatcher:
        if self._thread is None:
            self._stop.clear()
            self._thread = threading.Thread(target=self._loop, name="tocsin-alert-dispatcher", daemon=True)
            self._thread.start()
        return self

    def wake(self) -> None:
        """New deliveries were written: look now rather than at the next poll."""
        self._wake.set()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
        for channel in self.channels.values():
            channel.close()

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.run_once()
            except Exception:  # noqa: BLE001 - the database may be briefly unavailable; try again
                log.exception("alert dispatcher pass failed")
            self._wake.wait(self.poll_interval)
            self._wake.clear()
