"""File replay: every format yields the same records with resumable positions."""

import json

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest

from tocsin.sources.file import FileSource, infer_format

ROWS = [{"id": f"e{i}", "key": f"k{i % 3}", "ts": float(i), "x": i * 1.5} for i in range(10)]


def write(tmp_path, fmt):
    path = tmp_path / f"events.{fmt}"
    if fmt == "jsonl":
        path.write_text("".join(json.dumps(r) + "\n" for r in ROWS))
    elif fmt == "json":
        path.write_text(json.dumps(ROWS))
    elif fmt == "csv":
        pacsv.write_csv(pa.Table.from_pylist(ROWS), path)
    else:
        pq.write_table(pa.Table.from_pylist(ROWS), path)
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
