"""Where results, state and figures go, and how work is batched: the ``store``, ``checkpoint``,
``runner``, ``stream`` and ``metrics`` sections."""

from __future__ import annotations

from pathlib import Path

from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from tocsin.durations import Duration
from tocsin.spec.base import SpecModel


class StoreSpec(SpecModel):
    url: str = Field("sqlite:///tocsin.db", description="SQLAlchemy URL; env TOCSIN_STORE_URL overrides")
    scored_events: bool = Field(False, description="also store every scored event, not only anomalies")


class CheckpointSpec(SpecModel):
    dir: Path = Path(".tocsin/checkpoints")
    interval: Duration = 10.0


class RunnerSpec(SpecModel):
    batch_size: int = Field(5_000, ge=1, le=1_000_000)
    max_wait: Duration = 0.1


class StreamSettings(SpecModel):
    """Where a streaming worker keeps checkpoints and the entity cache, and how it rides out outages."""

    checkpoint_url: str | None = Field(
        None,
        description="a directory (default: the spec's checkpoint.dir), redis://host:port/db or a SQLAlchemy URL "
        "(postgresql+psycopg://…, sqlite:///…); env TOCSIN_CHECKPOINT_URL",
    )
    cache_url: str | None = Field(None, description="redis:// URL of the entity-state cache; null: no cache; env TOCSIN_REDIS_URL")
    retry_initial: float = Field(0.2, gt=0, description="first back-off after a failed sink or store write, seconds")
    retry_max: float = Field(5.0, gt=0, description="back-off cap, seconds; retries go on until the write succeeds")
    health_path: Path | None = Field(None, description="where the worker writes its health JSON (atomically, on change)")

    @field_validator("retry_max")
    @classmethod
    def _cap_above_initial(cls, value: float, info: Any) -> float:
        initial = info.data.get("retry_initial", 0.2)
        if value < initial:
            raise ValueError(f"retry_max ({value}) must be >= retry_initial ({initial})")
        return value


class MetricsSpec(SpecModel):
    """Prometheus metrics of processes without the HTTP API (``tocsin run``, Kafka workers).

    ``tocsin serve`` exports them at its own ``/metrics``; the others serve them on
    ``port`` when it is set (worker *i* of ``--workers N`` on ``port + i``)."""

    host: str = Field("127.0.0.1", description="address the metrics endpoint binds")
    port: int | None = Field(None, ge=0, le=65535, description="serve /metrics here; null: off; env TOCSIN_METRICS_PORT")


class RegistrySpec(SpecModel):
    """Where model versions live (``tocsin train`` writes them, ``tocsin models`` promotes them) and
    whether running drivers follow the ``champion`` alias (hot reload at a batch boundary)."""

    kind: Literal["store", "mlflow"] = Field(
        "store", description="store: versions in the store's database (or `url`); mlflow: an MLflow tracking server")
    url: str | None = Field(None, description="store registry: SQLAlchemy URL of its database (default: store.url)")
    tracking_uri: str | None = Field(None, description="mlflow registry: the tracking server (http://host:5000); env MLFLOW_TRACKING_URI")
    artifacts: str | None = Field(None, description="mlflow registry: where new experiments put artifacts (default: the server's)")
    follow: bool = Field(True, description="running drivers install the champion when it changes (and score the challenger in shadow)")
    poll_interval: Duration = Field(2.0, description="how often a running driver asks the registry which versions the aliases name")

    @model_validator(mode="after")
    def _mlflow_needs_a_server(self) -> RegistrySpec:
        if self.kind == "mlflow" and not self.tracking_uri:
            import os

            if not os.environ.get("MLFLOW_TRACKING_URI"):
                raise ValueError("kind mlflow needs tracking_uri (or env MLFLOW_TRACKING_URI): the MLflow server's URL")
        return self
