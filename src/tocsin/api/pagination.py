"""Cursor pagination of stored rows: opaque cursors over row ids, pages of ``limit`` items."""

from __future__ import annotations

import base64
import binascii
from typing import Any

#: row ids are positive 64-bit integers on both databases; a cursor outside them is not one we issued
#: (and a larger one would overflow SQLite's integer binding: a 500 instead of a 422)
MAX_ROW_ID = 2**63 - 1


def encode_cursor(row_id: int) -> str:
    return base64.urlsafe_b64encode(f"id:{row_id}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> int:
    """The row id in a cursor; ValueError when it is not one this API issued."""
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        digits = text[3:]
        if not text.startswith("id:") or not digits.isascii() or not digits.isdigit() or len(digits) > 19:
            raise ValueError
        row_id = int(digits)
        if not 1 <= row_id <= MAX_ROW_ID:
            raise ValueError
        return row_id
    except (ValueError, UnicodeDecodeError, binascii.Error):
        raise ValueError("not a cursor returned by this API; omit it for the first page") from None


def page(rows: list[dict[str, Any]], limit: int) -> dict[str, Any]:
    """``rows`` (fetched with ``limit + 1``) as a page and the cursor of the next one, if any."""
    more = len(rows) > limit
    rows = rows[:limit]
    return {"items": rows, "next_cursor": encode_cursor(rows[-1]["id"]) if more and rows else None}
