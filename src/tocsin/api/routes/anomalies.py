"""``GET /v1/anomalies``: stored anomalies, newest first, filtered, cursor-paginated."""

from fastapi import APIRouter, Depends, Query

from tocsin.api.auth import Principal, viewer
from tocsin.api.deps import READ, get_service, validation_error
from tocsin.api.models import AnomalyPage, Severity
from tocsin.api.service import Service

router = APIRouter(prefix="/v1", tags=["anomalies"])


@router.get("/anomalies", response_model=AnomalyPage, responses=READ)
def list_anomalies(
    since: float | None = Query(None, description="event time >= this (epoch seconds)"),
    until: float | None = Query(None, description="event time < this (epoch seconds)"),
    entity: str | None = Query(None, max_length=255, description="one entity key"),
    severity: list[Severity] | None = Query(None, description="one or more severities"),
    limit: int = Query(100, ge=1, le=1_000),
    cursor: str | None = Query(None, max_length=200, description="next_cursor of the previous page"),
    principal: Principal = Depends(viewer),
    service: Service = Depends(get_service),
) -> dict:
    """Anomalies newest event first. Sensitive fields are masked for viewers."""
    try:
        return service.anomalies(principal, cursor=cursor, limit=limit, since=since, until=until, entity=entity, severity=severity)
    except ValueError as error:
        raise validation_error(["query", "cursor"], str(error)) from None
