import pytest
import yaml

from tocsin.spec import parse_spec

REFERENCE = "examples/transactions.yaml"


def small_spec_dict(tmp_path, **source):
    with open(REFERENCE) as handle:
        data = yaml.safe_load(handle)
    data["source"].update({"users": 300, "warmup_days": 0.5, "fraud_rate": 0.01, **source})
    data["detector"]["warmup_events"] = 2_000
    data["detector"]["refit_every"] = 3_000
    data["detector"]["train_window"] = 5_000
    data["detector"]["params"]["n_estimators"] = 50
    data["calibration"]["window"] = 5_000
    data["runner"]["batch_size"] = 1_000
    data["store"]["url"] = f"sqlite:///{tmp_path / 'store.db'}"
    data["checkpoint"]["dir"] = str(tmp_path / "checkpoints")
    return data


@pytest.fixture
def small_spec(tmp_path):
    return parse_spec(small_spec_dict(tmp_path))
