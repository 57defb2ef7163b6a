"""The source contract: where micro-batches come from and how to resume them.

A source hands out records in order with a position each (a line number, an
event index, a Kafka offset). ``next_position`` is what a checkpoint stores;
``seek`` resumes there after a restart, so a run continues where it stopped.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any

import numpy as np

from tocsin.batch import EventBatch


@dataclass
class SourceBatch:
    """What one read returned: either raw JSON ``lines``, an Arrow ``table``, parsed
    ``records`` (dicts, e.g. an HTTP request's events), or a ready ``events`` batch
    (sources that generate columns themselves), with the positions of its records
    and the position to resume from afterwards."""

    positions: np.ndarray
    next_position: int
    lines: list[bytes] | None = None
    table: Any = None
    events: EventBatch | None = None
    records: list[dict[str, Any]] | None = None
    #: no record, and none will come: the input ended (a profiled source's open buckets close as they are)
    ended: bool = False

    def __len__(self) -> int:
        return len(self.positions)


class Source(ABC):
    """A resumable, ordered stream of records."""

    #: name used for dead letters and checkpoints
    name: str = "source"

    @abstractmethod
    def read(self, max_records: int, timeout: float) -> SourceBatch | None:
        """Up to ``max_records`` records, waiting at most ``timeout`` seconds; None once exhausted."""

    @abstractmethod
    def seek(self, position: int) -> None:
        """Make the next read start at ``position``."""

    def close(self) -> None:
        """Release what the source holds."""
