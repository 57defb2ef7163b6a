"""The expression grammar of rules and derived fields: ``amount > 10000 and city_novel == 1``.

Expressions are parsed with :mod:`ast` and only whitelisted nodes pass: numeric
constants, column names (``ip.count_10m`` names a feature keyed by another
field), ``+ - * / // % **``, comparisons (chained too), ``and``/``or``/``not``,
``x in (1, 2)`` and the functions in :data:`FUNCTIONS`. Everything else
(attribute access beyond one ``prefix.name``, subscripts, other calls,
strings) is refused when the expression is parsed, so nothing ever reaches
``eval``; :func:`evaluate` walks the tree as NumPy operations on columns.
A leaf module: the spec checks expressions at load with it.
"""

from __future__ import annotations

import ast
from collections.abc import Mapping
from typing import Any

import numpy as np

_COMPARE = {
    ast.Lt: np.less,
    ast.LtE: np.less_equal,
    ast.Gt: np.greater,
    ast.GtE: np.greater_equal,
    ast.Eq: np.equal,
    ast.NotEq: np.not_equal,
}
_ARITHMETIC = {
    ast.Add: np.add,
    ast.Sub: np.subtract,
    ast.Mult: np.multiply,
    ast.Div: np.divide,
    ast.FloorDiv: np.floor_divide,
    ast.Mod: np.mod,
    ast.Pow: np.power,
}
#: The only functions a rule may call.
FUNCTIONS = {
    "abs": np.abs,
    "log": np.log,
    "log1p": np.log1p,
    "sqrt": np.sqrt,
    "exp": np.exp,
    "isnan": np.isnan,
    "min": np.minimum,
    "max": np.maximum,
    # of an epoch time in seconds (the event time in a schema's derived fields), in UTC
    "hour_of_day": lambda t: np.floor(np.mod(t, 86_400.0) / 3_600.0),
    "day_of_week": lambda t: np.mod(np.floor(t / 86_400.0) + 3.0, 7.0),  # Monday = 0: 1970-01-01 was a Thursday
}


class RuleError(ValueError):
    """A rule uses syntax, a function or a column that rules do not allow."""


def parse_rule(expression: str) -> tuple[ast.Expression, list[str]]:
    """Parse and whitelist one rule; returns its tree and the column names it reads.

    >>> parse_rule("amount > 10000 and city_novel == 1")[1]
    ['amount', 'city_novel']
    >>> parse_rule("ip.count_10m > 30 and ip.failed_mean_10m > 0.5")[1]   # features keyed by another field
    ['ip.count_10m', 'ip.failed_mean_10m']
    >>> parse_rule("amount.__class__")
    Traceback (most recent call last):
    ...
    tocsin.expressions.RuleError: rule 'amount.__class__': only a feature keyed by a field may be named with a dot (ip.count_10m); '__class__' is not a feature name
    """
    if not isinstance(expression, str) or not expression.strip():
        raise RuleError(f"a rule must be a non-empty string, got {expression!r}")
    try:
        tree = ast.parse(expression.strip(), mode="eval")
    except SyntaxError as error:
        raise RuleError(f"rule {expression!r} is not a valid expression: {error.msg}") from None
    columns: list[str] = []
    _check(tree.body, expression, columns)
    return tree, columns


def _check(node: ast.AST, expression: str, columns: list[str]) -> None:
    def fail(message: str) -> None:
        raise RuleError(f"rule {expression!r}: {message}")

    if isinstance(node, ast.BoolOp):
        for value in node.values:
            _check(value, expression, columns)
    elif isinstance(node, ast.Compare):
        for op in node.ops:
            if type(op) not in _COMPARE and not isinstance(op, (ast.In, ast.NotIn)):
                fail(f"comparison {type(op).__name__} is not allowed")
        for op, right in zip(node.ops, node.comparators):
            if isinstance(op, (ast.In, ast.NotIn)):
                if not isinstance(right, (ast.Tuple, ast.List, ast.Set)) or not all(
                    isinstance(e, ast.Constant) and _is_number(e.value) for e in right.elts
                ):
                    fail("'in' needs a literal tuple of numbers on its right")
            else:
                _check(right, expression, columns)
        _check(node.left, expression, columns)
    elif isinstance(node, ast.BinOp):
        if type(node.op) not in _ARITHMETIC:
            fail(f"operator {type(node.op).__name__} is not allowed")
        _check(node.left, expression, columns)
        _check(node.right, expression, columns)
    elif isinstance(node, ast.UnaryOp):
        if not isinstance(node.op, (ast.Not, ast.USub, ast.UAdd)):
            fail(f"operator {type(node.op).__name__} is not allowed")
        _check(node.operand, expression, columns)
    elif isinstance(node, ast.Call):
        if not isinstance(node.func, ast.Name) or node.func.id not in FUNCTIONS or node.keywords:
            fail(f"calls may only name one of {sorted(FUNCTIONS)}")
        expected = 2 if node.func.id in ("min", "max") else 1
        if len(node.args) != expected:
            fail(f"{node.func.id}() takes {expected} argument(s)")
        for arg in node.args:
            _check(arg, expression, columns)
    elif isinstance(node, ast.Attribute):
        name = _dotted(node)
        if name is None:
            attribute = node.attr
            fail(f"only a feature keyed by a field may be named with a dot (ip.count_10m); {attribute!r} is not a feature name")
        if name not in columns:
            columns.append(name)
    elif isinstance(node, ast.Name):
        if node.id in FUNCTIONS:
            fail(f"{node.id} is a function, not a column")
        if node.id not in columns:
            columns.append(node.id)
    elif isinstance(node, ast.Constant):
        if not _is_number(node.value):
            fail(f"only numeric constants are allowed, got {node.value!r}")
    else:
        fail(f"{type(node).__name__} is not allowed")


def _dotted(node: ast.Attribute) -> str | None:
    """``prefix.name`` of a feature keyed by another field (``ip.count_10m``), or None for anything else
    (deeper chains, dunder names)."""
    if not isinstance(node.value, ast.Name) or node.value.id.startswith("_") or node.attr.startswith("_"):
        return None
    return f"{node.value.id}.{node.attr}"


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float, bool)) and not isinstance(value, complex)


def evaluate(node: ast.AST, columns: Mapping[str, np.ndarray], n_rows: int) -> np.ndarray:
    """Evaluate a whitelisted tree (checked by :func:`parse_rule`) on NumPy columns."""
    if isinstance(node, ast.BoolOp):
        values = [as_bool(evaluate(v, columns, n_rows)) for v in node.values]
        combine = np.logical_and if isinstance(node.op, ast.And) else np.logical_or
        result = values[0]
        for value in values[1:]:
            result = combine(result, value)
        return result
    if isinstance(node, ast.Compare):
        left = evaluate(node.left, columns, n_rows)
        result = np.ones(n_rows, dtype=bool)
        for op, right_node in zip(node.ops, node.comparators):
            if isinstance(op, (ast.In, ast.NotIn)):
                members = np.array([e.value for e in right_node.elts], dtype=np.float64)
                hit = np.isin(left, members)
                result &= hit if isinstance(op, ast.In) else ~hit
                continue
            right = evaluate(right_node, columns, n_rows)
            result &= _COMPARE[type(op)](left, right)
            left = right
        return result
    if isinstance(node, ast.BinOp):
        return _ARITHMETIC[type(node.op)](evaluate(node.left, columns, n_rows), evaluate(node.right, columns, n_rows))
    if isinstance(node, ast.UnaryOp):
        operand = evaluate(node.operand, columns, n_rows)
        if isinstance(node.op, ast.Not):
            return ~as_bool(operand)
        return -operand if isinstance(node.op, ast.USub) else operand
    if isinstance(node, ast.Call):
        return FUNCTIONS[node.func.id](*(evaluate(arg, columns, n_rows) for arg in node.args))
    if isinstance(node, ast.Name):
        return columns[node.id]
    if isinstance(node, ast.Attribute):
        return columns[_dotted(node)]
    if isinstance(node, ast.Constant):
        return np.float64(node.value)
    raise RuleError(f"{type(node).__name__} is not allowed")  # unreachable after parse_rule


def as_bool(value: np.ndarray) -> np.ndarray:
    value = np.asarray(value)
    # NaN is "unknown": it never makes a rule fire.
    return value if value.dtype == bool else np.nan_to_num(value.astype(np.float64), nan=0.0) != 0
