"""What every command shares: the console and how figures are written with --json."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer
from rich.console import Console

from tocsin.spec import PipelineSpec, SpecError, load_spec

console = Console()


def write_json(path: Path | None, data: dict[str, Any]) -> None:
    """Write ``data`` as JSON to ``path`` (when given), creating parent folders."""
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(data, indent=2, default=str) + "\n")
        console.print(f"wrote {path}")


def load_spec_or_exit(spec_path: Path) -> PipelineSpec:
    """The spec, with everything checked that can be before an event is read (the detector and its
    parameters included); a mistake prints the field and the fix and exits 2."""
    from tocsin.detectors import check_detector_spec
    from tocsin.features.featureset import FeatureSet

    try:
        spec = load_spec(spec_path)
        check_detector_spec(spec, spec.detector.features or FeatureSet.from_spec(spec).names)
    except SpecError as error:
        console.print(f"[red]{error}[/]")
        raise typer.Exit(2) from None
    return spec
