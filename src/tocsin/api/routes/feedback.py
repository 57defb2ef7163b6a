"""``POST /v1/feedback``: a person's verdict on an anomaly."""

from fastapi import APIRouter, Depends

from tocsin.api.auth import Principal, analyst
from tocsin.api.deps import get_service, not_found, responses
from tocsin.api.models import FeedbackIn, FeedbackOut
from tocsin.api.service import NotFound, Service

router = APIRouter(prefix="/v1", tags=["feedback"])


@router.post("/feedback", response_model=FeedbackOut, responses=responses(401, 403, 404, 413))
def give_feedback(body: FeedbackIn, principal: Principal = Depends(analyst), service: Service = Depends(get_service)) -> dict:
    """Mark an anomaly a true or a false positive (sets its label; every call is stored with its author)."""
    try:
        return service.feedback(body.event_id, body.label, body.note, principal)
    except NotFound as error:
        raise not_found(error) from None
