"""``GET /v1/vocabulary``: what the pipeline calls its entities and its label (hosts and incidents, cards and fraud)."""

from fastapi import APIRouter, Depends

from tocsin.api.auth import viewer
from tocsin.api.deps import READ, get_service
from tocsin.api.models import Vocabulary
from tocsin.api.service import Service

router = APIRouter(prefix="/v1", tags=["overview"])


@router.get("/vocabulary", response_model=Vocabulary, responses=READ, dependencies=[Depends(viewer)])
def vocabulary(service: Service = Depends(get_service)) -> dict:
    """The entity and label words of the pipeline's schema, and the metrics it models as series (the dashboard's words)."""
    return service.vocabulary()
