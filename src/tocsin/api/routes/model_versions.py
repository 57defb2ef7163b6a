"""Model versions in the pipeline's registry, for admins: list, one, promote (champion/challenger), roll back,
the challenger's shadow comparison and the running model's drift.
``GET /v1/models`` (the model scoring now) stays in :mod:`tocsin.api.routes.pipelines`."""

from fastapi import APIRouter, Depends, HTTPException, Path, Query, status

from tocsin.api.auth import Principal, admin
from tocsin.api.deps import READ, ErrorOut, get_service, not_found, responses
from tocsin.api.models import AliasMove, AliasName, ModelComparison, ModelDrift, ModelVersionInfo
from tocsin.api.service import Service
from tocsin.registry import RegistryError, UnknownVersion

router = APIRouter(prefix="/v1/models", tags=["admin"], dependencies=[Depends(admin)])
VersionNumber = Path(..., ge=1, le=2**31 - 1, description="the version's number")
Alias = Query("champion", description="champion (scores live) or challenger (scores in shadow)")
CONFLICT = {409: {"model": ErrorOut, "description": "the registry refused: e.g. nothing earlier to roll back to"}}


def conflict(error: RegistryError) -> HTTPException:
    return HTTPException(status.HTTP_409_CONFLICT, detail=str(error))


@router.get("/versions", response_model=list[ModelVersionInfo], responses=READ)
def list_versions(service: Service = Depends(get_service)) -> list[dict]:
    """Every registered version of this pipeline, oldest first, with its aliases, metrics and training range."""
    return service.model_versions()


@router.get("/versions/{version}", response_model=ModelVersionInfo, responses=responses(401, 403, 404))
def get_version(version: int = VersionNumber, service: Service = Depends(get_service)) -> dict:
    try:
        return service.model_version(version)
    except UnknownVersion as error:
        raise not_found(error) from None


@router.post("/versions/{version}/promote", response_model=AliasMove, responses={**responses(401, 403, 404), **CONFLICT})
def promote(version: int = VersionNumber, alias: AliasName = Alias, principal: Principal = Depends(admin),
            service: Service = Depends(get_service)) -> dict:
    """Point the alias at this version (recorded with who and when); drivers following the registry switch at a batch boundary."""
    try:
        return service.promote_model(version, alias, principal)
    except UnknownVersion as error:
        raise not_found(error) from None
    except RegistryError as error:
        raise conflict(error) from None


@router.post("/rollback", response_model=AliasMove, responses={**responses(401, 403), **CONFLICT})
def rollback(alias: AliasName = Alias, principal: Principal = Depends(admin), service: Service = Depends(get_service)) -> dict:
    """Point the alias back at the version it named before its latest promotion; 409 when there is none."""
    try:
        return service.rollback_model(alias, principal)
    except RegistryError as error:
        raise conflict(error) from None


@router.get("/compare", response_model=ModelComparison, responses=responses(401, 403, 404))
def compare(challenger: int | None = Query(None, ge=1, le=2**31 - 1, description="a version (default: the latest challenger that scored)"),
            service: Service = Depends(get_service)) -> dict:
    """What the challenger saw in shadow beside the champion over the same events: both score distributions,
    the overlap of their anomalies, precision/recall where events had labels; 404 before it scored."""
    compared = service.model_comparison(challenger)
    if compared is None:
        raise not_found(LookupError("no events scored by a challenger in shadow yet: promote a version as challenger"))
    return compared


@router.get("/drift", response_model=ModelDrift, responses=READ)
def drift(service: Service = Depends(get_service)) -> dict:
    """PSI and KS of each scored feature and of the score against the running model's training rows, worst first."""
    return service.model_drift()
