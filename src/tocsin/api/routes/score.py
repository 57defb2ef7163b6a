"""``POST /v1/score``: score events now, through the pipeline (state updated)."""

from fastapi import APIRouter, Depends, HTTPException, Response, status

from tocsin.api.auth import analyst
from tocsin.api.deps import MsgspecRoute, fast_json, get_service, responses, validation_error
from tocsin.api.models import EventsIn, ScoreResponse
from tocsin.api.inbox import Unavailable
from tocsin.api.service import NotAccepting, Service

router = APIRouter(prefix="/v1", tags=["scoring"], route_class=MsgspecRoute)


@router.post("/score", response_model=ScoreResponse, responses=responses(401, 403, 409, 413, 503), dependencies=[Depends(analyst)])
def score(body: EventsIn, service: Service = Depends(get_service)) -> Response:
    """Score one event (`event`) or up to 10,000 (`events`) synchronously, in order.

    Each event comes back with its calibrated score (0-1 and 0-100), `is_anomaly`, severity and
    explanation. Invalid events come back as `status="dead_letter"` with the reason while the others
    are scored; the answer is 422 only when every event is invalid. While the detector is warming up
    (its first `detector.warmup_events` events) events are learned from but not scored:
    `status="warming_up"`, `score=null`, `is_anomaly=false`. Anomalies are stored (see `GET /v1/anomalies`).
    503 when outputs cannot be stored now: nothing was accepted, or (the detail says so) the events are
    journaled and will be stored when the store recovers.
    """
    records = body.records()
    try:
        result = service.score(records)
    except NotAccepting as error:
        raise HTTPException(status.HTTP_409_CONFLICT, detail=str(error)) from None
    except Unavailable as error:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, detail=str(error), headers={"Retry-After": "1"}) from None
    if result["dead_letters"] == len(records):
        first = result["results"][0]
        loc = ["body", "event"] if body.event is not None else ["body", "events", 0]
        raise validation_error(loc, f"every event is invalid; the first: {first['reason']}", "dead_letter")
    return fast_json(result)
