"""Who may call what: API keys and JWT bearer tokens, each carrying one role.

Roles are ordered, each including the ones below it:

- ``viewer``: read anomalies, alerts, entities, stats;
- ``analyst``: also acknowledge/resolve alerts and give feedback;
- ``admin``: also pipelines, models and API keys.

Credentials, checked in this order:

- ``X-API-Key: tsk_<id>_<secret>`` or ``Authorization: Bearer tsk_<id>_<secret>``.
  Keys are stored hashed (SHA-256 of a 32-byte random secret: the secret has
  full entropy, so a slow password hash would add latency to every request and
  no safety), in a JSON file; ``tocsin keys create --role R`` prints a new key
  once and stores only its hash.
- ``Authorization: Bearer <JWT>``: HS256 (or the configured algorithms) signed
  with ``jwt_secret``; ``exp`` and ``role`` claims are required.

Missing or bad credentials are 401, a valid credential with too small a role is
403. With ``enabled=False`` every request acts as ``admin``; that is allowed
only on a loopback address (:func:`check_bind`).
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import json
import os
import secrets
import threading
import time
from dataclasses import dataclass, field
from enum import IntEnum
from pathlib import Path
from typing import Any

import jwt
from fastapi import Depends, HTTPException, Request, status
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer

KEY_PREFIX = "tsk_"
DEFAULT_KEYS_FILE = Path(".tocsin/api-keys.json")


class Role(IntEnum):
    viewer = 1
    analyst = 2
    admin = 3


ROLE_NAMES = tuple(r.name for r in Role)


def parse_role(name: str) -> Role:
    try:
        return Role[name]
    except KeyError:
        raise ValueError(f"role: {name!r} is not one of {list(ROLE_NAMES)}") from None


@dataclass(frozen=True)
class Principal:
    """The caller of a request."""

    subject: str
    role: Role
    method: str  # "api_key" | "jwt" | "none"

    def can(self, role: Role) -> bool:
        return self.role >= role


class KeyStore:
    """API keys in a JSON file: ``{"keys": [{id, role, hash, name, created_at}]}``; secrets never stored."""

    def __init__(self, path: Path | str | None = None) -> None:
        self.path = Path(path) if path is not None else None
        self._lock = threading.Lock()
        self._keys: dict[str, dict[str, Any]] = {}
        self._mtime: float | None = None
        self._reload()

    def _reload(self) -> None:
        if self.path is None or not self.path.exists():
            return
        mtime = self.path.stat().st_mtime
        if mtime == self._mtime:
            return
        data = json.loads(self.path.read_text() or "{}")
        self._keys = {k["id"]: k for k in data.get("keys", [])}
        self._mtime = mtime

    def _save(self) -> None:
        if self.path is None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps({"keys": list(self._keys.values())}, indent=2))
        os.chmod(tmp, 0o600)
        tmp.replace(self.path)
        self._mtime = self.path.stat().st_mtime

    def create(self, role: Role | str, name: str = "") -> tuple[str, dict[str, Any]]:
        """A new key: returns (the key, to show once, its stored record)."""
        role = parse_role(role) if isinstance(role, str) else role
        key_id = secrets.token_hex(6)
        secret = secrets.token_urlsafe(32)
        record = {
            "id": key_id,
            "role": role.name,
            "name": name,
            "hash": _hash(secret),
            "created_at": time.time(),
        }
        with self._lock:
            self._reload()
            self._keys[key_id] = record
            self._save()
        return f"{KEY_PREFIX}{key_id}_{secret}", record

    def revoke(self, key_id: str) -> bool:
        with self._lock:
            self._reload()
            found = self._keys.pop(key_id, None) is not None
            if found:
                self._save()
        return found

    def list(self) -> list[dict[str, Any]]:
        with self._lock:
            self._reload()
            return [{k: v for k, v in record.items() if k != "hash"} for record in self._keys.values()]

    def verify(self, key: str) -> Principal | None:
        if not key.startswith(KEY_PREFIX):
            return None
        key_id, sep, secret = key[len(KEY_PREFIX):].partition("_")
        if not sep:
            return None
        with self._lock:
            self._reload()
            record = self._keys.get(key_id)
        if record is None or not hmac.compare_digest(record["hash"], _hash(secret)):
            return None
        return Principal(subject=f"key:{key_id}", role=Role[record["role"]], method="api_key")


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


@dataclass
class AuthConfig:
    """How the service authenticates. ``enabled=False`` makes every caller an admin (loopback only)."""

    enabled: bool = True
    keys: KeyStore = field(default_factory=KeyStore)
    jwt_secret: str | None = None
    jwt_algorithms: tuple[str, ...] = ("HS256",)
    jwt_audience: str | None = None
    jwt_issuer: str | None = None

    @classmethod
    def from_env(cls, keys_file: Path | str | None = None, enabled: bool = True) -> AuthConfig:
        """Keys from ``keys_file`` (or env ``TOCSIN_API_KEYS_FILE``, or .tocsin/api-keys.json); JWT secret from ``TOCSIN_JWT_SECRET``."""
        path = keys_file or os.environ.get("TOCSIN_API_KEYS_FILE") or DEFAULT_KEYS_FILE
        return cls(enabled=enabled, keys=KeyStore(path), jwt_secret=os.environ.get("TOCSIN_JWT_SECRET") or None)

    def issue_jwt(self, subject: str, role: Role | str, ttl_s: float = 3600.0) -> str:
        """A signed token (for tests and for issuing tokens from trusted tooling)."""
        if not self.jwt_secret:
            raise ValueError("jwt_secret is not set")
        role = parse_role(role) if isinstance(role, str) else role
        claims: dict[str, Any] = {"sub": subject, "role": role.name, "exp": int(time.time() + ttl_s), "iat": int(time.time())}
        if self.jwt_audience:
            claims["aud"] = self.jwt_audience
        if self.jwt_issuer:
            claims["iss"] = self.jwt_issuer
        return jwt.encode(claims, self.jwt_secret, algorithm=self.jwt_algorithms[0])

    def verify_jwt(self, token: str) -> Principal | None:
        if not self.jwt_secret:
            return None
        try:
            claims = jwt.decode(
                token,
                self.jwt_secret,
                algorithms=list(self.jwt_algorithms),
                audience=self.jwt_audience,
                issuer=self.jwt_issuer,
                options={"require": ["exp", "role"]},
            )
        except jwt.PyJWTError:
            return None
        role = claims.get("role")
        if role not in ROLE_NAMES:
            return None
        return Principal(subject=str(claims.get("sub", "jwt")), role=Role[role], method="jwt")

    def authenticate(self, api_key: str | None, bearer: str | None) -> Principal | None:
        if not self.enabled:
            return Principal(subject="anonymous", role=Role.admin, method="none")
        if api_key:
            return self.keys.verify(api_key)
        if bearer:
            if bearer.startswith(KEY_PREFIX):
                return self.keys.verify(bearer)
            return self.verify_jwt(bearer)
        return None


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_bind(host: str, auth: AuthConfig) -> None:
    """Refuse to serve without authentication on anything but a loopback address."""
    if not auth.enabled and not is_loopback(host):
        raise ValueError(
            f"refusing to bind {host} with authentication switched off: anyone who can reach that address "
            "could read and change alerts. Bind 127.0.0.1 (the default), or keep auth on and create keys "
            "with `tocsin keys create --role viewer|analyst|admin`."
        )


# --- FastAPI dependencies ---------------------------------------------------------

_api_key_header = APIKeyHeader(name="X-API-Key", auto_error=False, description="an API key: tsk_<id>_<secret>")
_bearer = HTTPBearer(auto_error=False, description="a JWT with a `role` claim, or an API key")


def _unauthorized(detail: str) -> HTTPException:
    return HTTPException(status.HTTP_401_UNAUTHORIZED, detail=detail, headers={"WWW-Authenticate": "Bearer"})


async def current_principal(
    request: Request,
    api_key: str | None = Depends(_api_key_header),
    bearer: HTTPAuthorizationCredentials | None = Depends(_bearer),
) -> Principal:
    auth: AuthConfig = request.app.state.auth
    if auth.enabled and not api_key and bearer is None:
        raise _unauthorized("missing credentials: send X-API-Key or Authorization: Bearer")
    principal = auth.authenticate(api_key, bearer.credentials if bearer else None)
    if principal is None:
        raise _unauthorized("invalid or expired credentials")
    request.state.principal = principal
    return principal


def require(role: Role):
    """A dependency that admits callers whose role is at least ``role`` (403 otherwise)."""

    async def dependency(principal: Principal = Depends(current_principal)) -> Principal:
        if not principal.can(role):
            raise HTTPException(
                status.HTTP_403_FORBIDDEN, detail=f"this needs the {role.name} role; your credentials carry {principal.role.name}"
            )
        return principal

    dependency.__name__ = f"require_{role.name}"
    return dependency


viewer = require(Role.viewer)
analyst = require(Role.analyst)
admin = require(Role.admin)
