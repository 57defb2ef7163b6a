"""The one base of every spec model: frozen (a spec never changes once loaded) and
strict (an unknown field is an error naming it, not a setting silently ignored)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class SpecModel(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SpecError(ValueError):
    """An invalid pipeline spec; the message names each bad field and the fix."""
