"""``GET /v1/stats``: the live overview's numbers."""

from fastapi import APIRouter, Depends

from tocsin.api.auth import viewer
from tocsin.api.deps import READ, get_service
from tocsin.api.models import Stats
from tocsin.api.service import Service

router = APIRouter(prefix="/v1", tags=["overview"])


@router.get("/stats", response_model=Stats, responses=READ, dependencies=[Depends(viewer)])
def stats(service: Service = Depends(get_service)) -> dict:
    """Events, events/s, anomaly rate, anomalies and alerts by severity, alerts by status, per-second series."""
    return service.stats()
