"""``POST /v1/feedback``: a person's verdict on an anomaly or an alert, and the mutes it may set."""

from fastapi import APIRouter, Depends, Path, Query

from tocsin.api.auth import Principal, analyst, viewer
from tocsin.api.deps import READ, get_service, not_found, responses
from tocsin.api.models import FeedbackIn, FeedbackOut, Mute, MutePage
from tocsin.api.service import NotFound, Service

router = APIRouter(prefix="/v1", tags=["feedback"])
MuteId = Path(..., ge=1, le=2**63 - 1, description="the mute's id")


@router.post("/feedback", response_model=FeedbackOut, responses=responses(401, 403, 404, 413))
def give_feedback(body: FeedbackIn, principal: Principal = Depends(analyst), service: Service = Depends(get_service)) -> dict:
    """Mark an anomaly, or every anomaly of an alert, a true or a false positive (sets their label; every
    call is stored with its author). A false-positive verdict with ``mute`` stops the same entity (and
    pattern) from alerting for ``mute.days``: its anomalies are still stored, and the alert is resolved."""
    try:
        return service.feedback(body, principal)
    except NotFound as error:
        raise not_found(error) from None


@router.get("/mutes", response_model=MutePage, responses=READ)
def list_mutes(in_force: bool = Query(False, description="only those nobody lifted"), principal: Principal = Depends(viewer),
               service: Service = Depends(get_service)) -> dict:
    """Mutes newest first: who muted which entity and pattern, from and until which event time."""
    return service.mutes(in_force=in_force)


@router.delete("/mutes/{mute_id}", response_model=Mute, responses=responses(401, 403, 404))
def lift_mute(mute_id: int = MuteId, principal: Principal = Depends(analyst), service: Service = Depends(get_service)) -> dict:
    """End a mute now (it stays on record with who lifted it): matching anomalies alert again."""
    try:
        return service.lift_mute(mute_id, principal)
    except NotFound as error:
        raise not_found(error) from None
