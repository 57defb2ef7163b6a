"""The registry: ``detector.kind`` -> class, filled by discovering this package's modules.

Every public module of :mod:`tocsin.detectors` that defines a
:class:`~tocsin.detectors.base.Detector` subclass with a class attribute ``kind``
registers it (:meth:`Detector.__init_subclass__` records it as the class is
made), so adding a detector is adding one module. A module whose optional
dependency is missing (PyTorch for the deep models) is skipped and named in
``UNAVAILABLE`` with the reason. Modules that compose detectors by kind (the
ensemble) read the classes recorded by the base, so nothing below this module
imports it.
"""

from __future__ import annotations

import importlib
import pkgutil
from pathlib import Path

from tocsin.detectors.base import Detector, registered_detectors

_PACKAGE = __name__.rpartition(".")[0]

#: modules of this package that hold machinery, not detectors
_NOT_DETECTORS = {"base", "calibration", "from_spec", "registry", "thresholds"}

DETECTORS: dict[str, type[Detector]] = {}
UNAVAILABLE: dict[str, str] = {}


def _discover() -> None:
    for module_info in sorted(pkgutil.iter_modules([str(Path(__file__).parent)]), key=lambda m: m.name):
        name = module_info.name
        if name.startswith("_") or name in _NOT_DETECTORS:
            continue
        try:
            importlib.import_module(f"{_PACKAGE}.{name}")
        except ImportError as error:  # an optional extra is not installed
            UNAVAILABLE[name] = str(error)
    DETECTORS.update(registered_detectors())


_discover()
