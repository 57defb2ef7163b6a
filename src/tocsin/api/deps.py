"""Shared route plumbing: the service dependency, error helpers and documented error responses."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import msgspec
from fastapi import HTTPException, Request, Response, status
from fastapi.routing import APIRoute
from pydantic import BaseModel

from tocsin.api.service import Service


class ErrorOut(BaseModel):
    detail: str


async def get_service(request: Request) -> Service:
    return request.app.state.service


def not_found(error: LookupError) -> HTTPException:
    return HTTPException(status.HTTP_404_NOT_FOUND, detail=str(error.args[0] if error.args else error))


def validation_error(loc: list[str | int], message: str, kind: str = "value_error") -> HTTPException:
    """A 422 in FastAPI's validation-error shape, naming the field."""
    field = ".".join(str(part) for part in loc[1:]) or str(loc[0])
    return HTTPException(
        status.HTTP_422_UNPROCESSABLE_CONTENT,
        detail=[{"loc": loc, "msg": f"{field}: {message}", "type": kind, "field": field}],
    )


def responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI documentation of the error statuses a route can return."""
    text = {
        401: "missing or invalid credentials",
        403: "the credentials' role is not allowed to do this",
        404: "no such resource",
        409: "this API accepts no events (it shares a running pipeline's stream)",
        413: "request body over the size limit",
        503: "temporarily unable (queue full, or degraded)",
    }
    return {code: {"model": ErrorOut, "description": text[code]} for code in codes}


READ = responses(401, 403)
WRITE = responses(401, 403, 413)


# --- the fast JSON path of the scoring routes ----------------------------------------------


class MsgspecRequest(Request):
    """Parses JSON bodies with msgspec (~3x faster than ``json.loads`` on a 1,000-event batch).
    Malformed JSON still becomes FastAPI's 422 ``json_invalid`` error."""

    async def json(self) -> Any:
        if not hasattr(self, "_json"):
            body = await self.body()
            try:
                self._json = msgspec.json.decode(body)
            except msgspec.DecodeError as error:
                raise json.JSONDecodeError(str(error), body.decode("utf-8", "replace"), 0) from None
        return self._json


class MsgspecRoute(APIRoute):
    """A route whose request body is parsed by :class:`MsgspecRequest`."""

    def get_route_handler(self) -> Callable:
        handler = super().get_route_handler()

        async def route_handler(request: Request) -> Response:
            return await handler(MsgspecRequest(request.scope, request.receive))

        return route_handler


def fast_json(content: Any, status_code: int = 200) -> Response:
    """A JSON response encoded by msgspec, skipping FastAPI's response re-validation: for the scoring
    routes, whose answers grow with the batch (the response model still documents the schema, and
    tests check the answers against it)."""
    return Response(msgspec.json.encode(content), status_code=status_code, media_type="application/json")
