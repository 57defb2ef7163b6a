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
  with ``jwt_secret`` (at least 32 bytes); ``exp`` and ``role`` claims are
  required, and ``aud``/``iss`` when an audience/issuer is configured.

Missing or bad credentials are 401, a valid credential with too small a role is
403; credentials are checked from the headers before a request body is read
(``RequestGuard`` in :mod:`tocsin.api.app`), and an address with too many failed
attempts gets 429 without its credentials being checked (:class:`FailureThrottle`).
With ``enabled=False`` every request acts as ``admin``; that is allowed only on a
loopback address (:func:`check_bind`), answering only to loopback ``Host`` names and
refusing cross-origin writes (:func:`loopback_host`, :func:`same_origin`).
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
from collections import OrderedDict, deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from enum import IntEnum
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import jwt
from fastapi import Depends, HTTPException, Request, status
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer

KEY_PREFIX = "tsk_"
DEFAULT_KEYS_FILE = Path(".tocsin/api-keys.json")
MIN_JWT_SECRET_BYTES = 32


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

    def __post_init__(self) -> None:
        # an HMAC secret shorter than the hash is guessable offline from any one token
        hmac_algorithms = [a for a in self.jwt_algorithms if a.startswith("HS")]
        if self.jwt_secret is not None and hmac_algorithms and len(self.jwt_secret.encode()) < MIN_JWT_SECRET_BYTES:
            raise ValueError(
                f"TOCSIN_JWT_SECRET is {len(self.jwt_secret.encode())} bytes; {'/'.join(hmac_algorithms)} needs at least "
                f"{MIN_JWT_SECRET_BYTES} bytes of secret. Set it to a random one, e.g. "
                "`python -c 'import secrets; print(secrets.token_urlsafe(48))'`, or unset it to use API keys only."
            )

    @classmethod
    def from_env(cls, keys_file: Path | str | None = None, enabled: bool = True) -> AuthConfig:
        """Keys from ``keys_file`` (or env ``TOCSIN_API_KEYS_FILE``, or .tocsin/api-keys.json); JWT secret from
        ``TOCSIN_JWT_SECRET`` (at least 32 bytes), required ``aud`` and ``iss`` claims from ``TOCSIN_JWT_AUDIENCE``
        and ``TOCSIN_JWT_ISSUER``."""
        path = keys_file or os.environ.get("TOCSIN_API_KEYS_FILE") or DEFAULT_KEYS_FILE
        return cls(enabled=enabled, keys=KeyStore(path), jwt_secret=os.environ.get("TOCSIN_JWT_SECRET") or None,
                   jwt_audience=os.environ.get("TOCSIN_JWT_AUDIENCE") or None, jwt_issuer=os.environ.get("TOCSIN_JWT_ISSUER") or None)

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

    def authenticate_headers(self, headers: Iterable[tuple[bytes, bytes]]) -> Principal | None:
        """:meth:`authenticate` from raw ASGI headers (before the body is read): ``X-API-Key``, or an
        ``Authorization: Bearer`` token; None when they are missing or refused."""
        api_key = bearer = None
        for name, value in headers:
            if name == b"x-api-key":
                api_key = value.decode("latin-1")
            elif name == b"authorization":
                scheme, _, token = value.decode("latin-1").partition(" ")
                if scheme.lower() == "bearer" and token.strip():
                    bearer = token.strip()
        if self.enabled and not api_key and not bearer:
            return None
        return self.authenticate(api_key, bearer)


def has_credentials(headers: Iterable[tuple[bytes, bytes]]) -> bool:
    """Whether the request presents any credential (a refused one counts as a failed attempt; none, not)."""
    return any(name == b"x-api-key" or (name == b"authorization" and value[:7].lower() == b"bearer ") for name, value in headers)


class FailureThrottle:
    """Failed authentications per client address: after ``limit`` failures within ``window`` seconds
    the address gets 429 (Retry-After) without its credentials being checked, until the oldest of
    those failures is ``window`` old. Successes are not counted. At most ``max_addresses`` are tracked
    (the least recently failing go first), so a flood from many addresses cannot grow it."""

    def __init__(self, limit: int = 20, window: float = 10.0, max_addresses: int = 10_000,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.limit, self.window, self.max_addresses, self.clock = limit, window, max_addresses, clock
        self._failures: OrderedDict[str, deque[float]] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._failures)

    def retry_after(self, address: str) -> int | None:
        """Seconds until ``address`` may try again, or None when it is not throttled."""
        with self._lock:
            failures = self._failures.get(address)
            if failures is None or len(failures) < self.limit:
                return None
            wait = failures[0] + self.window - self.clock()
        return max(1, int(wait + 0.999)) if wait > 0 else None

    def failed(self, address: str) -> None:
        with self._lock:
            failures = self._failures.pop(address, None) or deque(maxlen=self.limit)
            failures.append(self.clock())
            self._failures[address] = failures  # most recently failing last
            while len(self._failures) > self.max_addresses:
                self._failures.popitem(last=False)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _host_and_port(netloc: str, default_port: int) -> tuple[str, int] | None:
    """(host, port) of ``host[:port]`` (IPv6 in brackets); None when it does not parse."""
    try:
        parts = urlsplit(f"//{netloc}")
        host, port = parts.hostname, parts.port
    except ValueError:
        return None
    if not host or parts.username is not None or parts.path:
        return None
    return host, port if port is not None else default_port


def loopback_host(host_header: str) -> bool:
    """Whether a ``Host`` header names this machine (localhost, 127.0.0.1, [::1], any port): without auth,
    a name that resolves here only through DNS rebinding (evil.example → 127.0.0.1) must get nothing."""
    parsed = _host_and_port(host_header, 80)
    return parsed is not None and is_loopback(parsed[0])


def same_origin(origin: str, host_header: str) -> bool:
    """Whether a browser's ``Origin`` (or ``Referer``) is the page this server itself served: a loopback
    origin with the same host and port as the request's ``Host``."""
    try:
        parts = urlsplit(origin)
    except ValueError:
        return False
    default = {"http": 80, "https": 443}.get(parts.scheme)
    if default is None:
        return False
    theirs, ours = _host_and_port(parts.netloc, default), _host_and_port(host_header, default)
    return theirs is not None and theirs == ours and is_loopback(theirs[0])


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
    checked = request.scope.get("state", {}).get("principal")
    if checked is not None:  # RequestGuard checked the headers before the body was read
        return checked
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
