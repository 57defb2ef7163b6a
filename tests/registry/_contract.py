"""The Registry contract, run over every backend (tests/registry/test_store.py, tests/registry/test_mlflow.py).

``make_version`` builds a realistic version of the reference spec for other tests (CLI, API, dashboard)
that need registered versions before ``tocsin train`` exists in their setup.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np
import pytest

from tocsin import __version__
from tocsin.registry import CHALLENGER, CHAMPION, ModelVersion, Registry, RegistryError, UnknownVersion, model_sections, spec_hash
from tocsin.spec import load_spec

REFERENCE = Path(__file__).resolve().parents[2] / "src" / "tocsin" / "specs" / "transactions.yaml"


def make_version(pipeline: str, rows: int = 1_000, aucpr: float | None = 0.5, created_by: str = "test") -> ModelVersion:
    """A version of the reference spec's model, as ``tocsin train`` describes one."""
    spec = load_spec(REFERENCE)
    sections = model_sections(spec)
    return ModelVersion(
        pipeline=pipeline, spec_hash=spec_hash(spec), feature_names=["amount_zscore_1d", "velocity_per_min_10m", "merchant_id_novel"],
        detector=spec.detector.kind, sections=sections, trained_from=1_767_225_600.0, trained_until=1_767_312_000.0, rows=rows,
        metrics={"aucpr": aucpr, "precision": 0.8, "recall": float("nan")}, tocsin_version=__version__, created_by=created_by,
        note=f"{rows} rows",
    )


def sample_arrays(seed: int) -> dict[str, np.ndarray]:
    """Arrays of every kind a model holds: floats (NaN, -0.0, inf included), ints, bools, text, empty, 0-d, 3-d."""
    rng = np.random.default_rng(seed)
    weights = rng.normal(size=(7, 5))
    weights[0, 0], weights[0, 1], weights[0, 2] = np.nan, -0.0, np.inf
    return {
        "detector/weights": weights,
        "detector/thresholds": rng.normal(size=11).astype(np.float32),
        "detector/children": rng.integers(-1, 2**40, size=(3, 9), dtype=np.int64),
        "detector/leaf": rng.random(6) > 0.5,
        "calibration/reference": np.sort(rng.random(1_000)),
        "calibration/count": np.asarray(seed, dtype=np.uint32),
        "features/names": np.asarray(["amount", "velocity", "montant_€"]),
        "empty": np.zeros((0, 4), dtype=np.uint8),
        "cube": np.arange(24, dtype=np.int16).reshape(2, 3, 4),
        "big_endian": np.arange(5, dtype=">f8"),
    }


def assert_same_arrays(got: dict[str, np.ndarray], want: dict[str, np.ndarray]) -> None:
    assert list(got) == list(want)
    for name, array in want.items():
        assert got[name].dtype == array.dtype and got[name].shape == array.shape, name
        assert got[name].tobytes() == array.tobytes(), f"{name} differs"


def check_contract(registry: Registry, pipeline: str, other: str) -> None:
    """Every registry behaves the same: numbering, arrays, versions, aliases, promotion and rollback, errors."""
    # nothing yet
    assert registry.versions(pipeline) == []
    assert registry.alias(pipeline, CHAMPION) is None and registry.alias_history(pipeline, CHAMPION) == []
    with pytest.raises(UnknownVersion, match="none yet"):
        registry.get(pipeline, 1)
    with pytest.raises(UnknownVersion):
        registry.arrays(pipeline, 1)

    # numbered 1, 2, 3 per pipeline; the description and the arrays come back as they went in
    described = make_version(pipeline, rows=100)
    first = registry.register(described, sample_arrays(1))
    assert first.version == 1 and first.aliases == ()
    assert first.as_dict() == {**described.as_dict(), "version": 1, "metrics": {"aucpr": 0.5, "precision": 0.8, "recall": None}}
    assert [registry.register(make_version(pipeline, rows=n), sample_arrays(n)).version for n in (200, 300)] == [2, 3]
    assert [(v.version, v.rows) for v in registry.versions(pipeline)] == [(1, 100), (2, 200), (3, 300)]
    assert registry.get(pipeline, 2) == registry.versions(pipeline)[1]
    assert_same_arrays(registry.arrays(pipeline, 1), sample_arrays(1))
    assert_same_arrays(registry.arrays(pipeline, 3), sample_arrays(300))
    with pytest.raises(TypeError, match="object arrays"):
        registry.register(make_version(pipeline), {"bad": np.asarray([{"a": 1}], dtype=object)})
    assert len(registry.versions(pipeline)) == 3, "a refused registration leaves nothing behind"

    # two trainers registering at the same time get distinct numbers
    numbers: list[int] = []
    start = threading.Barrier(2)

    def trainer(seed: int) -> None:
        start.wait()
        for i in range(2):
            numbers.append(registry.register(make_version(pipeline, rows=seed + i), sample_arrays(seed + i)).version)

    threads = [threading.Thread(target=trainer, args=(seed,)) for seed in (1_000, 2_000)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert sorted(numbers) == [4, 5, 6, 7]
    for version in registry.versions(pipeline)[3:]:  # each number holds its own trainer's arrays
        assert_same_arrays(registry.arrays(pipeline, version.version), sample_arrays(version.rows))

    # another pipeline numbers from 1 and sees nothing of this one
    assert registry.register(make_version(other), sample_arrays(9)).version == 1
    assert [v.version for v in registry.versions(other)] == [1]

    # promote 1, 2, 3; roll back to 2, then 1; then there is nothing earlier
    assert registry.promote(pipeline, 1, by="alice").aliases == (CHAMPION,)
    assert registry.alias(pipeline, CHAMPION) == 1
    registry.promote(pipeline, 2, by="bob")
    registry.promote(pipeline, 3, CHAMPION, by="carol")
    assert registry.alias(pipeline, CHAMPION) == 3
    assert registry.rollback(pipeline, by="dave") == 2 and registry.alias(pipeline, CHAMPION) == 2
    assert registry.rollback(pipeline) == 1 and registry.alias(pipeline, CHAMPION) == 1
    with pytest.raises(RegistryError, match="no earlier version"):
        registry.rollback(pipeline)
    assert registry.alias(pipeline, CHAMPION) == 1, "a refused rollback changes nothing"
    assert registry.promote(pipeline, 4).version == 4 and registry.alias(pipeline, CHAMPION) == 4
    assert registry.rollback(pipeline, CHAMPION) == 1
    history = registry.alias_history(pipeline, CHAMPION)
    assert [(c.kind, c.version, c.by) for c in history] == [
        ("promote", 1, "alice"), ("promote", 2, "bob"), ("promote", 3, "carol"), ("rollback", 2, "dave"), ("rollback", 1, ""),
        ("promote", 4, ""), ("rollback", 1, ""),
    ]
    assert all(a.at <= b.at for a, b in zip(history, history[1:])) and abs(history[-1].at - time.time()) < 120

    # the challenger is its own alias; aliases show on the versions they name
    registry.promote(pipeline, 5, CHALLENGER, by="erin")
    assert registry.alias(pipeline, CHALLENGER) == 5 and registry.alias(pipeline, CHAMPION) == 1
    registry.promote(pipeline, 1, CHALLENGER)
    shown = {v.version: v.aliases for v in registry.versions(pipeline)}
    assert shown == {1: (CHAMPION, CHALLENGER), 2: (), 3: (), 4: (), 5: (), 6: (), 7: ()}
    assert registry.get(pipeline, 1).aliases == (CHAMPION, CHALLENGER)
    assert registry.rollback(pipeline, CHALLENGER) == 5 and registry.get(pipeline, 5).aliases == (CHALLENGER,)
    assert registry.alias(other, CHAMPION) is None and registry.versions(other)[0].aliases == ()

    # what is not there fails clearly
    with pytest.raises(UnknownVersion, match=r"no model version 99; versions: \[1, 2, 3, 4, 5, 6, 7\]"):
        registry.promote(pipeline, 99)
    with pytest.raises(UnknownVersion, match="no model version 99"):
        registry.get(pipeline, 99)
    with pytest.raises(UnknownVersion, match="no model version 8"):
        registry.arrays(pipeline, 8)
    for call in (lambda: registry.promote(pipeline, 1, "production"), lambda: registry.alias(pipeline, "production"),
                 lambda: registry.rollback(pipeline, "production"), lambda: registry.alias_history(pipeline, "production")):
        with pytest.raises(RegistryError, match=r"alias 'production': use one of \['champion', 'challenger'\]"):
            call()
    assert registry.alias(pipeline, CHAMPION) == 1 and registry.alias(pipeline, CHALLENGER) == 5
