"""The whole spec (:class:`PipelineSpec`), its checks across sections, and loading it from YAML."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import ConfigDict, Field, ValidationError, model_validator

from tocsin.spec.aggregate import AggregateSpec
from tocsin.spec.quality import READING_METRIC, READING_VALUE, QualitySpec
from tocsin.spec.alerting import AlertingSpec
from tocsin.spec.base import SpecError, SpecModel
from tocsin.spec.environment import apply_environment
from tocsin.spec.detection import (
    CalibrationSpec, DetectorSpec, DriftSpec, RuleSpec, SeveritySpec, SilenceSpec, SupervisedSpec, ThresholdSpec,
)
from tocsin.spec.features import FeatureSpec
from tocsin.spec.runtime import CheckpointSpec, MetricsSpec, RegistrySpec, RunnerSpec, StoreSpec, StreamSettings
from tocsin.spec.schema import AdmissionSpec, SchemaSpec
from tocsin.spec.sources import FileSource, SourceSpec
from tocsin.vocabulary import SEVERITY_ORDER, Severity


class PipelineSpec(SpecModel):
    name: str = Field(pattern=r"^[A-Za-z0-9_.-]+$")
    source: SourceSpec
    event_schema: SchemaSpec = Field(alias="schema")
    admission: AdmissionSpec = Field(default_factory=AdmissionSpec)
    aggregate: AggregateSpec | None = Field(
        None, description="turn events into per-entity readings per time bucket before the features (request logs)")
    quality: QualitySpec | None = Field(
        None, description="profile the rows of a table or topic per source and bucket (data quality): volume, nulls, rejects, "
                          "freshness, drift and schema changes become readings the features watch")
    features: list[FeatureSpec] = Field(min_length=1)
    detector: DetectorSpec = Field(default_factory=DetectorSpec)
    calibration: CalibrationSpec = Field(default_factory=CalibrationSpec)
    threshold: ThresholdSpec = Field(default_factory=ThresholdSpec)
    severity: SeveritySpec = Field(default_factory=SeveritySpec)
    drift: DriftSpec = Field(default_factory=DriftSpec)
    supervised: SupervisedSpec = Field(default_factory=SupervisedSpec)
    silence: SilenceSpec = Field(default_factory=SilenceSpec)
    rules: list[RuleSpec] = Field(default_factory=list, description="rules beside the model: what they fire on is an anomaly")
    store: StoreSpec = Field(default_factory=StoreSpec)
    checkpoint: CheckpointSpec = Field(default_factory=CheckpointSpec)
    runner: RunnerSpec = Field(default_factory=RunnerSpec)
    stream: StreamSettings = Field(default_factory=StreamSettings)
    metrics: MetricsSpec = Field(default_factory=MetricsSpec)
    registry: RegistrySpec = Field(default_factory=RegistrySpec)
    alerting: AlertingSpec = Field(default_factory=AlertingSpec)

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    @model_validator(mode="after")
    def _quality_reads_readings(self) -> PipelineSpec:
        """A data-quality pipeline's features read its readings: ``value``, one series per ``metric``."""
        if self.quality is None:
            return self
        if self.aggregate is not None:
            raise ValueError("quality and aggregate: a pipeline either profiles rows (quality) or aggregates events "
                             "(aggregate); remove one of them")
        if self.quality.arrival_field in (self.event_schema.key_field, self.event_schema.time_field):
            raise ValueError(f"quality.arrival_field: {self.quality.arrival_field!r} is the key or time field; name the "
                             "field holding when a row arrived")
        for i, feature in enumerate(self.features):
            field, metric = getattr(feature, "field", None), getattr(feature, "metric_field", None)
            by = getattr(feature, "by", "entity")
            if feature.kind != "series" or field != READING_VALUE or metric != READING_METRIC or by not in ("entity", None):
                raise ValueError(f"features.{i}: a quality pipeline's features read its readings; use "
                                 f"{{kind: series, field: {READING_VALUE}, metric_field: {READING_METRIC}}}")
        if self.alerting.group_by is not None:
            raise ValueError("alerting.group_by: a quality pipeline's readings carry only their source; remove group_by")
        return self

    @model_validator(mode="after")
    def _features_name_declared_fields(self) -> PipelineSpec:
        schema = self.event_schema
        if self.quality is not None:
            return self  # checked by _quality_reads_readings
        for i, feature in enumerate(self.features):
            by = getattr(feature, "by", "entity")
            if by not in ("entity", "global", None) and by not in schema.categorical:
                raise ValueError(
                    f"features.{i}.by: {by!r} is not a categorical field; use 'entity', 'global' "
                    f"or one of {schema.categorical}"
                )
            for role in ("lat_field", "lon_field"):
                place = getattr(feature, role, None)
                if place is not None and place not in schema.numeric_fields:
                    raise ValueError(f"features.{i}.{role}: {place!r} is not a declared numeric field; add it to "
                                     f"schema.numeric or use one of {schema.numeric_fields}")
            page_field = getattr(feature, "page_field", None)
            if page_field is not None and page_field not in schema.categorical:
                raise ValueError(f"features.{i}.page_field: {page_field!r} is not a declared categorical field; add it to "
                                 f"schema.categorical or use one of {schema.categorical}")
            metric_field = getattr(feature, "metric_field", None)
            if metric_field is not None and metric_field not in schema.categorical:
                raise ValueError(
                    f"features.{i}.metric_field: {metric_field!r} is not a declared categorical field; add it to "
                    f"schema.categorical or use one of {schema.categorical}"
                )
            name = getattr(feature, "field", None)
            if name is None:
                continue
            wanted = schema.categorical if feature.kind == "novelty" else schema.numeric_fields
            role = "categorical" if feature.kind == "novelty" else "numeric"
            if self.aggregate is not None and feature.kind != "novelty":
                wanted, role = [m.name for m in self.aggregate.metrics], "aggregate metric"
                if name not in wanted:
                    raise ValueError(f"features.{i}.field: {name!r} is not an aggregate metric (features read the "
                                     f"buckets' readings); use one of {wanted} or add a metric named {name!r}")
            if name not in wanted:
                raise ValueError(
                    f"features.{i}.field: {name!r} is not a declared {role} field; add it to schema.{role} "
                    f"or use one of {wanted}"
                )
        return self

    @model_validator(mode="after")
    def _alerts_group_by_a_category(self) -> PipelineSpec:
        group_by = self.alerting.group_by
        if group_by is not None:
            schema = self.event_schema
            if group_by not in schema.categorical:
                raise ValueError(f"alerting.group_by: {group_by!r} is not a categorical field; declare it in "
                                 f"schema.categorical or use one of {schema.categorical}")
            if group_by in schema.sensitive:
                raise ValueError(f"alerting.group_by: {group_by!r} is sensitive, and an alert's entity is shown to "
                                 "viewers in clear; group by another field")
            if self.aggregate is not None:
                raise ValueError("alerting.group_by: an aggregating pipeline's readings carry only their entity; "
                                 "use aggregate.by to choose it")
        return self

    @model_validator(mode="after")
    def _aggregate_reads_declared_fields(self) -> PipelineSpec:
        if self.aggregate is None:
            return self
        schema = self.event_schema
        if self.aggregate.by is not None and self.aggregate.by not in schema.categorical:
            raise ValueError(f"aggregate.by: {self.aggregate.by!r} is not a categorical field; declare it in "
                             f"schema.categorical or leave it out (the key field, {schema.key_field!r})")
        for j, metric in enumerate(self.aggregate.metrics):
            field = metric.field
            if metric.kind == "distinct":
                if field not in (*schema.numeric_fields, *schema.categorical, schema.id_field):
                    raise ValueError(f"aggregate.metrics.{j}.field: {field!r} is not a declared field; add it to schema.categorical")
            elif field is not None and field not in schema.numeric_fields:
                raise ValueError(f"aggregate.metrics.{j}.field: {field!r} is not a declared numeric field; add it to "
                                 f"schema.numeric or use one of {schema.numeric_fields}")
            if metric.worst_of is not None and metric.worst_of not in schema.categorical:
                raise ValueError(f"aggregate.metrics.{j}.worst_of: {metric.worst_of!r} is not a declared categorical field; "
                                 f"add it to schema.categorical or use one of {schema.categorical}")
            if metric.where is not None:
                target = metric.where.split()[0].rstrip("<>=!")
                quoted = metric.where.rstrip().endswith(("'", '"'))
                declared = schema.categorical if quoted else schema.numeric_fields
                if target not in declared:
                    role = "categorical" if quoted else "numeric"
                    raise ValueError(f"aggregate.metrics.{j}.where: {target!r} is not a declared {role} field; "
                                     f"add it to schema.{role}")
        return self

    def severity_cutoff(self, severity: Severity) -> float:
        """The calibrated score an anomaly of ``severity`` reaches at least: the threshold for info, else the
        severity's cut-off (what a rule hit or a silence scores, so routes and thresholds keep their meaning)."""
        return (self.threshold.value, self.severity.warning, self.severity.critical)[SEVERITY_ORDER[severity]]

    @model_validator(mode="after")
    def _retrain_has_what_it_needs(self) -> PipelineSpec:
        if self.drift.retrain and self.drift.psi_alert is None:
            raise ValueError("drift.retrain: retraining starts on a model-drift alert, and drift.psi_alert is null; set psi_alert (e.g. 0.25)")
        if self.drift.retrain and not self.registry.follow:
            raise ValueError("drift.retrain: the retrained version is named challenger, which only a driver following the registry "
                             "scores; set registry.follow: true or drift.retrain: false")
        return self


def _format_validation_error(error: ValidationError, source: str) -> str:
    lines = [f"invalid pipeline spec {source}:"]
    for item in error.errors():
        path = ".".join(str(part) for part in item["loc"] if not str(part).startswith("function-"))
        message = item["msg"].removeprefix("Value error, ")
        if item["type"] == "extra_forbidden":
            message = "unknown field; remove it or check its spelling"
        elif item["type"] == "union_tag_invalid":
            message = f"{message} (this field's 'kind' picks its type)"
        got = item.get("input")
        hint = "" if item["type"] in ("missing", "value_error") or isinstance(got, dict) else f" (got {got!r})"
        lines.append(f"  {path or '<root>'}: {message}{hint}")
    return "\n".join(lines)


def parse_spec(data: Any, source: str = "<dict>") -> PipelineSpec:
    """A validated spec from already-parsed YAML/JSON data."""
    if not isinstance(data, dict):
        raise SpecError(f"invalid pipeline spec {source}: the top level must be a mapping, got {type(data).__name__}")
    try:
        return PipelineSpec.model_validate(data)
    except ValidationError as error:
        raise SpecError(_format_validation_error(error, source)) from None


def load_spec(path: str | Path) -> PipelineSpec:
    """Read and validate a YAML pipeline spec; relative paths inside it resolve against its folder, and
    the deployment's ``TOCSIN_*`` environment variables (:mod:`tocsin.spec.environment`) override it."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as error:
        raise SpecError(f"cannot read pipeline spec {path}: {error.strerror}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise SpecError(f"pipeline spec {path} is not valid YAML: {error}") from None
    spec = parse_spec(data, str(path))
    if isinstance(spec.source, FileSource) and not spec.source.path.is_absolute():
        resolved = (path.parent / spec.source.path).resolve()
        if resolved.exists() or not spec.source.path.exists():
            spec = spec.model_copy(update={"source": spec.source.model_copy(update={"path": resolved})})
    return apply_environment(spec)
