"""Admin views of the pipeline and its model."""

from fastapi import APIRouter, Depends

from tocsin.api.auth import admin
from tocsin.api.deps import READ, get_service
from tocsin.api.models import ModelInfo, PipelineInfo
from tocsin.api.service import Service

router = APIRouter(prefix="/v1", tags=["admin"], dependencies=[Depends(admin)])


@router.get("/pipelines", response_model=list[PipelineInfo], responses=READ)
def list_pipelines(service: Service = Depends(get_service)) -> list[dict]:
    """The pipelines this service runs (one): schema, features, model status, thresholds."""
    return [service.pipeline_info()]


@router.get("/models", response_model=list[ModelInfo], responses=READ)
def list_models(service: Service = Depends(get_service)) -> list[dict]:
    """The model in use: detector, version (number of fits), warm-up status."""
    return [service.model_info()]
