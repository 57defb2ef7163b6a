"""File replay: every format yields the same records with resumable positions."""

import json

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest

from tocsin.batch import EventBatch
from tocsin.decode import Decoder
from tocsin.sources.file import FileSource, infer_format
from tocsin.spec import SchemaSpec

ROWS = [{"id": f"e{i}", "key": f"k{i % 3}", "ts": float(i), "x": i * 1.5} for i in range(10)]


def write(tmp_path, fmt, rows=ROWS, name="events"):
    path = tmp_path / f"{name}.{fmt}"
    if fmt == "jsonl":
        path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    elif fmt == "json":
        path.write_text(json.dumps(rows))
    elif fmt == "csv":
        pacsv.write_csv(pa.Table.from_pylist(rows), path)  # booleans as true/false, read back as a boolean column
    else:
        pq.write_table(pa.Table.from_pylist(rows), path)
    return path


def drain(source, size):
    ids = []
    while (batch := source.read(size, 0)) is not None:
        if batch.lines is not None:
            ids += [json.loads(line)["id"] for line in batch.lines]
        else:
            ids += batch.table.column("id").to_pylist()
        assert batch.next_position == batch.positions[-1] + 1
    return ids


@pytest.mark.parametrize("fmt", ["jsonl", "json", "csv", "parquet"])
def test_reads_all_records_in_order(tmp_path, fmt):
    assert drain(FileSource(write(tmp_path, fmt)), 4) == [r["id"] for r in ROWS]


@pytest.mark.parametrize("fmt", ["jsonl", "json", "csv", "parquet"])
def test_seek_resumes_at_a_position(tmp_path, fmt):
    source = FileSource(write(tmp_path, fmt))
    source.read(3, 0)
    source.seek(7)
    assert drain(source, 2) == ["e7", "e8", "e9"]


def test_blank_lines_are_skipped_but_numbered(tmp_path):
    path = tmp_path / "events.jsonl"
    path.write_text('{"id": "a"}\n\n{"id": "b"}\n')
    batch = FileSource(path).read(10, 0)
    assert batch.lines == [b'{"id": "a"}', b'{"id": "b"}']
    assert batch.positions.tolist() == [0, 2]
    assert batch.next_position == 3


def test_unknown_suffix_names_the_fix(tmp_path):
    with pytest.raises(ValueError, match="source.format"):
        infer_format(tmp_path / "events.txt")


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        FileSource(tmp_path / "nope.jsonl")


LOGINS = [{"user": f"u{i % 2}", "ts": float(i), "success": i % 3 != 0, "attempts": i, "mfa": i % 2 == 0} for i in range(6)]
LOGIN_SCHEMA = SchemaSpec(id_field=None, key_field="user", numeric=["success", "attempts"], categorical=["mfa"])


def decode_all(source, size):
    decoder, batches = Decoder(LOGIN_SCHEMA, source=source.name), []
    while (raw := source.read(size, 0)) is not None:
        batch, dead = decoder.decode_table(raw.table, raw.positions) if raw.table is not None else decoder.decode_lines(raw.lines, raw.positions)
        assert dead == []
        batches.append(batch)
    return EventBatch.concat(batches)


@pytest.mark.parametrize("fmt", ["jsonl", "json", "csv", "parquet"])
def test_boolean_fields_and_derived_ids_survive_every_format(tmp_path, fmt):
    """A boolean is 1.0/0.0 or "true"/"false" in every format; without an id field a replay,
    whole or resumed, gives each record the same id."""
    path = write(tmp_path, fmt, LOGINS, "logins")
    events = decode_all(FileSource(path), 4)
    assert events.numeric["success"].tolist() == [float(r["success"]) for r in LOGINS]
    assert events.categorical["mfa"].tolist() == ["true" if r["mfa"] else "false" for r in LOGINS]
    assert events.ids.tolist() == [f"file:logins.{fmt}:{i}" for i in range(len(LOGINS))]
    resumed = FileSource(path)
    resumed.seek(3)
    assert decode_all(resumed, 2).ids.tolist() == events.ids.tolist()[3:]
