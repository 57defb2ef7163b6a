"""``POST /v1/events``: accept events for asynchronous processing by the service's runner thread."""

from fastapi import APIRouter, Depends, HTTPException, status

from tocsin.api.auth import analyst
from tocsin.api.deps import MsgspecRoute, get_service, responses
from tocsin.api.models import EventsAccepted, EventsIn
from tocsin.api.inbox import QueueFull, Unavailable
from tocsin.api.service import NotAccepting, Service

router = APIRouter(prefix="/v1", tags=["scoring"], route_class=MsgspecRoute)


@router.post(
    "/events", status_code=status.HTTP_202_ACCEPTED, response_model=EventsAccepted,
    responses=responses(401, 403, 409, 413, 503), dependencies=[Depends(analyst)],
)
def accept_events(body: EventsIn, service: Service = Depends(get_service)) -> dict:
    """Queue events (one or up to 10,000) for the pipeline; 202 with their ids. Outputs land in the
    store like a stream's: anomalies, alerts and dead letters. The events are journaled (durable) before
    the answer, whose `position` is their place in the order events are folded in. 503 (nothing journaled)
    when the queue is full or outputs cannot be stored now (the store is down)."""
    try:
        return service.accept(body.records())
    except (QueueFull, Unavailable) as error:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, detail=str(error), headers={"Retry-After": "1"}) from None
    except NotAccepting as error:
        raise HTTPException(status.HTTP_409_CONFLICT, detail=str(error)) from None
