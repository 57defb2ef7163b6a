"""What every command shares: the console and how figures are written with --json."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from rich.console import Console

console = Console()


def write_json(path: Path | None, data: dict[str, Any]) -> None:
    """Write ``data`` as JSON to ``path`` (when given), creating parent folders."""
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(data, indent=2, default=str) + "\n")
        console.print(f"wrote {path}")
