"""The base of the online detectors: score each row with what was learned before it, then learn it.

Every streaming detector (EWMA, seasonal profile, seasonal forecast, value
rarity, the composed time-series detector) keeps one invariant, the one NAB and
any live stream depend on: **a row is scored with the state learned from the
rows before it, and only then learned** (:meth:`StreamingDetector.score_partial_fit`).
Scoring a batch that way gives bit-identical results to feeding the same rows
one at a time; breaking it (learning a batch, then scoring it) lets every row
see itself and its future, which hides level shifts and inflates benchmark scores.

Rows: ``X`` is rows x value columns (a 1-D array is one column). Timestamps,
where a detector needs them, come as the keyword ``timestamps=``: one per row,
``datetime64`` or numbers in seconds since the epoch (UTC, naive).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from tocsin.detectors.base import Capabilities, Detector


def as_rows(X: Any) -> np.ndarray:
    """``X`` as a float64 2-D array (a 1-D array is one column)."""
    X = np.asarray(X, dtype=np.float64)
    if X.ndim == 1:
        X = X.reshape(-1, 1)
    if X.ndim != 2:
        raise ValueError(f"X must be 1-D (one series) or 2-D (rows x columns), got shape {X.shape}")
    return X


def as_epoch_seconds(timestamps: Any, n_rows: int) -> np.ndarray:
    """Timestamps (``datetime64`` or seconds since the epoch) as float64 seconds."""
    stamps = np.asarray(timestamps)
    if stamps.ndim != 1 or stamps.shape[0] != n_rows:
        raise ValueError(f"timestamps must be 1-D with one entry per row ({n_rows}), got shape {stamps.shape}")
    if np.issubdtype(stamps.dtype, np.datetime64):
        return stamps.astype("datetime64[ns]").astype(np.int64) / 1e9
    if stamps.dtype.kind in "iuf":
        return stamps.astype(np.float64)
    raise ValueError(f"timestamps must be datetime64 or numbers (epoch seconds), got dtype {stamps.dtype}")


class StreamingDetector(Detector):
    """Base of the online detectors: score each row from the past, then learn it.

    Subclasses set ``_state_names`` (learned arrays, all ending in ``_``, one
    of them ``count_``, the rows seen per column) and ``capabilities`` (a
    detector that needs ``timestamps=`` says so there), and
    implement ``check_params``, ``_init_state(n_features)`` and
    ``_run(X, seconds, learn, score)``, which walks the rows in order, writes
    each row's per-column contribution (computed *before* that row is learned)
    and updates the state in place when ``learn`` is true. ``_reduce`` turns
    contributions into one score per row (the largest, NaN columns skipped).
    """

    _state_names: tuple[str, ...] = ()
    capabilities = Capabilities(per_series=True, online=True, explains=True)

    @property
    def needs_timestamps(self) -> bool:
        """True when rows need ``timestamps=`` (as ``capabilities`` says; a composed
        detector may need them only for some parameters)."""
        return self.capabilities.needs_timestamps

    # -- the contract -------------------------------------------------------
    def fit(self, X: np.ndarray, timestamps: Any = None) -> StreamingDetector:
        """Forget everything, then learn ``X`` row by row (no scoring)."""
        self.check_params()
        X = as_rows(X)
        self._init_state(X.shape[1])
        self._run(X, self._seconds(X, timestamps), learn=True, score=False)
        return self

    def partial_fit(self, X: np.ndarray, timestamps: Any = None) -> StreamingDetector:
        """Learn ``X`` row by row on top of the current state (starts fresh if unfitted)."""
        X = self._start(X)
        self._run(X, self._seconds(X, timestamps), learn=True, score=False)
        return self

    def score_samples(self, X: np.ndarray, timestamps: Any = None) -> np.ndarray:
        """Score every row against the current state, learning nothing (rows do not see each other)."""
        self._check_fitted()
        X = self._checked_rows(X)
        return self._reduce(self._run(X, self._seconds(X, timestamps), learn=False, score=True))

    def score_partial_fit(self, X: np.ndarray, timestamps: Any = None) -> np.ndarray:
        """The streaming step: each row is scored with the state of the rows before it,
        then learned. Identical to calling it once per row."""
        X = self._start(X)
        return self._reduce(self._run(X, self._seconds(X, timestamps), learn=True, score=True))

    def explain(self, X: np.ndarray, timestamps: Any = None) -> np.ndarray:
        """Each column's score against the current state (0 where the value is missing)."""
        self._check_fitted()
        X = self._checked_rows(X)
        return np.nan_to_num(self._run(X, self._seconds(X, timestamps), learn=False, score=True), nan=0.0)

    def state_dict(self) -> dict[str, np.ndarray]:
        self._check_fitted()
        return {name.rstrip("_"): np.array(getattr(self, name), copy=True) for name in self._state_names}

    def load_state_dict(self, state: dict[str, np.ndarray]) -> None:
        missing = [name for name in self._state_names if name.rstrip("_") not in state]
        if missing:
            raise ValueError(f"state is missing {missing}")
        for name in self._state_names:
            setattr(self, name, np.array(state[name.rstrip("_")], copy=True))

    @property
    def n_features_in_(self) -> int:
        """Columns the detector has seen (its per-column row counts, ``count_``)."""
        return int(np.asarray(self.count_).shape[0])

    # -- helpers ------------------------------------------------------------
    def _fitted_attributes(self) -> list[str]:
        return list(self._state_names)

    def _start(self, X: Any) -> np.ndarray:
        X = as_rows(X)
        if not self.is_fitted:
            self.check_params()
            self._init_state(X.shape[1])
        elif X.shape[1] != self.n_features_in_:
            raise ValueError(f"X has {X.shape[1]} columns, the detector has seen {self.n_features_in_}")
        return X

    def _checked_rows(self, X: Any) -> np.ndarray:
        X = as_rows(X)
        if X.shape[1] != self.n_features_in_:
            raise ValueError(f"X has {X.shape[1]} columns, the detector has seen {self.n_features_in_}")
        return X

    def _seconds(self, X: np.ndarray, timestamps: Any) -> np.ndarray:
        if timestamps is None:
            if self.needs_timestamps:
                raise ValueError(f"{type(self).__name__} needs timestamps=: one per row (datetime64 or epoch seconds)")
            return np.zeros(X.shape[0])
        return as_epoch_seconds(timestamps, X.shape[0])

    @staticmethod
    def _reduce(contributions: np.ndarray) -> np.ndarray:
        if contributions.shape[1] == 0:
            return np.zeros(contributions.shape[0])
        return np.fmax.reduce(contributions, axis=1)

    def _init_state(self, n_features: int) -> None:  # pragma: no cover
        raise NotImplementedError

    def _run(self, X: np.ndarray, seconds: np.ndarray, learn: bool, score: bool) -> np.ndarray:  # pragma: no cover
        raise NotImplementedError
