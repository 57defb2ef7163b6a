"""``GET /v1/entities/{key}``: an entity's feature state, recent events and anomalies."""

from fastapi import APIRouter, Depends, Path, Query

from tocsin.api.auth import Principal, viewer
from tocsin.api.deps import get_service, not_found, responses
from tocsin.api.models import Entity
from tocsin.api.service import NotFound, Service

router = APIRouter(prefix="/v1", tags=["entities"])


@router.get("/entities/{key}", response_model=Entity, responses=responses(401, 403, 404))
def get_entity(
    key: str = Path(..., max_length=255),
    limit: int = Query(200, ge=1, le=5_000, description="most recent events to return"),
    principal: Principal = Depends(viewer),
    service: Service = Depends(get_service),
) -> dict:
    try:
        return service.entity(key, principal, limit=limit)
    except NotFound as error:
        raise not_found(error) from None
