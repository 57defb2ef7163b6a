"""Data-quality monitoring (the ``quality`` section): the rows of a table or topic become, per source and
event-time bucket, readings of their volume, nulls, rejects, freshness and drift, which the series
features then watch like any metric (``tocsin.engine.quality``)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from tocsin.durations import Duration
from tocsin.spec.base import SpecModel
from tocsin.vocabulary import Severity

#: the readings' fields: features read ``value``, named per series by ``metric`` (long format)
READING_VALUE, READING_METRIC = "value", "metric"


class QualitySpec(SpecModel):
    """Profile every row (whatever columns it has) per source (``schema.key_field``: the table or topic) and
    bucket; a closed bucket becomes one reading per measure, ``metric`` naming it (``rows``,
    ``amount.null_share``, ``country.drift``, ...) and ``value`` holding it."""

    every: Duration = Field(3_600.0, description="bucket width: one reading of each measure per source per bucket (a batch's cadence)")
    lateness: Duration = Field(60.0, description="a bucket closes when the stream's clock passes its end by this; a later row "
                                                 "is a dead letter (code late), counted in the bucket it arrived in")
    arrival_field: str | None = Field(None, description="the field holding when a row arrived or was loaded (same format as "
                                                        "the time field): `lag_s`, its median lag behind the event time, is watched")
    columns: list[str] | None = Field(None, description="watch only these fields (null: every field the rows carry)")
    ignore: list[str] = Field(default_factory=list, description="fields never watched (row ids, free text)")
    reference: int = Field(12, ge=1, le=1_000, description="closed buckets a column's drift is measured against (the latest this many; "
                                                                           "no drift reading until that many closed)")
    bins: int = Field(10, ge=2, le=100, description="drift bins: quantiles of the reference for numbers, its commonest values for text")
    min_rows: int = Field(30, ge=1, description="a bucket with fewer rows reports no shares (nulls, wrong types, duplicates): "
                          "the shares of a handful of rows are noise")
    shares: Literal["share", "lower_bound"] = Field(
        "share", description="how null, wrong-type and unseen shares are read: share as they are; lower_bound as what they "
        "are at least (the lower end of their 95% Wilson interval), so 5 nulls in a night load of 34 rows (at least 0.06) "
        "is not read like 50 in 340 (at least 0.11)")
    schema_severity: Severity = Field("warning", description="severity of a schema change (field added, removed, type changed)")

    @model_validator(mode="after")
    def _columns_not_ignored(self) -> QualitySpec:
        both = sorted(set(self.columns or []) & set(self.ignore))
        if both:
            raise ValueError(f"quality: {both} are both in columns and ignore; keep each field in one of them")
        return self
