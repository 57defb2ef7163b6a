"""Detectors: one module per family over the contract in :mod:`tocsin.detectors.base`.

``DETECTORS`` maps the spec's ``detector.kind`` to the class. Calibration
(:mod:`tocsin.detectors.calibration`) and thresholds
(:mod:`tocsin.detectors.thresholds`) turn raw scores into decisions.
"""

from __future__ import annotations

from tocsin.detectors.base import Detector, NotFittedError
from tocsin.detectors.isolation_forest import IsolationForest
from tocsin.detectors.robust_zscore import RobustZScore

DETECTORS: dict[str, type[Detector]] = {
    "isolation_forest": IsolationForest,
    "robust_zscore": RobustZScore,
}

__all__ = ["DETECTORS", "Detector", "IsolationForest", "NotFittedError", "RobustZScore"]
