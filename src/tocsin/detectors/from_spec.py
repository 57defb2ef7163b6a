"""From the spec's ``detector`` section to a detector, or an error that names the field and the fix.

:func:`build_detector` is the one place a detector is made from ``detector.kind``
and ``detector.params``: :class:`~tocsin.engine.pipeline.Pipeline` calls it when it
is built, and a command can call :func:`check_detector_spec` when it loads a spec,
so every mistake fails before the first event, not with a traceback after the
warm-up. Each error starts with the field's path:

- ``detector.kind 'foo' is not a detector; choose from [...]``
- ``detector.kind 'seasonal' needs per-series timestamps, which the row pipeline
  cannot give; use one of [...]``: the pipeline passes feature rows alone, so a
  kind whose :class:`~tocsin.detectors.base.Capabilities` need timestamps or labels
  is refused, with the kinds that work;
- ``detector.params.n_estimators must be a positive int, got -1``, or
  ``detector.params.n_trees is not a parameter of isolation_forest; ...``: what
  the detector's :meth:`~tocsin.detectors.base.Detector.check_params` refuses,
  rules that do not parse or read no feature included.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from tocsin.detectors import registry
from tocsin.detectors.base import Detector, param_path
from tocsin.spec import PipelineSpec, SpecError


def _registry() -> tuple[dict[str, type[Detector]], dict[str, str]]:
    # read at call time: tests and benchmarks may swap the registry's contents
    return registry.DETECTORS, registry.UNAVAILABLE


def row_pipeline_kinds() -> list[str]:
    """The registered kinds the row pipeline can drive: rows alone, no timestamps, no labels."""
    detectors, _ = _registry()
    return sorted(kind for kind, cls in detectors.items() if cls.capabilities.missing_from_rows() is None)


def build_detector(kind: str, params: Mapping[str, Any] | None = None, feature_names: Sequence[str] | None = None) -> Detector:
    """An unfitted detector of ``kind`` with ``params``, every parameter checked; raises
    :class:`~tocsin.spec.SpecError` naming the field (see the module docstring).

    ``feature_names`` are the columns the detector will see, in order; a detector
    that reads columns by name (it takes ``features``) gets them unless ``params``
    names its own.
    """
    detectors, unavailable = _registry()
    cls = detectors.get(kind)
    if cls is None:
        not_installed = f" (not installed: {sorted(unavailable)})" if unavailable else ""
        raise SpecError(f"detector.kind {kind!r} is not a detector; choose from {sorted(detectors)}{not_installed}")
    missing = cls.capabilities.missing_from_rows()
    if missing is not None:
        raise SpecError(
            f"detector.kind {kind!r} needs {missing}, which the row pipeline cannot give; use one of {row_pipeline_kinds()}"
        )
    params = dict(params or {})
    if feature_names is not None and "features" in cls.param_names() and "features" not in params:
        params["features"] = list(feature_names)
    try:
        return cls.from_params(params, feature_names)
    except ValueError as error:
        raise SpecError(param_path("detector.params", error, [*cls.param_names(), *params])) from None


def check_detector_spec(spec: PipelineSpec, feature_names: Sequence[str] | None = None) -> Detector:
    """:func:`build_detector` for a loaded spec, without building a pipeline: the unfitted
    detector, or a SpecError. ``feature_names`` are the features the detector will see
    (``spec.detector.features`` when omitted; pass ``FeatureSet.from_spec(spec).names``
    when that is None too, or rule columns go unchecked)."""
    names = feature_names if feature_names is not None else spec.detector.features
    return build_detector(spec.detector.kind, spec.detector.params, names)
