"""``GET /health``: each component's status; 503 when one is down. No credentials needed (for probes)."""

from fastapi import APIRouter, Depends, Response, status

from tocsin.api.deps import get_service
from tocsin.api.models import Health
from tocsin.api.service import Service

router = APIRouter(tags=["operations"])


@router.get("/health", response_model=Health, responses={503: {"model": Health, "description": "a component is down"}})
def health(response: Response, service: Service = Depends(get_service)) -> dict:
    """store, broker (the in-process event queue), cache, model. `warming_up` and `not_configured` are not
    degraded; `down` is, and makes the answer 503."""
    report = service.health()
    if report["status"] != "ok":
        response.status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    return report
