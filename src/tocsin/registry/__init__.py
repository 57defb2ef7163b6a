"""Model versions and the aliases that say which one scores: see :mod:`tocsin.registry.base`."""

from __future__ import annotations

import os

from tocsin.registry.base import (
    ALIASES,
    CHALLENGER,
    CHAMPION,
    AliasChange,
    ModelVersion,
    Registry,
    RegistryError,
    UnknownVersion,
    check_alias,
    model_sections,
    pack_arrays,
    spec_hash,
    unpack_arrays,
)
from tocsin.spec import PipelineSpec


def open_registry(spec: PipelineSpec) -> Registry:
    """The registry ``spec.registry`` names: ``store`` (the tables beside the results, in ``registry.url`` or
    else ``store.url``) or ``mlflow`` (the tracking server at ``registry.tracking_uri``, else env
    ``MLFLOW_TRACKING_URI``; needs ``pip install 'tocsin[mlflow]'``)."""
    settings = spec.registry
    if settings.kind == "mlflow":
        from tocsin.registry.mlflow import MlflowRegistry

        tracking_uri = settings.tracking_uri or os.environ.get("MLFLOW_TRACKING_URI")
        if not tracking_uri:
            raise RegistryError("registry kind mlflow needs registry.tracking_uri (or env MLFLOW_TRACKING_URI): the MLflow server's URL")
        return MlflowRegistry(tracking_uri, artifacts=settings.artifacts)
    from tocsin.registry.store import StoreRegistry

    return StoreRegistry(settings.url or spec.store.url)


__all__ = ["ALIASES", "CHALLENGER", "CHAMPION", "AliasChange", "ModelVersion", "Registry", "RegistryError", "UnknownVersion",
           "check_alias", "model_sections", "open_registry", "pack_arrays", "spec_hash", "unpack_arrays"]
