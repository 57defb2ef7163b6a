"""The HTTP service: FastAPI app, auth, routes, dashboard, metrics (see :mod:`tocsin.api.app`)."""

from tocsin.api.app import create_app
from tocsin.api.auth import AuthConfig, KeyStore, Role
from tocsin.api.service import Service

__all__ = ["AuthConfig", "KeyStore", "Role", "Service", "create_app"]
