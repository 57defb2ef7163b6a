"""API keys (admin): create, list, revoke. Only hashes are stored; a key is shown once."""

from fastapi import APIRouter, Depends, Path, Request, status

from tocsin.api.auth import Principal, admin, current_principal
from tocsin.api.deps import READ, not_found, responses
from tocsin.api.models import KeyCreate, KeyCreated, KeyInfo, RoleName

from pydantic import BaseModel

router = APIRouter(prefix="/v1", tags=["admin"])


class WhoAmI(BaseModel):
    subject: str
    role: RoleName
    method: str


@router.get("/whoami", response_model=WhoAmI, responses=responses(401), tags=["session"])
def whoami(principal: Principal = Depends(current_principal)) -> dict:
    """The caller's identity and role (the dashboard uses it to show or hide actions)."""
    return {"subject": principal.subject, "role": principal.role.name, "method": principal.method}


@router.get("/keys", response_model=list[KeyInfo], responses=READ, dependencies=[Depends(admin)])
def list_keys(request: Request) -> list[dict]:
    return request.app.state.auth.keys.list()


@router.post("/keys", status_code=status.HTTP_201_CREATED, response_model=KeyCreated, responses=responses(401, 403, 413), dependencies=[Depends(admin)])
def create_key(body: KeyCreate, request: Request) -> dict:
    key, record = request.app.state.auth.keys.create(body.role, body.name)
    return {**{k: v for k, v in record.items() if k != "hash"}, "key": key}


@router.delete("/keys/{key_id}", status_code=status.HTTP_204_NO_CONTENT, responses=responses(401, 403, 404), dependencies=[Depends(admin)])
def revoke_key(request: Request, key_id: str = Path(..., max_length=64)) -> None:
    if not request.app.state.auth.keys.revoke(key_id):
        raise not_found(LookupError(f"no key {key_id!r}"))
