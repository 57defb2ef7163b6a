"""Rules: expressions over named columns, such as ``amount > 10000 and city_novel == 1``."""

from __future__ import annotations

import ast
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from tocsin.detectors.base import Capabilities, Detector
from tocsin.expressions import FUNCTIONS, RuleError, as_bool, evaluate, parse_rule  # noqa: F401 (re-exported)


class Rules(Detector):
    """Hand-written rules over named columns; the score is the weight of the rules a row fires.

    Each rule is a Python-like expression over column names, e.g.
    ``amount > 10000 and city_novel == 1`` or ``abs(amount_zscore_30d) >= 6 or
    count_1m > 20``. Rules are parsed with :mod:`ast` and only whitelisted
    nodes are allowed: numeric constants, column names, ``+ - * / // % **``,
    comparisons (chained too), ``and``/``or``/``not``, ``x in (1, 2)`` and the
    functions in :data:`FUNCTIONS`. Attribute access, subscripts, other calls,
    strings and everything else are rejected when the rule is parsed: rules
    never reach ``eval``; they are evaluated node by node as NumPy operations on
    whole columns. A comparison with a missing (NaN) value is false.

    Column names are the ``features`` parameter; if it is ``None``, ``fit``
    takes them from ``X`` when ``X`` names its columns (a mapping of name to
    column, or a pandas DataFrame). ``score_samples``/``explain`` accept a
    rows x features array in that column order, or a mapping/DataFrame by
    name. ``fit`` learns nothing else: it checks every rule's columns exist.
    ``check_params(feature_names)`` checks the same without data, so a rule
    that does not parse or reads no known column fails when a spec is loaded;
    built from a pipeline spec, ``features`` defaults to the pipeline's
    feature names.

    ``explain`` credits each fired rule's weight equally to the columns it reads.

    **Good at**: known patterns and policy ("never more than 20 transactions a
    minute"), cold start with no history, and explanations people can read.

    **Fails at**: anything nobody wrote a rule for; thresholds go stale as
    data drifts; many rules become hard to keep consistent.

    **Cost**: one vectorised NumPy pass per node per batch: a few nanoseconds
    per row and node on large batches, dominated by fixed overhead on small ones.

    Parameters
    ----------
    rules
        The expressions (a single string is one rule).
    features
        Column names, in the column order of ``X``; ``None`` takes them from ``X`` at fit time.
    weights
        One weight per rule (default 1 each); the score is the sum of fired weights.

    Examples
    --------
    >>> import numpy as np
    >>> from tocsin.detectors.rules import Rules
    >>> X = np.array([[50.0, 0], [12000.0, 1], [15000.0, 0]])
    >>> detector = Rules(["amount > 10000 and city_novel == 1", "amount > 14000"],
    ...                  features=["amount", "city_novel"]).fit(X)
    >>> detector.score_samples(X)
    array([0., 1., 1.])
    >>> detector.explain(X[[1]])
    array([[0.5, 0.5]])
    >>> detector.score_samples({"amount": np.array([20000.0]), "city_novel": np.array([1.0])})
    array([2.])
    """

    kind = "rules"
    capabilities = Capabilities(explains=True)

    def __init__(
        self,
        rules: list[str] | str = (),
        features: list[str] | None = None,
        weights: list[float] | None = None,
    ) -> None:
        self.rules = rules
        self.features = features
        self.weights = weights

    def _rule_list(self) -> list[str]:
        return [self.rules] if isinstance(self.rules, str) else list(self.rules)

    def check_params(self, feature_names: Sequence[str] | None = None) -> None:
        """Every rule parses and, where the column names are known (``features``, or
        ``feature_names``: the columns ``X`` will have), reads only known columns."""
        if not isinstance(self.rules, (str, list, tuple)) or not self._rule_list():
            raise ValueError(f"rules must hold at least one rule (an expression or a list of them), got {self.rules!r}")
        rules = self._rule_list()
        columns_read = []
        for position, rule in enumerate(rules):
            try:
                columns_read.append(parse_rule(rule)[1])
            except RuleError as error:
                raise RuleError(f"rules[{position}]: {error}") from None
        self._weights(rules)
        names = None if feature_names is None else [str(name) for name in feature_names]
        if self.features is not None:
            if not isinstance(self.features, (list, tuple)):
                raise ValueError(f"features must be a list of column names or None, got {self.features!r}")
            features = [str(name) for name in self.features]
            if names is not None and features != names:
                raise ValueError(f"features must name the columns X will have, in order, {names}; got {features}")
            names = features
        if names is not None and len(set(names)) != len(names):
            raise ValueError(f"features must be unique column names, got {names}")
        for position, (rule, columns) in enumerate(zip(rules, columns_read)):
            unknown = [column for column in columns if names is not None and column not in names]
            if unknown:
                raise RuleError(f"rules[{position}]: rule {rule!r} reads unknown column(s) {unknown}; columns are {names}")

    def _weights(self, rules: list[str]) -> np.ndarray:
        weights = np.ones(len(rules)) if self.weights is None else np.asarray(self.weights, dtype=np.float64)
        if weights.shape != (len(rules),):
            raise ValueError(f"weights must be one number per rule ({len(rules)}), got {self.weights!r}")
        return weights

    def fit(self, X: Any = None) -> Rules:
        if self.features is not None:
            names = [str(name) for name in self.features]
        elif isinstance(X, Mapping):
            names = [str(name) for name in X]
        elif hasattr(X, "columns"):
            names = [str(name) for name in X.columns]
        else:
            names = None
        self.check_params(names)
        if names is None:
            raise ValueError("Rules needs column names: give features=[...] or fit on a mapping/DataFrame of columns")
        if X is not None and not isinstance(X, Mapping) and not hasattr(X, "columns"):
            array = np.asarray(X)
            if array.ndim == 2 and array.shape[1] != len(names):
                raise ValueError(f"X has {array.shape[1]} columns, features names {len(names)}")
        self.features_ = np.array(names, dtype=np.str_)
        self.weights_ = self._weights(self._rule_list())
        self._parsed = None
        return self

    def _compiled(self) -> list[tuple[ast.Expression, list[int]]]:
        if getattr(self, "_parsed", None) is None:
            index = {name: i for i, name in enumerate(self.features_.tolist())}
            self._parsed = []
            for rule in self._rule_list():
                tree, columns = parse_rule(rule)
                unknown = [c for c in columns if c not in index]
                if unknown:
                    raise RuleError(f"rule {rule!r} reads unknown column(s) {unknown}")
                self._parsed.append((tree, [index[c] for c in columns]))
        return self._parsed

    def _columns(self, X: Any) -> tuple[dict[str, np.ndarray], int]:
        self._check_fitted()
        names = self.features_.tolist()
        if isinstance(X, Mapping) or hasattr(X, "columns"):
            missing = [name for name in names if name not in X]
            if missing:
                raise ValueError(f"X lacks column(s) {missing}")
            columns = {name: np.asarray(X[name], dtype=np.float64) for name in names}
            n_rows = len(next(iter(columns.values()))) if columns else 0
            return columns, n_rows
        array = np.asarray(X, dtype=np.float64)
        if array.ndim != 2 or array.shape[1] != len(names):
            raise ValueError(f"X must be 2-D with {len(names)} columns ({names}), got shape {array.shape}")
        return {name: array[:, i] for i, name in enumerate(names)}, array.shape[0]

    def _fired(self, X: Any) -> tuple[np.ndarray, int]:
        columns, n_rows = self._columns(X)
        fired = np.zeros((len(self._compiled()), n_rows), dtype=bool)
        with np.errstate(all="ignore"):
            for r, (tree, _) in enumerate(self._compiled()):
                fired[r] = np.broadcast_to(as_bool(evaluate(tree.body, columns, n_rows)), (n_rows,))
        return fired, n_rows

    def score_samples(self, X: Any) -> np.ndarray:
        """Sum of the weights of the rules each row fires."""
        fired, _ = self._fired(X)
        return self.weights_ @ fired.astype(np.float64)

    def explain(self, X: Any) -> np.ndarray:
        """Each fired rule's weight, shared equally among the columns it reads."""
        fired, n_rows = self._fired(X)
        out = np.zeros((n_rows, len(self.features_)))
        for r, (_, column_ids) in enumerate(self._compiled()):
            if column_ids:
                out[:, column_ids] += (fired[r] * self.weights_[r] / len(column_ids))[:, None]
        return out

    def state_dict(self) -> dict[str, np.ndarray]:
        self._check_fitted()
        return {"features": self.features_.copy(), "weights": self.weights_.copy()}

    def load_state_dict(self, state: dict[str, np.ndarray]) -> None:
        features = np.asarray(state["features"]).astype(np.str_)
        weights = np.asarray(state["weights"], dtype=np.float64)
        if features.ndim != 1 or weights.shape != (len(self._rule_list()),):
            raise ValueError("rules state does not match the rules")
        self.features_, self.weights_ = features, weights
        self._parsed = None
        self._compiled()  # check the rules against the restored column names
