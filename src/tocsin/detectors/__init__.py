"""Detectors: one module per family over the contract in :mod:`tocsin.detectors.base`.

``DETECTORS`` maps the spec's ``detector.kind`` to the class. It is filled by
discovery: every public module of this package that defines a
:class:`~tocsin.detectors.base.Detector` subclass with a class attribute
``kind`` registers it, so adding a detector is adding one module. A module
whose optional dependency is missing (PyTorch for the deep models) is skipped
and named in ``UNAVAILABLE`` with the reason. Calibration
(:mod:`tocsin.detectors.calibration`) and thresholds
(:mod:`tocsin.detectors.thresholds`) turn raw scores into decisions.
"""

from __future__ import annotations

import importlib
import pkgutil

from tocsin.detectors.base import Detector, NotFittedError
from tocsin.detectors.isolation_forest import IsolationForest
from tocsin.detectors.robust_zscore import RobustZScore

#: modules of this package that hold machinery, not detectors
_NOT_DETECTORS = {"base", "calibration", "thresholds"}

DETECTORS: dict[str, type[Detector]] = {}
UNAVAILABLE: dict[str, str] = {}


def _discover() -> None:
    for module_info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        name = module_info.name
        if name.startswith("_") or name in _NOT_DETECTORS:
            continue
        try:
            module = importlib.import_module(f"{__name__}.{name}")
        except ImportError as error:  # an optional extra is not installed
            UNAVAILABLE[name] = str(error)
            continue
        for value in vars(module).values():
            if (
                isinstance(value, type)
                and issubclass(value, Detector)
                and value.__module__ == module.__name__
                and isinstance(getattr(value, "kind", None), str)
            ):
                DETECTORS[value.kind] = value


_discover()

__all__ = ["DETECTORS", "UNAVAILABLE", "Detector", "IsolationForest", "NotFittedError", "RobustZScore"]
