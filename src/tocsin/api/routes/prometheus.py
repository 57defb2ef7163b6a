"""``GET /metrics``: Prometheus text format. No credentials needed (scrape it from a trusted network)."""

from fastapi import APIRouter, Depends, Response

from tocsin.api.deps import get_service
from tocsin.api.metrics import CONTENT_TYPE
from tocsin.api.service import Service

router = APIRouter(tags=["operations"])


@router.get("/metrics", response_class=Response, responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}}}})
def metrics(service: Service = Depends(get_service)) -> Response:
    return Response(service.metrics.render(), media_type=CONTENT_TYPE)
