"""Cursor pagination of stored rows: opaque cursors over row ids, pages of ``limit`` items."""

from __future__ import annotations

import base64
from typing import Any


def encode_cursor(row_id: int) -> str:
    return base64.urlsafe_b64encode(f"id:{row_id}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> int:
    """The row id in a cursor; ValueError when it is not one this API issued."""
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        if not text.startswith("id:"):
            raise ValueError
        return int(text[3:])
    except (ValueError, UnicodeDecodeError):
        raise ValueError("not a cursor returned by this API; omit it for the first page") from None


def page(rows: list[dict[str, Any]], limit: int) -> dict[str, Any]:
    """``rows`` (fetched with ``limit + 1``) as a page and the cursor of the next one, if any."""
    more = len(rows) > limit
    rows = rows[:limit]
    return {"items": rows, "next_cursor": encode_cursor(rows[-1]["id"]) if more and rows else None}
