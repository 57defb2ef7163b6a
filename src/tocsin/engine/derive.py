"""Derived fields (``schema.derived``): numeric columns computed from an event's own fields before anything else.

Events rarely arrive in the shape detection needs: a status code where a
share of errors is wanted, an event time where the hour of the day is. A
derived field is an expression of the declared numeric fields, the event time
and derived fields above it (``is_error: status >= 500``, ``hour:
hour_of_day(ts)``, ``kb: bytes / 1024``), in the rules' grammar
(:mod:`tocsin.expressions`: whitelisted, vectorised, no ``eval``); true is 1.
Every later step (aggregation, features, rules) reads them like declared
fields. A value that comes out NaN or infinite (a division by zero) makes that
event a dead letter naming the derived field, like a bad input value.
"""

from __future__ import annotations

import numpy as np

from tocsin.batch import EventBatch
from tocsin.expressions import evaluate, parse_rule
from tocsin.spec import SchemaSpec


class Derivations:
    """The schema's derived fields, compiled once; :meth:`apply` adds them to a batch."""

    def __init__(self, schema: SchemaSpec) -> None:
        self.time_field = schema.time_field
        self.fields = [(name, parse_rule(expression)[0], expression) for name, expression in schema.derived.items()]

    def __bool__(self) -> bool:
        return bool(self.fields)

    def apply(self, events: EventBatch) -> tuple[EventBatch, list[tuple[int, str]]]:
        """``events`` with every derived column, and (row, reason) for rows whose value is not finite."""
        n = len(events)
        columns = {**events.numeric, self.time_field: events.times}
        numeric = dict(events.numeric)
        bad: dict[int, str] = {}
        for name, tree, expression in self.fields:
            with np.errstate(all="ignore"):
                value = np.broadcast_to(np.asarray(evaluate(tree.body, columns, n), dtype=np.float64), (n,)).copy()
            for row in np.flatnonzero(~np.isfinite(value)).tolist():
                bad.setdefault(row, f"derived field `{name}` = {expression} is not a finite number for this event")
            value[~np.isfinite(value)] = 0.0
            numeric[name] = columns[name] = value
        derived = EventBatch(ids=events.ids, keys=events.keys, times=events.times, numeric=numeric,
                             categorical=events.categorical, positions=events.positions, labels=events.labels,
                             extra=events.extra, encodings=events.encodings)  # the same text columns
        return derived, sorted(bad.items())
