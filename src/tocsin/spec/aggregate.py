"""Event-time aggregation (the ``aggregate`` section): request logs, logins and sales become per-entity
readings per time bucket, which the series features then watch like any metric."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import Field, model_validator

from tocsin.durations import Duration
from tocsin.spec.base import SpecModel

#: ``field op value``: a number, or a quoted string for categorical fields
CONDITION = re.compile(r"""^\s*(?P<field>[A-Za-z_][A-Za-z0-9_]*)\s*(?P<op>>=|<=|==|!=|>|<)\s*(?P<value>-?\d+(?:\.\d+)?|'[^']*'|"[^"]*")\s*$""")


class MetricSpec(SpecModel):
    """One reading of each bucket: a count, a statistic of a numeric field, a share of events matching a
    condition, or the distinct values of a field."""

    name: str = Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$", description="the reading's name (what features and explanations call it)")
    kind: Literal["count", "sum", "mean", "min", "max", "share", "quantile", "distinct"]
    field: str | None = Field(None, description="the numeric field (sum, mean, min, max, quantile) or any field (distinct)")
    where: str | None = Field(None, description="share: the condition, `field op value` (`status >= 500`, `result == 'fail'`); "
                              "count, sum, distinct: only the events matching it count (`kind == 'sale'`)")
    q: float | None = Field(None, gt=0, lt=1, description="quantile: which (0.95 for p95)")
    worst_of: str | None = Field(None, description="share, sum, count: the largest share (sum, count) among this categorical "
                                 "field's values in the bucket (the worst endpoint's error share, the product with the largest "
                                 "unexplained stock drain), over values with at least min_events events")
    min_events: int = Field(5, ge=1, description="worst_of: values with fewer events in the bucket are not counted")
    transform: Literal["none", "sqrt", "lower_bound"] = Field(
        "none", description="sqrt: the reading is 2·sqrt(x + 3/8) (Anscombe's transform of a count), whose noise is about 1 "
        "whatever the count, so a count falling to 0 stands out as much at 5 a bucket as at 50 (a product that stops selling); "
        "lower_bound (share, quantile): the reading is what the share or quantile is at least, the lower end of its 95% "
        "interval (Wilson's for a share, the binomial order statistic for a quantile), so one error in 6 requests (at least "
        "0.03) does not look like 30 in 180 (at least 0.12), nor one slow request among 5 like a slow minute")

    @model_validator(mode="after")
    def _complete(self) -> MetricSpec:
        needs_field = self.kind in ("sum", "mean", "min", "max", "quantile", "distinct")
        if needs_field and self.field is None:
            raise ValueError(f"metric {self.name!r} of kind {self.kind} needs `field`")
        if self.kind == "share" and self.where is None:
            raise ValueError(f"metric {self.name!r} of kind share needs `where`, e.g. \"status >= 500\"")
        if self.where is not None and not CONDITION.match(self.where):
            raise ValueError(f"metric {self.name!r}: where {self.where!r} is not `field op value` "
                             "(op one of >= <= == != > <; a number, or a quoted string)")
        if self.where is not None and self.kind not in ("share", "count", "sum", "distinct"):
            raise ValueError(f"metric {self.name!r}: where applies to kinds share, count, sum and distinct only")
        if self.worst_of is not None and self.kind not in ("share", "sum", "count"):
            raise ValueError(f"metric {self.name!r}: worst_of applies to kinds share, sum and count only")
        if self.transform == "lower_bound" and self.kind not in ("share", "quantile"):
            raise ValueError(f"metric {self.name!r}: transform lower_bound applies to kinds share and quantile only (it bounds them)")
        if self.kind == "quantile" and self.q is None:
            raise ValueError(f"metric {self.name!r} of kind quantile needs `q` (0.95 for p95)")
        return self


class AggregateSpec(SpecModel):
    """Tumbling event-time buckets per entity; each closed bucket becomes one reading (an event keyed by the
    entity, timed at the bucket's start, with one numeric field per metric)."""

    every: Duration = Field(60.0, description="bucket width")
    lateness: Duration = Field(30.0, description="a bucket closes when the stream's clock passes its end by this; "
                                                  "an event for a closed bucket is a dead letter (code late)")
    by: str | None = Field(None, description="the field whose values are the entities (default: schema.key_field)")
    metrics: list[MetricSpec] = Field(min_length=1)

    @model_validator(mode="after")
    def _distinct_names(self) -> AggregateSpec:
        names = [m.name for m in self.metrics]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise ValueError(f"metrics {twice} are named twice; give each metric its own name")
        return self
