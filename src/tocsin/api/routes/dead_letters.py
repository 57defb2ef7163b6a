"""``GET /v1/dead-letters``: records that were not processed and why (analysts and admins: a raw
record can hold anything, sensitive fields included, so viewers get 403)."""

from fastapi import APIRouter, Depends, Query

from tocsin.api.auth import Principal, analyst
from tocsin.api.deps import CURSOR, LIMIT, READ, bad_cursor, get_service
from tocsin.api.models import DeadLetterPage
from tocsin.api.service import Service

router = APIRouter(prefix="/v1", tags=["dead letters"])


@router.get("/dead-letters", response_model=DeadLetterPage, responses=READ)
def list_dead_letters(
    source: str | None = Query(None, max_length=255, description="one source, e.g. `api` or `kafka:tx/3`"),
    limit: int = LIMIT,
    cursor: str | None = CURSOR,
    principal: Principal = Depends(analyst),
    service: Service = Depends(get_service),
) -> dict:
    """Dead letters most recently stored first, with the reason and the raw record as text (UTF-8,
    undecodable bytes replaced; the first 64 KiB, `raw_truncated` when there was more)."""
    try:
        return service.dead_letters(principal, cursor=cursor, limit=limit, source=source)
    except ValueError as error:
        raise bad_cursor(error) from None
