"""Alerts: list, one, acknowledge, resolve."""

from fastapi import APIRouter, Depends, Path, Query

from tocsin.api.auth import analyst, viewer
from tocsin.api.deps import READ, get_service, not_found, responses, validation_error
from tocsin.api.models import Alert, AlertPage, AlertStatus, Severity
from tocsin.api.service import NotFound, Service

router = APIRouter(prefix="/v1/alerts", tags=["alerts"])
AlertId = Path(..., ge=1, le=2**63 - 1, description="the alert's id")


@router.get("", response_model=AlertPage, responses=READ, dependencies=[Depends(viewer)])
def list_alerts(
    since: float | None = Query(None, description="event time >= this (epoch seconds)"),
    until: float | None = Query(None, description="event time < this (epoch seconds)"),
    entity: str | None = Query(None, max_length=255),
    severity: list[Severity] | None = Query(None),
    status: list[AlertStatus] | None = Query(None),
    limit: int = Query(100, ge=1, le=1_000),
    cursor: str | None = Query(None, max_length=200),
    service: Service = Depends(get_service),
) -> dict:
    """Alerts newest event first, filtered; paginate with `next_cursor`."""
    try:
        return service.alerts(cursor=cursor, limit=limit, since=since, until=until, entity=entity, severity=severity, status=status)
    except ValueError as error:
        raise validation_error(["query", "cursor"], str(error)) from None


@router.get("/{alert_id}", response_model=Alert, responses=responses(401, 403, 404), dependencies=[Depends(viewer)])
def get_alert(alert_id: int = AlertId, service: Service = Depends(get_service)) -> dict:
    try:
        return service.alert(alert_id)
    except NotFound as error:
        raise not_found(error) from None


@router.post("/{alert_id}/ack", response_model=Alert, responses=responses(401, 403, 404), dependencies=[Depends(analyst)])
def acknowledge(alert_id: int = AlertId, service: Service = Depends(get_service)) -> dict:
    """Mark the alert acknowledged (someone is looking at it)."""
    try:
        return service.set_alert_status(alert_id, "acknowledged")
    except NotFound as error:
        raise not_found(error) from None


@router.post("/{alert_id}/resolve", response_model=Alert, responses=responses(401, 403, 404), dependencies=[Depends(analyst)])
def resolve(alert_id: int = AlertId, service: Service = Depends(get_service)) -> dict:
    """Mark the alert resolved."""
    try:
        return service.set_alert_status(alert_id, "resolved")
    except NotFound as error:
        raise not_found(error) from None
