"""Alerts: list, one, acknowledge, resolve (who and when is recorded)."""

from fastapi import APIRouter, Depends, Path, Query

from tocsin.api.auth import Principal, analyst, viewer
from tocsin.api.deps import CURSOR, LIMIT, READ, bad_cursor, epoch_query, get_service, not_found, responses
from tocsin.api.models import Alert, AlertPage, AlertStatus, Severity
from tocsin.api.service import NotFound, Service

router = APIRouter(prefix="/v1/alerts", tags=["alerts"])
AlertId = Path(..., ge=1, le=2**63 - 1, description="the alert's id")


@router.get("", response_model=AlertPage, responses=READ)
def list_alerts(
    since: float | None = epoch_query("event time >= this (epoch seconds)"),
    until: float | None = epoch_query("event time < this (epoch seconds)"),
    entity: str | None = Query(None, max_length=255),
    severity: list[Severity] | None = Query(None),
    status: list[AlertStatus] | None = Query(None),
    limit: int = LIMIT,
    cursor: str | None = CURSOR,
    principal: Principal = Depends(viewer),
    service: Service = Depends(get_service),
) -> dict:
    """Alerts newest event first, filtered; paginate with `next_cursor`."""
    try:
        return service.alerts(principal, cursor=cursor, limit=limit, since=since, until=until, entity=entity, severity=severity, status=status)
    except ValueError as error:
        raise bad_cursor(error) from None


@router.get("/{alert_id}", response_model=Alert, responses=responses(401, 403, 404))
def get_alert(alert_id: int = AlertId, principal: Principal = Depends(viewer), service: Service = Depends(get_service)) -> dict:
    try:
        return service.alert(alert_id, principal)
    except NotFound as error:
        raise not_found(error) from None


@router.post("/{alert_id}/ack", response_model=Alert, responses=responses(401, 403, 404))
def acknowledge(alert_id: int = AlertId, principal: Principal = Depends(analyst), service: Service = Depends(get_service)) -> dict:
    """Mark the alert acknowledged (someone is looking at it); records who (`acknowledged_by`) and when."""
    try:
        return service.set_alert_status(alert_id, "acknowledged", principal)
    except NotFound as error:
        raise not_found(error) from None


@router.post("/{alert_id}/resolve", response_model=Alert, responses=responses(401, 403, 404))
def resolve(alert_id: int = AlertId, principal: Principal = Depends(analyst), service: Service = Depends(get_service)) -> dict:
    """Mark the alert resolved; records who (`resolved_by`) and when."""
    try:
        return service.set_alert_status(alert_id, "resolved", principal)
    except NotFound as error:
        raise not_found(error) from None
