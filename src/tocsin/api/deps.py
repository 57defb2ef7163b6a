"""Shared route plumbing: the service dependency, error helpers and documented error responses."""

from __future__ import annotations

from typing import Any

from fastapi import HTTPException, Request, status
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
        413: "request body over the size limit",
        503: "temporarily unable (queue full, or degraded)",
    }
    return {code: {"model": ErrorOut, "description": text[code]} for code in codes}


READ = responses(401, 403)
WRITE = responses(401, 403, 413)
