"""Checkpoints as one ``.npz`` file per partition in a local directory.

Each file holds the state arrays (``s0``, ``s1``…) and a ``meta`` entry: a
JSON string with the format version, partition name, offset, caller meta,
creation time and the state keys in array order (names live in JSON, not in
zip member names, so any state key is safe).

A save is atomic and durable (see :mod:`tocsin.checkpoint.base` for why):

1. write the new checkpoint to a temp file in the same directory, flush, fsync;
2. rename the current checkpoint to ``<name>.prev.npz``;
3. rename the temp file to ``<name>.npz``;
4. fsync the directory so both renames survive a power loss.

A crash before step 3 leaves the last good checkpoint in ``<name>.npz`` or,
between steps 2 and 3, in ``<name>.prev.npz``; a file truncated or corrupted
later (disk full, bad copy) is detected by the zip CRCs. :meth:`load` falls
back to ``.prev`` with a warning in both cases, so one bad write never costs
more than one checkpoint interval of replay.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from tocsin.checkpoint.base import Checkpoint, CheckpointError, CheckpointStore, checkpoint_arrays, unpack_checkpoint

log = logging.getLogger(__name__)

_META = "meta"
_SUFFIX = ".npz"
_PREV_SUFFIX = ".prev.npz"
_TMP_SUFFIX = ".tmp"
_UNSAFE = re.compile(r"[^a-z0-9_-]+")

# What a truncated or garbled .npz raises while opening or reading it.
_UNREADABLE = (OSError, CheckpointError)


def file_stem(partition: str) -> str:
    """A file-name-safe, collision-free stem for ``partition``.

    A readable slug (lowercase, so case-insensitive file systems cannot merge
    two partitions) plus a hash of the exact name, so ``"tx/1"`` and ``"tx_1"``
    never share a file. The stem never contains ``.``, so ``<stem>.prev.npz``
    cannot be mistaken for another partition's checkpoint.
    """
    if not isinstance(partition, str) or not partition:
        raise ValueError(f"partition: must be a non-empty string, got {partition!r}")
    slug = _UNSAFE.sub("_", partition.lower()).strip("_")[:60] or "p"
    digest = hashlib.sha256(partition.encode("utf-8")).hexdigest()[:12]
    return f"{slug}-{digest}"


def _fsync_directory(directory: Path) -> None:
    if os.name != "posix":  # Windows cannot open a directory; rename is durable enough there
        return
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class LocalCheckpointStore(CheckpointStore):
    """Checkpoints under ``directory`` (created if missing), one file per partition.

    One writer per partition at a time, as partition ownership guarantees; a
    save removes temp files a crashed earlier save of the same partition left.
    """

    def __init__(self, directory: str | os.PathLike[str]):
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)

    def __repr__(self) -> str:
        return f"LocalCheckpointStore({str(self.directory)!r})"

    def path(self, partition: str) -> Path:
        """The file of ``partition``'s newest checkpoint."""
        return self.directory / (file_stem(partition) + _SUFFIX)

    def previous_path(self, partition: str) -> Path:
        """The file of ``partition``'s checkpoint before the newest."""
        return self.directory / (file_stem(partition) + _PREV_SUFFIX)

    # --- write ------------------------------------------------------------------

    def save(
        self,
        partition: str,
        state: dict[str, np.ndarray],
        offset: int,
        meta: dict[str, Any] | None = None,
    ) -> Checkpoint:
        stem = file_stem(partition)
        arrays, created_at = checkpoint_arrays(partition, state, offset, meta)  # raises before any file is touched

        self._remove_stale_temps(stem)
        fd, tmp_name = tempfile.mkstemp(dir=self.directory, prefix=f".{stem}.", suffix=_TMP_SUFFIX)
        tmp = Path(tmp_name)
        try:
            with os.fdopen(fd, "wb") as f:
                np.savez(f, **arrays)  # the same bytes as pack_checkpoint's blob, straight to the file
                f.flush()
                os.fsync(f.fileno())
            current = self.directory / (stem + _SUFFIX)
            if current.exists():
                os.replace(current, self.directory / (stem + _PREV_SUFFIX))
            os.replace(tmp, current)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        _fsync_directory(self.directory)
        return Checkpoint(partition, int(offset), dict(state), dict(meta or {}), created_at)

    def _remove_stale_temps(self, stem: str) -> None:
        for leftover in self.directory.glob(f".{stem}.*{_TMP_SUFFIX}"):
            leftover.unlink(missing_ok=True)

    # --- read -------------------------------------------------------------------

    @staticmethod
    def _read(path: Path) -> Checkpoint:
        """Read and verify a whole checkpoint file (every member's CRC: a truncated file fails here)."""
        return unpack_checkpoint(path.read_bytes(), path.name)

    def _read_with_fallback(self, newest: Path, previous: Path, name: str) -> Checkpoint | None:
        errors = []
        for candidate in (newest, previous):
            if not candidate.exists():
                continue
            try:
                checkpoint = self._read(candidate)
            except _UNREADABLE as error:
                errors.append(f"{candidate.name}: {type(error).__name__}: {error}")
                continue
            if errors or candidate is previous:
                log.warning(
                    "checkpoint of %s: newest unreadable (%s); falling back to the previous one "
                    "(offset %d), events after it will be replayed",
                    name,
                    "; ".join(errors) or f"{newest.name} missing",
                    checkpoint.offset,
                )
            return checkpoint
        if errors:
            raise CheckpointError(f"checkpoint of {name}: no readable copy ({'; '.join(errors)})")
        return None

    def load(self, partition: str) -> Checkpoint | None:
        checkpoint = self._read_with_fallback(self.path(partition), self.previous_path(partition), repr(partition))
        if checkpoint is not None and checkpoint.partition != partition:
            raise CheckpointError(
                f"{self.path(partition)} holds partition {checkpoint.partition!r}, not {partition!r}"
            )
        return checkpoint

    def partitions(self) -> list[str]:
        stems = set()
        for path in self.directory.glob(f"*{_SUFFIX}"):
            name = path.name
            stems.add(name[: -len(_PREV_SUFFIX)] if name.endswith(_PREV_SUFFIX) else name[: -len(_SUFFIX)])
        names = []
        for stem in stems:
            checkpoint = self._read_with_fallback(
                self.directory / (stem + _SUFFIX), self.directory / (stem + _PREV_SUFFIX), stem
            )
            if checkpoint is not None:
                names.append(checkpoint.partition)
        return sorted(names)

    def delete(self, partition: str) -> None:
        stem = file_stem(partition)
        self._remove_stale_temps(stem)
        for path in (self.path(partition), self.previous_path(partition)):
            path.unlink(missing_ok=True)
        _fsync_directory(self.directory)
