"""The model registry contract: versions of a pipeline's model, aliases that point at them, their arrays.

A **model version** is what a pipeline learned, frozen: the detector's state, the
calibration reference and the threshold, plus what it was trained for (the spec's
``features`` and ``detector`` sections and their hash, the feature names in
order), on what (event-time range, rows), how well (metrics on a held-out tail),
by whom and when. It does not hold per-entity feature state: that belongs to the
stream and stays when a model is swapped.

An **alias** names the version a role uses: ``champion`` scores live, ``challenger``
scores in shadow. Setting an alias is recorded with who and when, so ``rollback``
can point it back at the version it named before.

Backends: :class:`~tocsin.registry.store.StoreRegistry` (built in: versions, aliases
and arrays in the store's database, SQLite or PostgreSQL) and
:class:`~tocsin.registry.mlflow.MlflowRegistry` (an MLflow tracking server: a run
per version with params and metrics, the model registered under the pipeline's
name, MLflow's own aliases). Both are checked by one contract test
(``tests/registry/_contract.py``).

The invariant the drivers rely on: a version's arrays never change once
registered (a version number means one model for ever), and ``alias(name)``
answers quickly (the drivers poll it every few seconds).
"""

from __future__ import annotations

import hashlib
import io
import json
import time
from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from tocsin.spec import PipelineSpec

#: the aliases drivers follow
CHAMPION, CHALLENGER = "champion", "challenger"
ALIASES = (CHAMPION, CHALLENGER)


class RegistryError(RuntimeError):
    """A version, an alias or a backend that is not there; the message says which and what to do."""


class UnknownVersion(RegistryError, LookupError):
    """No such version of that pipeline (the API answers 404; other registry errors are 409)."""


def unknown_version(pipeline: str, version: int, known: list[int]) -> UnknownVersion:
    """The error for a version that is not there, listing those that are."""
    return UnknownVersion(f"pipeline {pipeline!r} has no model version {version}; versions: {known or 'none yet (tocsin train)'}")


def check_alias(name: str) -> str:
    """``name`` if drivers follow it (:data:`ALIASES`), else :class:`RegistryError` naming the choices."""
    if name not in ALIASES:
        raise RegistryError(f"alias {name!r}: use one of {list(ALIASES)}")
    return name


def model_sections(spec: PipelineSpec) -> dict[str, Any]:
    """The parts of a spec a model depends on: a model trained for one set of them cannot score another."""
    return {
        "features": [feature.model_dump(mode="json") for feature in spec.features],
        "detector": spec.detector.model_dump(mode="json", include={"kind", "params", "features"}),
        "schema": spec.event_schema.model_dump(mode="json", include={"key_field", "numeric", "categorical"}),
    }


def spec_hash(spec: PipelineSpec) -> str:
    """A short stable hash of :func:`model_sections` (the same sections, the same hash, on every machine)."""
    text = json.dumps(model_sections(spec), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class ModelVersion:
    """A registered (or about to be registered: ``version`` 0) model version's description."""

    pipeline: str
    spec_hash: str
    feature_names: list[str]
    detector: str
    sections: dict[str, Any]
    trained_from: float | None
    trained_until: float | None
    rows: int
    metrics: dict[str, float | None]
    tocsin_version: str
    created_by: str
    created_at: float = field(default_factory=time.time)
    version: int = 0
    #: the aliases pointing at it (filled in when read back)
    aliases: tuple[str, ...] = ()
    note: str = ""

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["aliases"] = list(self.aliases)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelVersion:
        known = {name for name in cls.__dataclass_fields__}
        values = {k: v for k, v in data.items() if k in known}
        values["aliases"] = tuple(values.get("aliases") or ())
        return cls(**values)


def plain_metrics(metrics: dict[str, Any]) -> dict[str, float | None]:
    """Metrics as JSON can carry them: floats, with None for a missing or non-finite value (NaN is not JSON)."""
    plain: dict[str, float | None] = {}
    for name, value in metrics.items():
        number = None if value is None else float(value)
        plain[str(name)] = number if number is not None and np.isfinite(number) else None
    return plain


def pack_arrays(arrays: dict[str, np.ndarray]) -> bytes:
    """A version's arrays as one ``.npz`` blob (no pickle: object arrays are refused)."""
    for name, value in arrays.items():
        if np.asarray(value).dtype.hasobject:
            raise TypeError(f"model array {name!r}: object arrays cannot be stored (they would need pickle)")
    buffer = io.BytesIO()
    np.savez(buffer, **{f"a{i}": np.asarray(v) for i, v in enumerate(arrays.values())},
             __names__=np.asarray(json.dumps(list(arrays))))
    return buffer.getvalue()


def unpack_arrays(blob: bytes) -> dict[str, np.ndarray]:
    with np.load(io.BytesIO(blob), allow_pickle=False) as npz:
        names = json.loads(str(npz["__names__"][()]))
        return {name: npz[f"a{i}"] for i, name in enumerate(names)}


@dataclass(frozen=True)
class AliasChange:
    """One setting of an alias: a promotion, or a rollback (the history ``rollback`` walks back)."""

    alias: str
    version: int | None
    at: float
    by: str
    kind: str = "promote"


class Registry(ABC):
    """Where model versions live. Backends implement storage; promotion and rollback are shared."""

    # --- storage (backends) ------------------------------------------------------------

    @abstractmethod
    def register(self, version: ModelVersion, arrays: dict[str, np.ndarray]) -> ModelVersion:
        """Store a new version (``version.version`` is ignored) and its arrays; the stored version,
        numbered 1, 2, 3… per pipeline."""

    @abstractmethod
    def versions(self, pipeline: str) -> list[ModelVersion]:
        """Every version of ``pipeline``, oldest first, with the aliases pointing at each."""

    @abstractmethod
    def arrays(self, pipeline: str, version: int) -> dict[str, np.ndarray]:
        """The arrays of ``version`` (:class:`RegistryError` if there is no such version)."""

    @abstractmethod
    def alias(self, pipeline: str, name: str) -> int | None:
        """The version ``name`` points at, or None. Cheap: drivers poll it."""

    @abstractmethod
    def _record_alias(self, pipeline: str, change: AliasChange) -> None:
        """Point ``change.alias`` at ``change.version`` (None: remove it) and keep the change in its history."""

    @abstractmethod
    def alias_history(self, pipeline: str, name: str) -> list[AliasChange]:
        """Every setting of alias ``name``, oldest first."""

    def close(self) -> None:
        """Release connections."""

    # --- shared ----------------------------------------------------------------------

    def get(self, pipeline: str, version: int) -> ModelVersion:
        """Version ``version`` of ``pipeline`` with its aliases (:class:`UnknownVersion` if there is none)."""
        versions = self.versions(pipeline)
        for candidate in versions:
            if candidate.version == version:
                return candidate
        raise unknown_version(pipeline, version, [v.version for v in versions])

    def promote(self, pipeline: str, version: int, name: str = CHAMPION, by: str = "") -> ModelVersion:
        """Point alias ``name`` at ``version`` (which must exist)."""
        check_alias(name)
        self.get(pipeline, version)
        self._record_alias(pipeline, AliasChange(name, version, time.time(), by))
        return self.get(pipeline, version)

    def rollback(self, pipeline: str, name: str = CHAMPION, by: str = "") -> int:
        """Point alias ``name`` back at the version it named before the latest promotion still in force
        (promotions stack up, rollbacks pop them); that version."""
        check_alias(name)
        stack: list[int] = []
        for change in self.alias_history(pipeline, name):
            if change.kind == "rollback":
                if stack:
                    stack.pop()
            elif change.version is not None:
                stack.append(change.version)
        if len(stack) < 2:
            raise RegistryError(f"alias {name!r} of {pipeline!r} has no earlier version to roll back to")
        previous = stack[-2]
        self._record_alias(pipeline, AliasChange(name, previous, time.time(), by, kind="rollback"))
        return previous
