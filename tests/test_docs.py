"""docs/spec.md names every field of the spec models, so the reference cannot silently drift."""

from pathlib import Path

import pytest

from tocsin import spec
from tocsin.spec.aggregate import AggregateSpec, MetricSpec
from tocsin.spec.features import NavigationFeature
from tocsin.spec.quality import QualitySpec

DOC = (Path(__file__).resolve().parents[1] / "docs" / "spec.md").read_text()
MODELS = [
    spec.SimulatorSource, spec.FileSource, spec.KafkaSource, spec.SchemaSpec, spec.AdmissionSpec, spec.WindowFeature, spec.DecayedStatsFeature,
    spec.RecencyFeature, spec.VelocityFeature, spec.NoveltyFeature, spec.ConfirmedFeature, spec.SeriesFeature, spec.TravelFeature, spec.ValueFeature, spec.DetectorSpec,
    spec.CalibrationSpec, spec.ThresholdSpec, spec.SeveritySpec, spec.StoreSpec, spec.CheckpointSpec, spec.RunnerSpec,
    spec.StreamSettings, spec.MetricsSpec, spec.RegistrySpec, spec.DriftSpec, spec.SupervisedSpec, spec.SilenceSpec, spec.RuleSpec, AggregateSpec, MetricSpec,
    QualitySpec, NavigationFeature,
]


@pytest.mark.parametrize("model", MODELS, ids=lambda m: m.__name__)
def test_every_field_is_documented(model):
    missing = [f.alias or name for name, f in model.model_fields.items() if f"`{f.alias or name}`" not in DOC]
    assert not missing, f"docs/spec.md does not describe {model.__name__} fields {missing}"
