"""Robust z-score: distance from the median in units of a robust spread."""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np

from tocsin.detectors.base import Capabilities, Detector, check_positive

#: 1.4826 * MAD estimates the standard deviation of normal data.
MAD_TO_STD = 1.4826
#: 1.2533 * mean absolute deviation estimates the standard deviation of normal data
#: (sqrt(pi / 2)); used where more than half of a column sits on one value, so MAD is 0.
MEAN_ABS_DEV_TO_STD = 1.2533


def _as_2d_float(X: np.ndarray, name: str = "X") -> np.ndarray:
    X = np.asarray(X, dtype=np.float64)
    if X.ndim != 2:
        raise ValueError(f"{name} must be 2-D (rows x features), got shape {X.shape}")
    return X


class RobustZScore(Detector):
    """Per-feature robust z-score, scored by the most extreme feature.

    ``fit`` learns each column's median and a robust scale: 1.4826 x the median
    absolute deviation (MAD), which equals the standard deviation for normal data
    but is not dragged by the outliers it is meant to find. Where MAD is 0 (more
    than half of the column is one value, e.g. a mostly-zero count), the scale
    falls back to 1.2533 x the mean absolute deviation from the median, and where
    that is 0 too (a constant column), to ``min_scale``. A row's score is the
    largest ``|x - median| / scale`` over its columns; ``explain`` returns every
    column's ``|z|``.

    **Good at**: single-feature extremes (an amount 40 scales above usual, a
    sensor stuck far off its range) with no training beyond one pass, readable
    scores ("7.3 robust standard deviations") and explanations that point at the
    column. It tolerates up to half of the training rows being contaminated.

    **Fails at**: anomalies that are unusual only as a *combination* of normal
    values (a large amount at a usual hour for a user who never spends at that
    hour), multimodal columns (a value between two modes scores low), and
    heavy-tailed columns, where ordinary values reach large z. Because the score
    is a maximum, adding many noisy columns raises the score of every row.
    A constant training column turns any later change in it into a huge score:
    that is intended (a change *is* surprising) but calibrate before thresholding.

    **Cost**: ``fit`` is O(n x d) (two medians per column); scoring is
    O(d) per row, vectorised, with 2 x d floats of state.

    Parameters
    ----------
    min_scale
        Smallest scale used for any column; guards against division by zero
        on constant training columns.

    Examples
    --------
    >>> import numpy as np
    >>> from tocsin.detectors import RobustZScore
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(loc=[10.0, 0.0], scale=[2.0, 1.0], size=(1000, 2))
    >>> detector = RobustZScore().fit(X)
    >>> detector.median_.round(2), detector.scale_.round(2)
    (array([ 9.94, -0.04]), array([2.11, 0.95]))
    >>> detector.score_samples([[10.0, 0.0], [10.0, 6.0], [30.0, 0.0]]).round(1)
    array([0. , 6.3, 9.5])
    >>> detector.explain([[30.0, 3.0]]).round(1)
    array([[9.5, 3.2]])

    References
    ----------
    Rousseeuw, P. J. and Croux, C. (1993). "Alternatives to the median absolute
    deviation". *Journal of the American Statistical Association* 88(424).
    Iglewicz, B. and Hoaglin, D. (1993). *How to Detect and Handle Outliers*.
    """

    kind = "robust_zscore"
    capabilities = Capabilities(explains=True)

    def __init__(self, min_scale: float = 1e-9) -> None:
        self.min_scale = min_scale

    def check_params(self, feature_names: Sequence[str] | None = None) -> None:
        check_positive("min_scale", self.min_scale)

    def fit(self, X: np.ndarray) -> RobustZScore:
        self.check_params()
        X = _as_2d_float(X)
        if X.shape[0] == 0:
            raise ValueError("cannot fit on 0 rows")
        # NaN is a missing value: it takes no part in the median or the spread.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN columns are handled below
            median = np.nanmedian(X, axis=0)
            deviation = np.abs(X - median)
            scale = MAD_TO_STD * np.nanmedian(deviation, axis=0)
            no_mad = ~(scale > 0)
            if no_mad.any():
                scale[no_mad] = MEAN_ABS_DEV_TO_STD * np.nanmean(deviation[:, no_mad], axis=0)
        # All-NaN training columns get median 0 and scale min_scale: any value there is news.
        median = np.where(np.isnan(median), 0.0, median)
        scale = np.where(np.isnan(scale) | (scale < self.min_scale), float(self.min_scale), scale)
        self.median_ = median
        self.scale_ = scale
        return self

    def _abs_z(self, X: np.ndarray) -> np.ndarray:
        self._check_fitted()
        X = _as_2d_float(X)
        if X.shape[1] != self.median_.shape[0]:
            raise ValueError(f"X has {X.shape[1]} features, the detector was fitted on {self.median_.shape[0]}")
        return np.abs(X - self.median_) / self.scale_

    def score_samples(self, X: np.ndarray) -> np.ndarray:
        """The largest ``|z|`` over the row's columns; missing (NaN) columns are skipped,
        so a row scores NaN only when every column is missing."""
        abs_z = self._abs_z(X)
        if abs_z.shape[1] == 0:
            return np.zeros(abs_z.shape[0])
        return np.fmax.reduce(abs_z, axis=1)

    def explain(self, X: np.ndarray) -> np.ndarray:
        """Each column's ``|z|`` (0 where the value is missing)."""
        return np.nan_to_num(self._abs_z(X), nan=0.0)

    def state_dict(self) -> dict[str, np.ndarray]:
        self._check_fitted()
        return {"median": self.median_.copy(), "scale": self.scale_.copy()}

    def load_state_dict(self, state: dict[str, np.ndarray]) -> None:
        median = np.asarray(state["median"], dtype=np.float64)
        scale = np.asarray(state["scale"], dtype=np.float64)
        if median.ndim != 1 or median.shape != scale.shape:
            raise ValueError(f"median and scale must be 1-D of equal length, got {median.shape} and {scale.shape}")
        self.median_ = median.copy()
        self.scale_ = scale.copy()
