"""``GET /v1/anomalies``: stored anomalies, newest first, filtered, cursor-paginated."""

from fastapi import APIRouter, Depends, Query

from tocsin.api.auth import Principal, viewer
from tocsin.api.deps import CURSOR, LIMIT, READ, bad_cursor, epoch_query, get_service
from tocsin.api.models import AnomalyPage, Severity
from tocsin.api.service import Service

router = APIRouter(prefix="/v1", tags=["anomalies"])


@router.get("/anomalies", response_model=AnomalyPage, responses=READ)
def list_anomalies(
    since: float | None = epoch_query("event time >= this (epoch seconds)"),
    until: float | None = epoch_query("event time < this (epoch seconds)"),
    entity: str | None = Query(None, max_length=255, description="one entity key"),
    severity: list[Severity] | None = Query(None, description="one or more severities"),
    limit: int = LIMIT,
    cursor: str | None = CURSOR,
    principal: Principal = Depends(viewer),
    service: Service = Depends(get_service),
) -> dict:
    """Anomalies newest event first. Sensitive fields are masked for viewers."""
    try:
        return service.anomalies(principal, cursor=cursor, limit=limit, since=since, until=until, entity=entity, severity=severity)
    except ValueError as error:
        raise bad_cursor(error) from None
