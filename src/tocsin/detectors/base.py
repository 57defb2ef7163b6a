"""The detector contract, after scikit-learn's estimators.

Parameters are stored unchanged in ``__init__`` and validated in ``fit``;
everything learned ends with ``_``; ``score_samples`` returns one float per
row where **higher means more anomalous** (the opposite of scikit-learn's
``IsolationForest.score_samples``); calling it before ``fit`` raises
:class:`NotFittedError`. ``explain`` gives per-feature contributions,
``state_dict``/``load_state_dict`` (and ``save``/``load`` on top of them) make a
fitted detector a set of NumPy arrays that checkpoints and model files hold.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any

import numpy as np


class NotFittedError(RuntimeError):
    """A detector was asked to score before it was fitted."""


class Detector(ABC):
    """Base class: subclasses implement ``fit``, ``score_samples``, ``explain`` and the state methods."""

    def get_params(self) -> dict[str, Any]:
        """The constructor parameters, as given."""
        import inspect

        names = [p for p in inspect.signature(type(self).__init__).parameters if p != "self"]
        return {name: getattr(self, name) for name in names}

    @abstractmethod
    def fit(self, X: np.ndarray) -> Detector:
        """Learn what normal rows look like from ``X`` (rows × features); returns self."""

    @abstractmethod
    def score_samples(self, X: np.ndarray) -> np.ndarray:
        """Raw anomaly score per row; higher is more anomalous."""

    @abstractmethod
    def explain(self, X: np.ndarray) -> np.ndarray:
        """Per-feature contribution to each row's score (rows × features, >= 0, larger = more to blame)."""

    @property
    def is_fitted(self) -> bool:
        # A detector with no learned attribute at all is not fitted (all() of nothing is True).
        names = self._fitted_attributes()
        return bool(names) and all(getattr(self, name, None) is not None for name in names)

    def _fitted_attributes(self) -> list[str]:
        return [name for name in vars(self) if name.endswith("_") and not name.startswith("_")]

    def _check_fitted(self) -> None:
        if not self.is_fitted:
            raise NotFittedError(f"{type(self).__name__} is not fitted yet; call fit(X) first")

    @abstractmethod
    def state_dict(self) -> dict[str, np.ndarray]:
        """The learned state as named arrays."""

    @abstractmethod
    def load_state_dict(self, state: dict[str, np.ndarray]) -> None:
        """Restore learned state from :meth:`state_dict`."""

    def save(self, path: str | Path) -> None:
        """Write parameters and learned state to one ``.npz`` file."""
        state = self.state_dict()
        meta = json.dumps({"class": type(self).__name__, "params": self.get_params()})
        with open(path, "wb") as handle:
            np.savez(handle, __meta__=np.array(meta), **state)

    @classmethod
    def load(cls, path: str | Path) -> Detector:
        """A detector as :meth:`save` wrote it."""
        with np.load(path, allow_pickle=False) as data:
            meta = json.loads(str(data["__meta__"]))
            state = {k: data[k] for k in data.files if k != "__meta__"}
        if meta["class"] != cls.__name__ and cls is not Detector:
            raise ValueError(f"{path} holds a {meta['class']}, not a {cls.__name__}")
        target = cls if cls is not Detector else _registry()[meta["class"]]
        detector = target(**meta["params"])
        detector.load_state_dict(state)
        return detector


def _registry() -> dict[str, type[Detector]]:
    from tocsin.detectors import DETECTORS

    return {cls.__name__: cls for cls in DETECTORS.values()}
