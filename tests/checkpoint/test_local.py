"""Tests for src/tocsin/checkpoint/local.py: atomic, crash-safe checkpoint files."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
import zipfile

import numpy as np
import pytest
from hypothesis import given, settings

import tocsin.checkpoint.base
from tocsin.checkpoint import CheckpointError, LocalCheckpointStore, flatten_state, unflatten_state
from tocsin.checkpoint.local import file_stem

from .test_state import assert_same_array, assert_same_state, nested_states


def state_at(offset: int) -> dict[str, np.ndarray]:
    """A state whose every array encodes the offset it reflects, to detect mixes."""
    return flatten_state(
        {
            "features": {"count": np.full(2000, offset, dtype=np.int64), "mean": np.full(500, offset / 7.0)},
            "detector": {"version": "hst-1", "offset": offset},
        }
    )


def assert_consistent(checkpoint) -> None:
    offset = checkpoint.offset
    assert (checkpoint.state["features/count"] == offset).all()
    assert np.allclose(checkpoint.state["features/mean"], offset / 7.0)
    assert int(checkpoint.state["detector/offset"]) == offset


def test_round_trip(tmp_path):
    store = LocalCheckpointStore(tmp_path / "ckpt")
    before = time.time()
    saved = store.save("tx-0", state_at(41), 41, meta={"model_version": 3, "spec": "abc"})
    loaded = store.load("tx-0")
    assert loaded.partition == "tx-0" and loaded.offset == 41
    assert loaded.meta == {"model_version": 3, "spec": "abc"}
    assert loaded.created_at == saved.created_at >= before
    assert loaded.state.keys() == saved.state.keys()
    for key in saved.state:
        assert_same_array(saved.state[key], loaded.state[key])
    assert store.load("tx-1") is None


@settings(max_examples=40, deadline=None)
@given(nested_states)
def test_round_trip_any_state(state):
    with tempfile.TemporaryDirectory() as directory:
        store = LocalCheckpointStore(directory)
        store.save("p", flatten_state(state), 7)
        assert_same_state(state, unflatten_state(store.load("p").state))


def test_overwrite_keeps_previous(tmp_path):
    store = LocalCheckpointStore(tmp_path)
    for offset in (10, 20, 30):
        store.save("p", state_at(offset), offset)
    assert store.load("p").offset == 30
    assert store.previous_path("p").exists()
    assert sorted(os.listdir(tmp_path)) == sorted([store.path("p").name, store.previous_path("p").name])


def test_partition_names_are_sanitised_and_distinct(tmp_path):
    store = LocalCheckpointStore(tmp_path)
    names = ["kafka:tx/3", "kafka_tx_3", "A", "a", "x.prev", "x", "../../etc/passwd", "ünïcode 🙂", "." * 300]
    for i, name in enumerate(names):
        store.save(name, {"i": np.asarray(i)}, i)
    assert store.partitions() == sorted(names)
    for i, name in enumerate(names):
        assert int(store.load(name).state["i"]) == i
    files = os.listdir(tmp_path)
    assert len(files) == len(names)
    assert all(f.endswith(".npz") and "/" not in f and ".prev" not in f and len(f) < 100 for f in files)
    assert len({f.lower() for f in files}) == len(files)
    assert file_stem("kafka:tx/3").startswith("kafka_tx_3-")
    with pytest.raises(ValueError):
        file_stem("")


def test_delete(tmp_path):
    store = LocalCheckpointStore(tmp_path)
    store.save("p", state_at(1), 1)
    store.save("p", state_at(2), 2)
    store.save("q", state_at(3), 3)
    store.delete("p")
    store.delete("never-saved")
    assert store.load("p") is None
    assert store.partitions() == ["q"]


def test_state_and_meta_errors_touch_no_file(tmp_path):
    store = LocalCheckpointStore(tmp_path)
    store.save("p", state_at(1), 1)
    with pytest.raises(TypeError):
        store.save("p", {"bad": np.array([object()])}, 2)
    with pytest.raises(TypeError):
        store.save("p", state_at(2), 2, meta={"not json": object()})
    assert store.load("p").offset == 1
    assert not store.previous_path("p").exists()


def truncate(path, keep: float = 0.5) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])


def test_truncated_newest_falls_back_to_previous_with_warning(tmp_path, caplog):
    store = LocalCheckpointStore(tmp_path)
    store.save("p", state_at(10), 10)
    store.save("p", state_at(20), 20)
    truncate(store.path("p"))
    with caplog.at_level(logging.WARNING, logger="tocsin.checkpoint.local"):
        checkpoint = store.load("p")
    assert checkpoint.offset == 10
    assert_consistent(checkpoint)
    assert "falling back to the previous one" in caplog.text
    assert store.partitions() == ["p"]
    # the next save replaces the bad file and the store is healthy again
    store.save("p", state_at(30), 30)
    assert store.load("p").offset == 30


def test_corrupted_bytes_are_caught_by_the_crc(tmp_path, caplog):
    store = LocalCheckpointStore(tmp_path)
    store.save("p", state_at(10), 10)
    store.save("p", state_at(20), 20)
    data = bytearray(store.path("p").read_bytes())
    data[len(data) // 3] ^= 0xFF  # inside the first big array, not in a header
    store.path("p").write_bytes(bytes(data))
    with caplog.at_level(logging.WARNING):
        assert store.load("p").offset == 10
    assert "BadZipFile" in caplog.text or "CRC" in caplog.text


def test_unknown_format_version_is_not_trusted(tmp_path, monkeypatch):
    store = LocalCheckpointStore(tmp_path)
    store.save("p", state_at(10), 10)
    monkeypatch.setattr("tocsin.checkpoint.base.FORMAT_VERSION", 99)
    store.save("p", state_at(20), 20)
    monkeypatch.undo()
    assert store.load("p").offset == 10


def test_all_copies_unreadable_raises_instead_of_starting_over(tmp_path):
    store = LocalCheckpointStore(tmp_path)
    store.save("p", state_at(10), 10)
    store.save("p", state_at(20), 20)
    truncate(store.path("p"))
    truncate(store.previous_path("p"), keep=0.1)
    with pytest.raises(CheckpointError, match="no readable copy"):
        store.load("p")


def test_missing_newest_uses_previous(tmp_path, caplog):
    store = LocalCheckpointStore(tmp_path)
    store.save("p", state_at(10), 10)
    store.save("p", state_at(20), 20)
    store.path("p").unlink()
    with caplog.at_level(logging.WARNING):
        assert store.load("p").offset == 10
    assert "missing" in caplog.text


CHILD = textwrap.dedent(
    """
    import os, sys
    import numpy as np
    from tests.checkpoint.test_local import state_at
    from tocsin.checkpoint.local import LocalCheckpointStore

    directory, die_at_replace = sys.argv[1], int(sys.argv[2])
    store = LocalCheckpointStore(directory)
    store.save("p", state_at(10), 10)
    store.save("p", state_at(20), 20)
    calls = 0
    real_replace = os.replace
    def dying_replace(src, dst):
        global calls
        calls += 1
        if calls == die_at_replace:
            os._exit(17)  # no cleanup, no flush: as if killed
        real_replace(src, dst)
    os.replace = dying_replace
    store.save("p", state_at(30), 30)
    os._exit(0)
    """
)


def run_child(script: str, *args: str, **kwargs) -> subprocess.Popen:
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    return subprocess.Popen([sys.executable, "-c", script, *args], cwd=root, **kwargs)


@pytest.mark.parametrize(
    ("die_at_replace", "expected_offset", "fell_back"),
    [
        (1, 20, False),  # temp file written and fsynced, nothing renamed yet
        (2, 20, True),  # current moved to .prev, temp not yet renamed into place
    ],
)
def test_a_write_killed_between_temp_file_and_rename(tmp_path, caplog, die_at_replace, expected_offset, fell_back):
    assert run_child(CHILD, str(tmp_path), str(die_at_replace)).wait(timeout=60) == 17
    assert any(name.endswith(".tmp") for name in os.listdir(tmp_path))  # the crashed write's leftover
    store = LocalCheckpointStore(tmp_path)
    with caplog.at_level(logging.WARNING):
        checkpoint = store.load("p")
    assert checkpoint.offset == expected_offset
    assert_consistent(checkpoint)
    assert ("falling back" in caplog.text) == fell_back
    # the next save by the new owner cleans the crashed write's temp file
    store.save("p", state_at(40), 40)
    assert not any(name.endswith(".tmp") for name in os.listdir(tmp_path))
    assert store.load("p").offset == 40


LOOP = textwrap.dedent(
    """
    import sys
    from tests.checkpoint.test_local import state_at
    from tocsin.checkpoint.local import LocalCheckpointStore

    store = LocalCheckpointStore(sys.argv[1])
    offset = 0
    while True:
        offset += 1
        store.save("p", state_at(offset), offset)
        print(offset, flush=True)
    """
)


@pytest.mark.parametrize("seed", range(6))
def test_sigkill_at_random_points_never_loses_the_last_good_checkpoint(tmp_path, seed):
    rng = np.random.default_rng(seed)
    child = run_child(LOOP, str(tmp_path), stdout=subprocess.PIPE, text=True)
    acknowledged = 0
    try:
        acknowledged = int(child.stdout.readline())  # at least one save finished
        time.sleep(float(rng.uniform(0.0, 0.3)))
    finally:
        os.kill(child.pid, signal.SIGKILL)
        child.wait(timeout=30)
        rest = child.stdout.read().split()
        child.stdout.close()
    if rest:
        acknowledged = int(rest[-1])
    checkpoint = LocalCheckpointStore(tmp_path).load("p")
    # a save that returned is never lost; at most the one in flight is missing
    assert checkpoint.offset >= acknowledged
    assert checkpoint.offset <= acknowledged + 1
    assert_consistent(checkpoint)


def test_header_is_json_with_version(tmp_path):
    store = LocalCheckpointStore(tmp_path)
    store.save("p", state_at(5), 5, meta={"k": "v"})
    with zipfile.ZipFile(store.path("p")) as zf:
        assert "meta.npy" in zf.namelist()
    with np.load(store.path("p"), allow_pickle=False) as npz:
        header = json.loads(str(npz["meta"][()]))
    assert header["format"] == tocsin.checkpoint.base.FORMAT_VERSION
    assert header["offset"] == 5 and header["partition"] == "p" and header["meta"] == {"k": "v"}
    assert header["keys"] == list(state_at(5))


def test_base_module_opens_with_the_ordering_invariant():
    doc = tocsin.checkpoint.base.__doc__
    assert doc.splitlines()[0].startswith("Ordering invariant")
    for phrase in ("Sinks first", "atomic", "Only then the broker", "lost", "twice", "never"):
        assert phrase in doc
