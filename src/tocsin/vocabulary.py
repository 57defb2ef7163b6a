"""The words every part of tocsin shares: severity names and the 0–100 scale people read.

A leaf: it imports nothing from tocsin, so the spec, the engine, the store and
the API can all take their vocabulary from here and never drift apart (six
modules once spelled the severity names out each on their own).
"""

from __future__ import annotations

from typing import Literal

import numpy as np

#: severity names by code: a scored batch carries codes 0, 1, 2 (-1: not an anomaly)
SEVERITIES: tuple[str, ...] = ("info", "warning", "critical")
Severity = Literal["info", "warning", "critical"]
SEVERITY_ORDER: dict[str, int] = {name: code for code, name in enumerate(SEVERITIES)}
#: the severities an alert can have (an ``info`` anomaly never opens one)
ALERT_SEVERITIES: tuple[str, ...] = SEVERITIES[1:]


def score_100(score: float | np.ndarray) -> float | np.ndarray:
    """A calibrated score in [0, 1] on the 0–100 scale people read, to two decimals.

    >>> score_100(0.99937)
    99.94
    """
    scaled = np.round(np.asarray(score, dtype=np.float64) * 100.0, 2)
    return float(scaled) if scaled.ndim == 0 else scaled
