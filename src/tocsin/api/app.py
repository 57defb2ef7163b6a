"""The FastAPI app factory: routes, auth, limits, error shapes, the dashboard.

``create_app(spec, auth)`` works with a pipeline that is not warm yet: scoring
then returns ``status="warming_up"`` events until the detector has learned from
its first ``detector.warmup_events`` events.
"""

from __future__ import annotations

import json
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
from tocsin.api.auth import AuthConfig, FailureThrottle, has_credentials, loopback_host, same_origin
from tocsin.api.routes import (
    alerts, anomalies, dashboard, dead_letters, entities, events, feedback, health, keys, model_versions, pipelines, prometheus, score,
    stats, vocabulary,
)
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
    throttle: FailureThrottle | None = None,
) -> FastAPI:
    """The API + dashboard for ``spec``. Pass ``service`` to share one (e.g. with a streaming runner);
    otherwise one is built from ``pipeline``/``store`` (fresh ones by default). CORS is off unless
    ``cors_origins`` names origins. ``throttle``: failed logins per address (20 in 10 s by default)."""
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
            "manages keys. 401: missing or bad credentials; 403: role too small; 429: too many failed "
            "authentication attempts from the caller's address (see Retry-After). Credentials are checked before "
            "a request body is read."
        ),
        lifespan=lifespan,
    )
    app.state.service = service
    app.state.auth = auth
    for module in (score, events, anomalies, alerts, feedback, dead_letters, entities, stats, vocabulary, pipelines, model_versions, keys,
                   health, prometheus, dashboard):
        app.include_router(module.router)
    app.mount("/dashboard/static", StaticFiles(directory=dashboard.STATIC), name="dashboard-static")
    app.add_exception_handler(RequestValidationError, _validation_error)
    if cors_origins:
        app.add_middleware(CORSMiddleware, allow_origins=list(cors_origins), allow_methods=["GET", "POST", "DELETE"],
                           allow_headers=["Authorization", "X-API-Key", "Content-Type"])
    app.state.auth_throttle = throttle or FailureThrottle()
    docs = frozenset(p for p in (app.docs_url, app.redoc_url, app.swagger_ui_oauth2_redirect_url) if p)
    app.add_middleware(RequestGuard, max_body_bytes=max_body_bytes, auth=auth, throttle=app.state.auth_throttle, docs_paths=docs)
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


#: the dashboard's policy: its own scripts, styles and API only (Plotly is served from /dashboard/vendor, its
#: CSS from static/plotly.css); 'report-sample' puts the start of anything blocked in the violation report
CSP = ("default-src 'self'; script-src 'self' 'report-sample'; style-src 'self' 'report-sample'; img-src 'self' data:; connect-src 'self'; "
       "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'")
#: the API docs pages: FastAPI's Swagger UI and ReDoc load from a CDN and start with an inline script
DOCS_CSP = ("default-src 'self'; script-src 'self' 'unsafe-inline' https://cdn.jsdelivr.net; "
            "style-src 'self' 'unsafe-inline' https://cdn.jsdelivr.net https://fonts.googleapis.com; "
            "font-src 'self' https://fonts.gstatic.com; img-src 'self' data: https://fastapi.tiangolo.com https://cdn.redoc.ly; "
            "worker-src 'self' blob:; connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'")
SECURITY_HEADERS = [(b"x-frame-options", b"DENY"), (b"x-content-type-options", b"nosniff"), (b"referrer-policy", b"no-referrer")]
UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
#: every route under this prefix needs credentials: they are checked before the body is read
AUTHENTICATED_PREFIX = "/v1"


class RequestGuard:
    """ASGI middleware, outermost, so it decides from the request head before anything reads the body:

    * with auth off, only loopback ``Host`` names, and no cross-origin writes (403);
    * under ``/v1``: 429 for an address with too many failed logins (not checked), then credentials
      (401; the principal is left in the scope for the routes' dependencies);
    * bodies over ``max_body_bytes`` (413), by ``Content-Length`` or as they stream in;
    * security headers on every response, and one JSON log line per request.
    """

    def __init__(self, app: Any, max_body_bytes: int, auth: AuthConfig, throttle: FailureThrottle,
                 docs_paths: frozenset[str] = frozenset()) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.auth = auth
        self.throttle = throttle
        self.docs_paths = docs_paths

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        limit = self.max_body_bytes
        status_code = 500
        policy = (DOCS_CSP if scope["path"] in self.docs_paths else CSP).encode()

        async def secured_send(message: dict) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", ()), *SECURITY_HEADERS, (b"content-security-policy", policy)]}
            await send(message)

        refusal = self._refusal(scope)
        if refusal is None and _content_length(scope) > limit:
            refusal = (413, f"request body over the {limit}-byte limit; send fewer events per request", {})
        if refusal is not None:
            status, detail, headers = refusal
            await _refuse(secured_send, status, detail, headers, close=_has_body(scope))
            self._log(scope, status, started)
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
                        await _refuse(secured_send, 413, f"request body over the {limit}-byte limit; send fewer events per request", {},
                                      close=True)
                    return {"type": "http.disconnect"}
            return message

        async def tracking_send(message: dict) -> None:
            nonlocal status_code, started_response
            if rejected:
                return
            if message["type"] == "http.response.start":
                status_code = message["status"]
                started_response = True
            await secured_send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except Exception:
            if not started_response and not rejected:  # answered here, so that a 500 too carries the security headers
                status_code = 500
                await _refuse(secured_send, 500, "internal server error", {}, close=True)
            raise
        finally:
            self._log(scope, status_code, started)

    def _refusal(self, scope: dict) -> tuple[int, str, dict[str, str]] | None:
        """Why this request is refused from its head alone, or None: (status, detail, extra headers)."""
        headers = scope.get("headers", ())
        method = scope.get("method", "GET")
        if not self.auth.enabled:
            refusal = _cross_site(scope, headers, method)
            if refusal is not None:
                return 403, refusal, {}
        path = scope["path"]
        if method == "OPTIONS" or not (path == AUTHENTICATED_PREFIX or path.startswith(AUTHENTICATED_PREFIX + "/")):
            return None  # CORS preflights carry no credentials; the public routes need none
        address = (scope.get("client") or ("unknown", 0))[0]
        wait = self.throttle.retry_after(address)
        if wait is not None:
            return 429, f"too many failed authentication attempts from {address}; try again in {wait} s", {"retry-after": str(wait)}
        principal = self.auth.authenticate_headers(headers)
        if principal is None:
            presented = has_credentials(headers)
            if presented:
                self.throttle.failed(address)
            detail = "invalid or expired credentials" if presented else "missing credentials: send X-API-Key or Authorization: Bearer"
            return 401, detail, {"www-authenticate": "Bearer"}
        scope.setdefault("state", {})["principal"] = principal
        return None

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


def _header(headers: Any, name: bytes) -> str | None:
    for key, value in headers:
        if key == name:
            return value.decode("latin-1")
    return None


def _content_length(scope: dict) -> int:
    try:
        return int(_header(scope.get("headers", ()), b"content-length") or 0)
    except ValueError:
        return 0


def _has_body(scope: dict) -> bool:
    return _content_length(scope) > 0 or _header(scope.get("headers", ()), b"transfer-encoding") is not None


def _cross_site(scope: dict, headers: Any, method: str) -> str | None:
    """With auth off, why a request may come from another site, or None: a ``Host`` that is not a
    loopback name (DNS rebinding: evil.example resolving to 127.0.0.1), or a write whose ``Origin`` (else
    ``Referer``) is not this server's own page (a cross-site form or fetch acknowledging an alert)."""
    host = _header(headers, b"host") or ""
    if not loopback_host(host):
        return (f"Host header {host!r} refused: with authentication off this server answers only to loopback names "
                "(localhost, 127.0.0.1, [::1]), so that no other site can reach it through DNS rebinding; "
                "open it as http://localhost:<port>/ or switch auth on")
    if method in UNSAFE_METHODS:
        origin = _header(headers, b"origin")
        source = origin if origin is not None else _header(headers, b"referer")
        if source is not None and not same_origin(source, host):
            return (f"cross-origin {method} refused: with authentication off, writes are accepted only from this "
                    f"server's own pages (http://{host}), not from {source!r}")
    return None


async def _refuse(send: Any, status: int, detail: str, headers: dict[str, str], close: bool) -> None:
    """A JSON error answered by the guard itself. With ``close`` (the request has a body, left unread) the
    connection closes after it, so that the body is not drained."""
    body = json.dumps({"detail": detail}).encode()
    extra = [(k.encode(), v.encode()) for k, v in headers.items()]
    if close:
        extra.append((b"connection", b"close"))
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()), *extra]})
    await send({"type": "http.response.body", "body": body})
