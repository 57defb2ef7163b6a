"""The FastAPI app factory: routes, auth, limits, error shapes, the dashboard.

``create_app(spec, auth)`` works with a pipeline that is not warm yet: scoring
then returns ``status="warming_up"`` events until the detector has learned from
its first ``detector.warmup_events`` events.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse
from fastapi.staticfiles import StaticFiles

from tocsin import __version__
from tocsin.api.auth import AuthConfig
from tocsin.api.routes import alerts, anomalies, dashboard, entities, events, feedback, health, keys, pipelines, prometheus, score, stats
from tocsin.api.service import Service
from tocsin.checkpoint.base import CheckpointStore
from tocsin.sources.journal import Journal
from tocsin.engine.pipeline import Pipeline
from tocsin.spec import PipelineSpec
from tocsin.store.sql import Store

DEFAULT_MAX_BODY_BYTES = 8 * 1024 * 1024
"""10,000 events of ~300 bytes fit with room to spare; anything bigger is refused before it is read."""

request_log = logging.getLogger("tocsin.api.request")


def create_app(
    spec: PipelineSpec,
    auth: AuthConfig,
    *,
    service: Service | None = None,
    pipeline: Pipeline | None = None,
    store: Store | None = None,
    sensitive_fields: list[str] | None = None,
    encryption_key: bytes | None = None,
    checkpoints: CheckpointStore | None = None,
    journal: Journal | None = None,
    cors_origins: list[str] | tuple[str, ...] = (),
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    queue_max_events: int = 200_000,
) -> FastAPI:
    """The API + dashboard for ``spec``. Pass ``service`` to share one (e.g. with a streaming runner);
    otherwise one is built from ``pipeline``/``store`` (fresh ones by default). CORS is off unless
    ``cors_origins`` names origins."""
    if service is None:
        service = Service(
            spec, pipeline=pipeline, store=store, sensitive_fields=sensitive_fields, encryption_key=encryption_key,
            checkpoints=checkpoints, journal=journal, queue_max_events=queue_max_events,
        )

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        service.start()
        try:
            yield
        finally:
            service.stop()

    app = FastAPI(
        title="tocsin",
        version=__version__,
        summary="Real-time anomaly detection: score events, browse anomalies and alerts, give feedback.",
        description=(
            "Authenticate with `X-API-Key: tsk_…` (create keys with `tocsin keys create --role R`) or "
            "`Authorization: Bearer <JWT>` carrying a `role` claim. Roles: **viewer** reads, **analyst** also "
            "scores, acknowledges, resolves and gives feedback, **admin** also sees pipelines and models and "
            "manages keys. 401: missing or bad credentials; 403: role too small."
        ),
        lifespan=lifespan,
    )
    app.state.service = service
    app.state.auth = auth
    for module in (score, events, anomalies, alerts, feedback, entities, stats, pipelines, keys, health, prometheus, dashboard):
        app.include_router(module.router)
    app.mount("/dashboard/static", StaticFiles(directory=dashboard.STATIC), name="dashboard-static")
    app.add_exception_handler(RequestValidationError, _validation_error)
    if cors_origins:
        app.add_middleware(CORSMiddleware, allow_origins=list(cors_origins), allow_methods=["GET", "POST", "DELETE"],
                           allow_headers=["Authorization", "X-API-Key", "Content-Type"])
    app.add_middleware(RequestGuard, max_body_bytes=max_body_bytes)
    return app


async def _validation_error(_request: Request, error: RequestValidationError) -> JSONResponse:
    """FastAPI's 422 shape, plus ``field`` (the dotted path) and a message that starts with it."""
    detail = []
    for item in error.errors():
        loc = list(item.get("loc", ()))
        field = ".".join(str(p) for p in loc[1:]) or (str(loc[0]) if loc else "body")
        entry = {"loc": loc, "msg": f"{field}: {item.get('msg', 'invalid')}", "type": item.get("type", "value_error"), "field": field}
        detail.append(entry)
    return JSONResponse({"detail": detail}, status_code=422)


class RequestGuard:
    """ASGI middleware: refuses bodies over ``max_body_bytes`` (413) and logs each request as JSON."""

    def __init__(self, app: Any, max_body_bytes: int) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        limit = self.max_body_bytes
        status_code = 500
        for name, value in scope.get("headers", ()):
            if name == b"content-length":
                try:
                    too_big = int(value) > limit
                except ValueError:
                    too_big = False
                if too_big:
                    await _too_large(send, limit)
                    self._log(scope, 413, started)
                    return
        received = 0
        rejected = False
        started_response = False

        async def limited_receive() -> dict:
            nonlocal received, rejected, status_code
            message = await receive()
            if message["type"] == "http.request" and not rejected:
                received += len(message.get("body", b""))
                if received > limit:
                    # answer 413 now and tell the app the client went away; whatever it sends is dropped
                    rejected, status_code = True, 413
                    if not started_response:
                        await _too_large(send, limit)
                    return {"type": "http.disconnect"}
            return message

        async def tracking_send(message: dict) -> None:
            nonlocal status_code, started_response
            if rejected:
                return
            if message["type"] == "http.response.start":
                status_code = message["status"]
                started_response = True
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        finally:
            self._log(scope, status_code, started)

    @staticmethod
    def _log(scope: dict, status_code: int, started: float) -> None:
        if not request_log.isEnabledFor(logging.INFO):
            return
        principal = scope.get("state", {}).get("principal")
        request_log.info(
            "request",
            extra={
                "method": scope.get("method"),
                "path": scope.get("path"),
                "status": status_code,
                "duration_ms": round((time.perf_counter() - started) * 1000, 3),
                "role": principal.role.name if principal else None,
                "subject": principal.subject if principal else None,
                "client": (scope.get("client") or ("", 0))[0],
            },
        )


async def _too_large(send: Any, limit: int) -> None:
    body = ('{"detail": "request body over the %d-byte limit; send fewer events per request"}' % limit).encode()
    await send({"type": "http.response.start", "status": 413,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})
