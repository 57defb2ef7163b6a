"""A compiled scanner for the JSON lines nearly every producer sends: flat objects of plain values.

Why: decoding was the largest stage of the hot path. msgspec parses fast, but its output is one
Python object per event and one per value, which the decoder then gathers into columns, and
whose strings the key interning joins and encodes again. This scanner reads the bytes once, in
one compiled pass that holds no GIL, and writes the columns themselves: numbers as float64, each
text field's values joined with a NUL between them (the form the interning hashes and looks up,
so it needs no second encoding), and each value's start and length.

It is deliberately narrow. It accepts a batch only when every line is one JSON object on one
line whose values are strings without escapes, numbers, ``true``, ``false`` or ``null``, all in
ASCII (no tab or carriage return either, spaces being the only whitespace), with every declared field present once and of the type the strict decoding struct wants
(:mod:`tocsin.decode`). Anything else, from a nested object in an unknown field to a ``\\n``
escape or a number it cannot convert exactly, makes it return the first line it refused; the
decoder then takes the msgspec path for the whole batch, so what it accepts decodes to the same
columns bit for bit, and what it refuses is judged by exactly the same rules as before.

Numbers are converted exactly: a decimal of at most 19 digits whose digits fit in 2^53 and whose
power of ten is within ±22 is one correctly rounded IEEE multiplication or division (Clinger's
fast path, as every correct parser uses first); any other number makes the batch go the msgspec way.

Good at: the simulators' and most producers' events (ASCII ids, short categories, decimal
amounts, epoch times): ~0.1 µs per 200-byte event. Fails at (falls back, slower, never wrong):
non-ASCII text, escapes, nested values, long or exponent-heavy numbers, optional fields.
"""

from __future__ import annotations

import numpy as np
from numba import njit

#: what a declared field must hold, per the strict decoding struct
TEXT_NOT_EMPTY = 0  # the id and the key: a non-empty string
TEXT = 1  # a category: a string, empty allowed
MEASURE = 2  # a numeric field: a number within ±limit
NUMBER = 3  # an epoch time: any number
LABEL = 4  # the label: an integer (0 when absent)

_POW10 = np.array([10.0**k for k in range(23)])
_MAX_EXACT = 1 << 53


@njit(cache=True, nogil=True)
def _number(buf, i, end, out):
    """Parse a JSON number at ``buf[i]``; returns the index after it, or -1 if the grammar is broken
    or it cannot be converted exactly. ``out[0]``: the value; ``out[1]``: 1.0 if it was an integer."""
    negative = False
    if i < end and buf[i] == 45:  # '-'
        negative = True
        i += 1
    if i >= end or buf[i] < 48 or buf[i] > 57:
        return -1
    mantissa = 0
    digits = 0
    if buf[i] == 48:  # a leading 0 stands alone
        i += 1
    else:
        while i < end and 48 <= buf[i] <= 57:
            if digits < 19:
                mantissa = mantissa * 10 + (buf[i] - 48)
            digits += 1
            i += 1
    scale = 0
    integer = True
    if i < end and buf[i] == 46:  # '.'
        integer = False
        i += 1
        if i >= end or buf[i] < 48 or buf[i] > 57:
            return -1
        while i < end and 48 <= buf[i] <= 57:
            if mantissa != 0 or buf[i] != 48:
                digits += 1
            if digits <= 19:
                mantissa = mantissa * 10 + (buf[i] - 48)
            scale -= 1
            i += 1
    if i < end and (buf[i] == 101 or buf[i] == 69):  # 'e' / 'E'
        integer = False
        i += 1
        sign = 1
        if i < end and (buf[i] == 43 or buf[i] == 45):
            sign = -1 if buf[i] == 45 else 1
            i += 1
        if i >= end or buf[i] < 48 or buf[i] > 57:
            return -1
        exponent = 0
        while i < end and 48 <= buf[i] <= 57:
            if exponent < 100000:
                exponent = exponent * 10 + (buf[i] - 48)
            i += 1
        scale += sign * exponent
    if digits > 19 or mantissa > _MAX_EXACT:
        return -1
    if mantissa == 0:
        value = 0.0
    elif scale < -22 or scale > 22:
        return -1
    elif scale < 0:
        value = np.float64(mantissa) / _POW10[-scale]
    else:
        value = np.float64(mantissa) * _POW10[scale]
    out[0] = -value if negative else value
    out[1] = 1.0 if integer else 0.0
    return i


@njit(cache=True, nogil=True)
def _plain(words, tail, newlines_wanted):  # pragma: no cover - compiled
    """Whether the buffer (its 8-byte ``words``, then its last bytes, ``tail``) is ASCII with no backslash and
    no control byte but exactly ``newlines_wanted`` newlines: eight bytes per step, branch-free. After it,
    every string ends at the next quote and no string or line can hold a newline, so the scan needs no
    checks per byte."""
    high_bits, low_bits = np.uint64(0x8080808080808080), np.uint64(0x7F7F7F7F7F7F7F7F)
    newlines, backslashes = np.uint64(0x0A0A0A0A0A0A0A0A), np.uint64(0x5C5C5C5C5C5C5C5C)
    below_space, ones = np.uint64(0x6060606060606060), np.uint64(0x0101010101010101)
    bad = np.uint64(0)
    count = np.uint64(0)
    for k in range(words.shape[0]):
        x = words[k]
        y = x ^ newlines
        newline = ~(((y & low_bits) + low_bits) | y) & high_bits  # 0x80 in each byte that is a newline
        z = x ^ backslashes
        backslash = ~(((z & low_bits) + low_bits) | z) & high_bits
        control = ~((x & low_bits) + below_space) & high_bits  # bytes below 32 (exact once no high bit is set)
        bad |= (x & high_bits) | backslash | (control & ~newline)
        count += ((newline >> np.uint64(7)) * ones) >> np.uint64(56)
    for c in tail:
        if c == 10:
            count += np.uint64(1)
        elif c >= 128 or c == 92 or c < 32:
            return False
    return bad == 0 and count == newlines_wanted


@njit(cache=True, nogil=True, inline="always")
def _named(names, name_offsets, f, buf, start, length):  # pragma: no cover - compiled
    """Whether ``buf[start:start + length]`` is field ``f``'s name."""
    a = name_offsets[f]
    if name_offsets[f + 1] - a != length:
        return False
    for k in range(length):
        if names[a + k] != buf[start + k]:
            return False
    return True


@njit(cache=True, nogil=True)
def scan(buf, end, n_lines, max_line, names, name_offsets, kinds, slots, limit,
         text_out, text_used, text_starts, text_lengths, numbers, labels):  # pragma: no cover - compiled
    """Scan ``n_lines`` newline-separated JSON objects in ``buf[:end]`` (uint8, with a quote at ``end``
    and already checked by :func:`_plain`) into columns.

    Field ``f`` is named ``names[name_offsets[f]:name_offsets[f + 1]]``, must hold ``kinds[f]`` and
    goes to row ``slots[f]`` of the text arrays (text kinds) or of ``numbers`` (numeric kinds).
    Each text row's values are written to ``text_out[row]`` with a NUL after each, at
    ``text_starts``/``text_lengths``. Returns -1 when every line was accepted, else the index of the
    first refused line (the columns are then incomplete)."""
    n_fields = kinds.shape[0]
    parsed = np.empty(2)
    guess = 0  # the field the next key most likely names: keys come in the same order line after line
    i = 0
    for line in range(n_lines):
        line_start = i
        seen = 0
        labels[line] = 0
        while i < end and buf[i] == 32:
            i += 1
        if i >= end or buf[i] != 123:  # '{'
            return line
        i += 1
        while i < end and buf[i] == 32:
            i += 1
        if i < end and buf[i] == 125:  # '}': an empty object
            i += 1
        else:
            while True:
                # a key: no escapes, so it ends at the next quote (there is one at ``end``)
                if i >= end or buf[i] != 34:
                    return line
                i += 1
                key_start = i
                field = -1
                length = name_offsets[guess + 1] - name_offsets[guess]
                if key_start + length < end and buf[key_start + length] == 34 and _named(names, name_offsets, guess, buf, key_start, length):
                    field = guess  # the expected name, its bytes then a quote: the key
                    guess = field + 1 if field + 1 < n_fields else 0
                    i = key_start + length
                if field < 0:
                    while buf[i] != 34:
                        i += 1
                if i >= end:
                    return line
                key_length = i - key_start
                i += 1
                for step in range(n_fields if field < 0 else 0):
                    f = guess + step
                    if f >= n_fields:
                        f -= n_fields
                    if _named(names, name_offsets, f, buf, key_start, key_length):
                        field = f
                        guess = f + 1 if f + 1 < n_fields else 0
                        break
                while i < end and buf[i] == 32:
                    i += 1
                if i >= end or buf[i] != 58:  # ':'
                    return line
                i += 1
                while i < end and buf[i] == 32:
                    i += 1
                if i >= end:
                    return line
                c = buf[i]
                kind = -1
                if field >= 0:
                    kind = kinds[field]
                    if seen & (1 << field):  # a declared field twice
                        return line
                    seen |= 1 << field
                if c == 34:  # a string
                    i += 1
                    value_start = i
                    while buf[i] != 34:
                        i += 1
                    if i >= end:
                        return line
                    length = i - value_start
                    i += 1
                    if field >= 0:
                        if kind != TEXT and kind != TEXT_NOT_EMPTY:
                            return line
                        if kind == TEXT_NOT_EMPTY and length == 0:
                            return line
                        row = slots[field]
                        at = text_used[row]
                        text_starts[row, line] = at
                        text_lengths[row, line] = length
                        for k in range(length):  # a loop: a slice assignment per value cost more than the copy
                            text_out[row, at + k] = buf[value_start + k]
                        text_out[row, at + length] = 0
                        text_used[row] = at + length + 1
                elif c == 45 or (48 <= c <= 57):  # a number
                    i = _number(buf, i, end, parsed)
                    if i < 0:
                        return line
                    if field >= 0:
                        if kind == MEASURE:
                            if not (-limit <= parsed[0] <= limit):
                                return line
                            numbers[slots[field], line] = parsed[0]
                        elif kind == NUMBER:
                            numbers[slots[field], line] = parsed[0]
                        elif kind == LABEL:
                            if parsed[1] != 1.0:
                                return line
                            labels[line] = 1 if parsed[0] != 0.0 else 0
                        else:
                            return line
                elif c == 116 or c == 102 or c == 110:  # true, false, null: only in fields nobody declared
                    if field >= 0:
                        return line
                    if c == 116 and i + 4 <= end and buf[i + 1] == 114 and buf[i + 2] == 117 and buf[i + 3] == 101:
                        i += 4
                    elif c == 102 and i + 5 <= end and buf[i + 1] == 97 and buf[i + 2] == 108 and buf[i + 3] == 115 and buf[i + 4] == 101:
                        i += 5
                    elif c == 110 and i + 4 <= end and buf[i + 1] == 117 and buf[i + 2] == 108 and buf[i + 3] == 108:
                        i += 4
                    else:
                        return line
                else:  # an object, an array or not JSON
                    return line
                while i < end and buf[i] == 32:
                    i += 1
                if i >= end:
                    return line
                if buf[i] == 44:  # ','
                    i += 1
                    while i < end and buf[i] == 32:
                        i += 1
                    continue
                if buf[i] == 125:  # '}'
                    i += 1
                    break
                return line
        while i < end and buf[i] == 32:
            i += 1
        if i < end and buf[i] != 10:  # anything after the object but the newline
            return line
        if i - line_start > max_line:
            return line
        i += 1  # past the newline
        for f in range(n_fields):
            if not (seen & (1 << f)) and kinds[f] != LABEL:  # a declared field is missing
                return line
    if n_lines and i != end + 1:  # the buffer holds more than the lines given
        return n_lines - 1
    return -1


@njit(cache=True, nogil=True)
def _plain_and_scan(words, buf, end, n_lines, max_line, names, name_offsets, kinds, slots, limit,
                    text_out, text_used, text_starts, text_lengths, numbers, labels):  # pragma: no cover - compiled
    """:func:`_plain` then :func:`scan` in one call (one release of the GIL); True when every line was taken."""
    if not _plain(words, buf[words.shape[0] * 8:], n_lines):
        return False
    return scan(buf, end, n_lines, max_line, names, name_offsets, kinds, slots, limit,
                text_out, text_used, text_starts, text_lengths, numbers, labels) < 0


class FlatScanner:
    """The scanner set up for one schema's declared fields; :meth:`scan` gives columns or None.

    ``fields`` is ``[(name, kind), ...]`` with kinds from this module. Text columns come back as
    ``(strings, points, starts, lengths)``: the values as ``str``, then the NUL-joined bytes and each
    value's place in them, which :func:`tocsin.features.keys.encode_strings` would otherwise compute.
    """

    def __init__(self, fields: list[tuple[str, int]], limit: float, max_line: int) -> None:
        if len(fields) > 62:
            raise ValueError("the scanner tracks at most 62 declared fields")
        encoded = [name.encode() for name, _ in fields]
        self.names = np.frombuffer(b"".join(encoded), dtype=np.uint8) if encoded else np.zeros(0, dtype=np.uint8)
        self.name_offsets = np.zeros(len(fields) + 1, dtype=np.int64)
        np.cumsum([len(e) for e in encoded], out=self.name_offsets[1:])
        self.kinds = np.array([kind for _, kind in fields], dtype=np.int64)
        text_rows, number_rows = {}, {}
        slots = []
        for name, kind in fields:
            table = text_rows if kind in (TEXT, TEXT_NOT_EMPTY) else number_rows
            slots.append(table.setdefault(name, len(table)))
        self.slots = np.array(slots, dtype=np.int64)
        self.text_rows, self.number_rows = text_rows, number_rows
        self.limit = float(limit)
        self.max_line = int(max_line)
        self.usable = all(name.isascii() for name, _ in fields)

    def scan(self, lines: list[bytes]) -> tuple | None:
        """The compiled part: the ``lines`` (no newlines at their ends) scanned into arrays, or None when a line
        is outside what the scanner accepts (the caller decodes the batch another way). Safe on any thread;
        all but a few allocations run without the GIL, so it can run beside the thread processing the batch
        before (:meth:`tocsin.engine.pipeline.Pipeline.decode_ahead`). :meth:`columns` makes the columns."""
        n = len(lines)
        if not self.usable or n == 0:
            return None
        buf = np.frombuffer(b"\n".join([*lines, b'"']), dtype=np.uint8)  # the quote ends the last string search
        end = len(buf) - 2
        text_out = np.empty((len(self.text_rows), end + n), dtype=np.uint8)
        text_used = np.zeros(len(self.text_rows), dtype=np.int64)
        starts = np.empty((len(self.text_rows), n), dtype=np.int64)
        lengths = np.empty((len(self.text_rows), n), dtype=np.int64)
        numbers = np.empty((len(self.number_rows), n), dtype=np.float64)
        labels = np.empty(n, dtype=np.int64)
        whole = len(buf) // 8 * 8
        if not _plain_and_scan(buf[:whole].view(np.uint64), buf, end, n, self.max_line, self.names, self.name_offsets,
                               self.kinds, self.slots, self.limit, text_out, text_used, starts, lengths, numbers, labels):
            return None
        return text_out, text_used, starts, lengths, numbers, labels

    def columns(self, scanned: tuple) -> tuple[dict, dict, np.ndarray]:
        """``(text, numbers, labels)`` by field name from what :meth:`scan` returned. A text column comes as
        ``(strings, points, starts, lengths)``: its values as ``str`` (made here, under the GIL: one split per
        column), then the NUL-joined bytes and each value's place in them."""
        text_out, text_used, starts, lengths, numbers, labels = scanned
        text = {}
        for name, row in self.text_rows.items():
            used = int(text_used[row])
            points = text_out[row, :used]
            strings = points[: used - 1].tobytes().decode("ascii").split("\x00") if used else []
            text[name] = (strings, points, starts[row], lengths[row])
        return text, {name: numbers[row] for name, row in self.number_rows.items()}, labels
