"""Max surprise: the most extreme of columns that are already standardised, as they are.

Series features (``kind: series``) turn each reading into a signed surprise in
standard deviations of its own series, with all the per-series learning done
in the features' state. What is left for a detector is to say how surprising
the event is: the largest ``|surprise|`` of its metrics, so one wild metric is
enough. Re-scaling those columns (as :class:`~tocsin.detectors.robust_zscore.RobustZScore`
does, by their spread in the warm-up rows) would undo the standardisation: a
quiet metric's surprises would be magnified because they were small during
warm-up.
"""

from __future__ import annotations

import numpy as np

from tocsin.detectors.base import Capabilities, Detector


class MaxSurprise(Detector):
    """The largest absolute value of a row's columns (or the mean of its ``top`` largest); learns
    nothing but the column count.

    **Good at**: scoring columns that are already comparable (per-series
    surprises, z-scores), with no global refit and nothing to drift: the
    per-series state lives in the features.

    **Fails at**: raw columns on different scales (an amount in euros beside a
    count): the largest scale wins every row; use ``robust_zscore`` there.
    With ``top`` = 1, combinations of moderate surprises score no higher than
    their largest; ``top`` = 2 ranks two metrics at 5 sigma above one at 6.

    **Cost**: O(d) per row, vectorised; no state beyond the column count.

    Examples
    --------
    >>> import numpy as np
    >>> detector = MaxSurprise().fit(np.zeros((10, 2)))
    >>> detector.score_samples([[0.5, -7.0], [2.0, 1.0]])
    array([7., 2.])
    >>> detector.explain([[0.5, -7.0]])
    array([[0.5, 7. ]])
    >>> MaxSurprise(top=2).fit(np.zeros((10, 2))).score_samples([[0.5, -7.0], [5.0, 5.0]])
    array([3.75, 5.  ])

    Parameters
    ----------
    top
        How many of the largest ``|x|`` of a row are averaged (1: the largest alone).
    """

    kind = "max_surprise"
    capabilities = Capabilities(explains=True)

    def __init__(self, top: int = 1) -> None:
        self.top = top

    def check_params(self, feature_names=None) -> None:
        if not isinstance(self.top, (int, np.integer)) or isinstance(self.top, bool) or self.top < 1:
            raise ValueError(f"top must be a whole number >= 1, got {self.top!r}")
        if feature_names is not None and self.top > len(feature_names):
            raise ValueError(f"top ({self.top}) must be at most the number of features ({len(feature_names)})")

    def fit(self, X: np.ndarray) -> MaxSurprise:
        self.check_params()
        X = np.asarray(X, dtype=np.float64)
        if X.ndim != 2 or X.shape[0] == 0:
            raise ValueError(f"X must be 2-D with at least one row, got shape {X.shape}")
        self.n_features_in_ = X.shape[1]
        return self

    def _abs(self, X: np.ndarray) -> np.ndarray:
        self._check_fitted()
        X = np.asarray(X, dtype=np.float64)
        if X.ndim != 2 or X.shape[1] != self.n_features_in_:
            raise ValueError(f"X must have {self.n_features_in_} columns, got shape {X.shape}")
        return np.abs(X)

    def score_samples(self, X: np.ndarray) -> np.ndarray:
        """The largest ``|x|`` over the row's columns, or the mean of the ``top`` largest (missing ones count 0)."""
        absolute = self._abs(X)
        if not absolute.shape[1]:
            return np.zeros(absolute.shape[0])
        if self.top == 1:
            return np.fmax.reduce(absolute, axis=1)
        k = min(self.top, absolute.shape[1])
        return np.partition(np.nan_to_num(absolute, nan=0.0), absolute.shape[1] - k, axis=1)[:, -k:].mean(axis=1)

    def explain(self, X: np.ndarray) -> np.ndarray:
        """Each column's ``|x|`` (0 where missing)."""
        return np.nan_to_num(self._abs(X), nan=0.0)

    def state_dict(self) -> dict[str, np.ndarray]:
        self._check_fitted()
        return {"n_features_in": np.array(self.n_features_in_)}

    def load_state_dict(self, state: dict[str, np.ndarray]) -> None:
        self.n_features_in_ = int(state["n_features_in"])
