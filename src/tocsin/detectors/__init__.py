"""Detectors: one module per family over the contract in :mod:`tocsin.detectors.base`.

``DETECTORS`` maps the spec's ``detector.kind`` to the class. It is filled by
discovery: every public module of this package that defines a
:class:`~tocsin.detectors.base.Detector` subclass with a class attribute
``kind`` registers it, so adding a detector is adding one module. A module
whose optional dependency is missing (PyTorch for the deep models) is skipped
and named in ``UNAVAILABLE`` with the reason. Each detector class declares
its :class:`~tocsin.detectors.base.Capabilities`; :func:`build_detector`
(:mod:`tocsin.detectors.from_spec`) turns the spec's ``detector`` section into a
detector, or an error naming the field, before any event is read. Calibration
(:mod:`tocsin.detectors.calibration`) and thresholds
(:mod:`tocsin.detectors.thresholds`) turn raw scores into decisions.
"""

from __future__ import annotations

from tocsin.detectors.base import Capabilities, Detector, NotFittedError
from tocsin.detectors.from_spec import build_detector, check_detector_spec, row_pipeline_kinds
from tocsin.detectors.isolation_forest import IsolationForest
from tocsin.detectors.registry import DETECTORS, UNAVAILABLE
from tocsin.detectors.max_surprise import MaxSurprise
from tocsin.detectors.robust_zscore import RobustZScore

__all__ = [
    "DETECTORS", "UNAVAILABLE", "Capabilities", "Detector", "IsolationForest", "MaxSurprise", "NotFittedError", "RobustZScore",
    "build_detector", "check_detector_spec", "row_pipeline_kinds",
]
