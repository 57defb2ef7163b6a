"""The detector contract, after scikit-learn's estimators.

Parameters are stored unchanged in ``__init__`` and validated in ``fit``;
everything learned ends with ``_``; ``score_samples`` returns one float per
row where **higher means more anomalous** (the opposite of scikit-learn's
``IsolationForest.score_samples``); calling it before ``fit`` raises
:class:`NotFittedError`. ``explain`` gives per-feature contributions,
``state_dict``/``load_state_dict`` (and ``save``/``load`` on top of them) make a
fitted detector a set of NumPy arrays that checkpoints and model files hold.

Every detector also says, in :class:`Capabilities`, what it needs from its caller
(timestamps, labels) and what it offers (online learning, explanations), and checks
its parameters without data (:meth:`Detector.check_params`), so a driver can refuse
a detector it cannot run, or a bad parameter, before any event is read.
``tests/detectors/test_contract.py`` holds every registered detector to this contract.
"""

from __future__ import annotations

import inspect
import json
import numbers
import re
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np


class NotFittedError(RuntimeError):
    """A detector was asked to score before it was fitted."""


@dataclass(frozen=True)
class Capabilities:
    """What a detector needs from its caller and what it offers; drivers read it before any event."""

    #: fit and score take ``timestamps=`` (one per row): a driver that has rows alone cannot run it
    needs_timestamps: bool = False
    #: each column is a series of its own, scored row by row then learned: rows must come in time order
    per_series: bool = False
    #: fit takes labels, which only a backtest has: a driver without them cannot run it
    needs_labels: bool = False
    #: learns row by row (``partial_fit``, ``score_partial_fit``): scores do not depend on where a stream is cut
    online: bool = False
    #: ``explain`` gives per-feature contributions, which become the "why" of an anomaly
    explains: bool = True

    def missing_from_rows(self) -> str | None:
        """What a caller that passes rows alone (the row pipeline, an ensemble to its
        members) lacks to run such a detector; None when rows are enough."""
        if self.needs_timestamps:
            return "per-series timestamps"
        if self.needs_labels:
            return "labels"
        return None


class Detector(ABC):
    """Base class: subclasses implement ``fit``, ``score_samples``, ``explain`` and the state methods,
    declare their :class:`Capabilities` and override :meth:`check_params`."""

    #: what this kind needs and offers (with its default parameters); every detector class declares its own
    capabilities: ClassVar[Capabilities] = Capabilities()

    @classmethod
    def param_names(cls) -> list[str]:
        """The constructor's parameter names, in order."""
        return [p for p in inspect.signature(cls.__init__).parameters if p != "self"]

    @classmethod
    def from_params(cls, params: Mapping[str, Any], feature_names: Sequence[str] | None = None) -> Detector:
        """``cls(**params)`` with every parameter checked (:meth:`check_params`), no data needed.

        Raises ValueError whose message starts with the parameter's name, an
        unknown one too (``n_trees is not a parameter of isolation_forest; ...``).
        """
        if not isinstance(params, Mapping):
            raise ValueError(f"params must be a mapping of parameter name to value, got {params!r}")
        names = cls.param_names()
        unknown = [name for name in params if name not in names]
        if unknown:
            raise ValueError(f"{unknown[0]} is not a parameter of {getattr(cls, 'kind', cls.__name__)}; its parameters are {names}")
        detector = cls(**params)
        detector.check_params(feature_names)
        return detector

    def check_params(self, feature_names: Sequence[str] | None = None) -> None:
        """Raise ValueError unless every parameter is usable; needs no data, and ``fit`` calls it too.

        The message starts with the parameter's name, then says what is expected
        and what was given (``n_estimators must be a positive int, got -1``), so a
        spec error can point at ``detector.params.n_estimators``.
        ``feature_names``, when known, are the names of the columns ``X`` will
        have, in order (a detector that reads columns by name checks against them).
        """

    def get_params(self) -> dict[str, Any]:
        """The constructor parameters, as given."""
        return {name: getattr(self, name) for name in self.param_names()}

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
        target = cls if cls is not Detector else {c.__name__: c for c in _REGISTERED.values()}[meta["class"]]
        detector = target(**meta["params"])
        detector.load_state_dict(state)
        return detector

    def __init_subclass__(cls, **kwargs: Any) -> None:
        """Record every detector class of this package that names its ``kind`` (the registry's source)."""
        super().__init_subclass__(**kwargs)
        if isinstance(cls.__dict__.get("kind"), str) and cls.__module__.startswith(_PACKAGE + "."):
            _REGISTERED[cls.kind] = cls


_PACKAGE = __name__.rpartition(".")[0]
_REGISTERED: dict[str, type[Detector]] = {}


def registered_detectors() -> dict[str, type[Detector]]:
    """The detector classes made so far, by kind (all of them once :mod:`tocsin.detectors` is imported)."""
    return dict(_REGISTERED)


def check_positive(
    name: str, value: Any, integer: bool = False, upper: float | None = None, optional: bool = False
) -> None:
    """Raise ValueError unless ``value`` is a positive number (an int when ``integer``), at most
    ``upper``; ``optional`` also allows None."""
    if optional and value is None:
        return
    kinds = (int, np.integer) if integer else (int, float, np.integer, np.floating)
    if isinstance(value, bool) or not isinstance(value, kinds) or not value > 0 or (upper is not None and value > upper):
        bound = f" and at most {upper}" if upper is not None else ""
        alternative = " or None" if optional else ""
        raise ValueError(f"{name} must be a positive {'int' if integer else 'number'}{bound}{alternative}, got {value!r}")


def check_random_state(value: Any) -> None:
    """Raise ValueError unless ``value`` is an int or None: seeds are saved with the model (as JSON)."""
    if value is not None and (isinstance(value, bool) or not isinstance(value, numbers.Integral)):
        raise ValueError(f"random_state must be an int or None (it is saved with the model), got {value!r}")


def param_path(path: str, error: Exception, param_names: Sequence[str]) -> str:
    """A parameter error under a spec path: ``detector.params`` and ``n_estimators must be ...``
    give ``detector.params.n_estimators must be ...`` (``path: message`` when the message
    does not start with one of ``param_names``)."""
    message = str(error)
    head = re.match(r"\w+", message)
    return f"{path}.{message}" if head and head.group() in param_names else f"{path}: {message}"
