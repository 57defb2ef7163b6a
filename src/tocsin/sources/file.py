"""File replay: JSON lines, a JSON array, CSV or Parquet, read in order.

Positions are 0-based record numbers (for JSON lines, the line number), so a
checkpointed run resumes at the first record it had not finished.
"""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import IO

import msgspec
import numpy as np

from tocsin.sources.base import Source, SourceBatch

FORMATS = {".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "json", ".csv": "csv", ".parquet": "parquet", ".pq": "parquet"}


def infer_format(path: Path) -> str:
    """The format a file suffix stands for, or a clear error naming the choices."""
    fmt = FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise ValueError(
            f"cannot tell the format of {path} from its suffix; name it in source.format "
            f"(one of jsonl, json, csv, parquet) or use one of {sorted(FORMATS)}"
        )
    return fmt


class FileSource(Source):
    """Replays a file; ``read`` returns JSON ``lines`` or an Arrow ``table`` slice."""

    def __init__(self, path: str | Path, format: str | None = None) -> None:
        self.path = Path(path)
        if not self.path.exists():
            raise FileNotFoundError(f"source file {self.path} does not exist")
        self.format = format or infer_format(self.path)
        self.name = f"file:{self.path.name}"
        self._position = 0
        self._handle: IO[bytes] | None = None
        self._table = None
        self._records: list[msgspec.Raw] | None = None

    def seek(self, position: int) -> None:
        self._position = int(position)
        if self._handle is not None:
            self._handle.close()
            self._handle = None

    def read(self, max_records: int, timeout: float = 0.0) -> SourceBatch | None:
        if self.format == "jsonl":
            return self._read_lines(max_records)
        if self.format == "json":
            return self._read_array(max_records)
        return self._read_table(max_records)

    def close(self) -> None:
        if self._handle is not None:
            self._handle.close()
            self._handle = None

    # --- formats ------------------------------------------------------------

    def _read_lines(self, max_records: int) -> SourceBatch | None:
        if self._handle is None:
            self._handle = open(self.path, "rb")
            for _ in itertools.islice(self._handle, self._position):
                pass
        chunk = list(itertools.islice(self._handle, max_records))
        if not chunk:
            return None
        start = self._position
        positions = np.arange(start, start + len(chunk), dtype=np.int64)
        self._position += len(chunk)
        lines = [line.rstrip(b"\r\n") for line in chunk]
        blank = [i for i, line in enumerate(lines) if not line.strip()]
        if blank:  # blank lines are layout, not records: skip them but keep numbering
            keep = np.setdiff1d(np.arange(len(lines)), blank)
            lines = [lines[i] for i in keep]
            positions = positions[keep]
        return SourceBatch(positions=positions, next_position=self._position, lines=lines)

    def _read_array(self, max_records: int) -> SourceBatch | None:
        if self._records is None:
            self._records = msgspec.json.decode(self.path.read_bytes(), type=list[msgspec.Raw])
        start = self._position
        chunk = self._records[start : start + max_records]
        if not chunk:
            return None
        self._position += len(chunk)
        return SourceBatch(
            positions=np.arange(start, start + len(chunk), dtype=np.int64),
            next_position=self._position,
            lines=[bytes(raw) for raw in chunk],
        )

    def _read_table(self, max_records: int) -> SourceBatch | None:
        if self._table is None:
            if self.format == "csv":
                from pyarrow import csv

                self._table = csv.read_csv(self.path)
            elif self.format == "parquet":
                import pyarrow.parquet as pq

                self._table = pq.read_table(self.path)
            else:
                raise ValueError(f"unknown file format {self.format!r}; use jsonl, json, csv or parquet")
        start = self._position
        if start >= self._table.num_rows:
            return None
        table = self._table.slice(start, max_records)
        self._position += table.num_rows
        return SourceBatch(
            positions=np.arange(start, start + table.num_rows, dtype=np.int64),
            next_position=self._position,
            table=table,
        )
