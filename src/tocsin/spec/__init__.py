"""The pipeline spec: one YAML file says where events come from, what they look
like, which features and detectors run, and where results go.

Validated by pydantic at load, so a mistake fails before any event is read,
with a message that names the field path and what was expected. One module per
section, all on one base (:mod:`tocsin.spec.base`); deployment overrides from
the environment are applied in one place (:mod:`tocsin.spec.environment`).

This package is a leaf: it imports nothing from the rest of tocsin but the
duration grammar (:mod:`tocsin.durations`) and the shared vocabulary
(:mod:`tocsin.vocabulary`), so every other part can depend on it.
"""

from tocsin.durations import Duration, format_duration, parse_duration
from tocsin.spec.alerting import AlertingSpec
from tocsin.spec.base import SpecError, SpecModel
from tocsin.spec.detection import (
    CalibrationSpec, DetectorSpec, DriftSpec, RuleSpec, SeveritySpec, SilenceSpec, SupervisedSpec, ThresholdSpec,
)
from tocsin.spec.environment import EnvironmentOverrides, apply_environment
from tocsin.spec.features import (
    DecayedStatsFeature,
    FeatureSpec,
    NoveltyFeature, ConfirmedFeature,
    RecencyFeature,
    SeriesFeature,
    TravelFeature,
    ValueFeature,
    VelocityFeature,
    WindowFeature,
)
from tocsin.spec.pipeline import PipelineSpec, load_spec, parse_spec
from tocsin.spec.quality import QualitySpec
from tocsin.spec.runtime import CheckpointSpec, MetricsSpec, RegistrySpec, RunnerSpec, StoreSpec, StreamSettings
from tocsin.spec.schema import AdmissionSpec, SchemaSpec
from tocsin.spec.sources import FileSource, KafkaSource, SimulatorSource, SourceSpec

__all__ = [
    "AdmissionSpec", "AlertingSpec", "CalibrationSpec", "CheckpointSpec", "DecayedStatsFeature", "DetectorSpec", "DriftSpec", "SupervisedSpec", "Duration",
    "EnvironmentOverrides", "FeatureSpec", "FileSource", "KafkaSource", "MetricsSpec", "NoveltyFeature", "ConfirmedFeature", "PipelineSpec", "QualitySpec",
    "RecencyFeature", "RegistrySpec", "RuleSpec", "SeriesFeature", "RunnerSpec", "SchemaSpec", "SeveritySpec", "SilenceSpec", "SimulatorSource", "SourceSpec", "SpecError",
    "SpecModel", "StoreSpec", "StreamSettings", "ThresholdSpec", "TravelFeature", "ValueFeature", "VelocityFeature", "WindowFeature",
    "apply_environment", "format_duration", "load_spec", "parse_duration", "parse_spec",
]
