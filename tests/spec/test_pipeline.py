"""The pipeline spec: the reference spec loads, and mistakes name the field and the fix."""

import pytest
import yaml

from tocsin.spec import SpecError, format_duration, load_spec, parse_duration, parse_spec

REFERENCE = "examples/transactions.yaml"


def reference_dict():
    with open(REFERENCE) as handle:
        return yaml.safe_load(handle)


def test_reference_spec_loads():
    spec = load_spec(REFERENCE)
    assert spec.name == "transactions"
    assert spec.event_schema.key_field == "card_id"
    assert spec.features[0].windows == [60.0, 3600.0]
    assert spec.runner.max_wait == pytest.approx(0.1)


@pytest.mark.parametrize(("text", "seconds"), [("90s", 90), ("10m", 600), ("1h", 3600), ("7d", 604800), (5, 5), ("250ms", 0.25)])
def test_durations(text, seconds):
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("bad", ["abc", "-1m", 0, True, "1y"])
def test_bad_durations_are_rejected(bad):
    with pytest.raises(ValueError, match="duration"):
        parse_duration(bad)


def test_format_duration():
    assert [format_duration(s) for s in (60, 3600, 86400, 90, 0.5)] == ["1m", "1h", "1d", "90s", "0.5s"]


def expect_error(data, *fragments):
    with pytest.raises(SpecError) as info:
        parse_spec(data, "test.yaml")
    message = str(info.value)
    for fragment in fragments:
        assert fragment in message, message
    return message


def test_error_names_path_and_expectation():
    data = reference_dict()
    data["features"][1]["half_life"] = "soon"
    expect_error(data, "features.1.decayed_stats.half_life", "expected a duration such as 30s")


def test_unknown_field_is_named():
    data = reference_dict()
    data["runner"]["batch_sise"] = 10
    expect_error(data, "runner.batch_sise", "unknown field")


def test_missing_required_field():
    data = reference_dict()
    del data["schema"]["key_field"]
    expect_error(data, "schema.key_field", "Field required")


def test_feature_on_undeclared_field_names_the_fix():
    data = reference_dict()
    data["features"][0]["field"] = "amt"
    expect_error(data, "features.0.field", "'amt' is not a declared numeric field", "schema.numeric")


def test_feature_by_must_be_categorical():
    data = reference_dict()
    data["features"][2]["by"] = "amount"
    expect_error(data, "features.2.by", "not a categorical field")


def test_field_declared_twice():
    data = reference_dict()
    data["schema"]["categorical"].append("amount")
    expect_error(data, "declared twice")


def test_unknown_feature_kind():
    data = reference_dict()
    data["features"][0]["kind"] = "histogram"
    expect_error(data, "features.0", "kind")


def test_severity_order():
    data = reference_dict()
    data["severity"] = {"warning": 0.999, "critical": 0.99}
    expect_error(data, "severity", "critical")


def test_yaml_syntax_error(tmp_path):
    path = tmp_path / "broken.yaml"
    path.write_text("name: [unclosed\n")
    with pytest.raises(SpecError, match="not valid YAML"):
        load_spec(path)


def test_relative_file_source_resolves_against_spec_dir(tmp_path):
    (tmp_path / "events.jsonl").write_text("")
    data = reference_dict()
    data["source"] = {"kind": "file", "path": "events.jsonl"}
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(data))
    assert load_spec(path).source.path == (tmp_path / "events.jsonl").resolve()


def test_every_spec_model_stands_on_the_one_base():
    """One base (frozen, unknown fields refused) for every section, not a copy per module."""
    import inspect

    from pydantic import BaseModel
    from pydantic_settings import BaseSettings

    import tocsin.spec as spec_package
    from tocsin.spec import SpecModel

    models = {value for name in dir(spec_package) for value in [getattr(spec_package, name)]
              if inspect.isclass(value) and issubclass(value, BaseModel)}
    for module in ("alerting", "detection", "features", "runtime", "schema", "sources", "pipeline"):
        namespace = vars(__import__(f"tocsin.spec.{module}", fromlist=["_"]))
        models |= {v for v in namespace.values() if inspect.isclass(v) and issubclass(v, BaseModel) and v.__module__.startswith("tocsin.spec")}
    models.discard(SpecModel)
    models = {m for m in models if not issubclass(m, BaseSettings)}  # the environment's overrides: not a section
    assert len(models) > 20
    assert [m.__name__ for m in models if not issubclass(m, SpecModel)] == []
    assert all(m.model_config.get("extra") == "forbid" and m.model_config.get("frozen") for m in models)
