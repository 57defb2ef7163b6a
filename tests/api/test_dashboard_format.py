"""The dashboard's formatting (static/format.js) under Node: times that JavaScript's Date cannot hold
(a far-future event time, NaN) show as numbers instead of throwing ``Invalid time value`` and blanking
the page; app.js goes through it for every time it shows or plots."""

from __future__ import annotations

import json
import re
import shutil
import subprocess

import pytest

from tocsin.api.routes.dashboard import STATIC

NODE = shutil.which("node")


def run_node(expressions: list[str]) -> list:
    script = f"const f = require({json.dumps(str(STATIC / 'format.js'))});\n" \
             f"console.log(JSON.stringify([{', '.join(expressions)}]));"
    done = subprocess.run([NODE, "-e", script], capture_output=True, text=True, timeout=30, check=False)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


@pytest.mark.skipif(NODE is None, reason="needs node")
def test_times_format_without_throwing() -> None:
    values = run_node([
        "f.fmtTime(1767225600)", "f.fmtTime(1767225600.75)", "f.fmtTime(0)", "f.fmtTime(null)", "f.fmtTime(undefined)",
        "f.fmtTime(1e300)", "f.fmtTime(1767444200000)", "f.fmtTime(-1e15)", "f.fmtTime(NaN)", "f.fmtTime(Infinity)",
        "f.fmtTime('soon')", "f.fmtTime(253402300799)", "f.fmtTime(253402300800)",
    ])
    assert values[:5] == ["2026-01-01 00:00:00", "2026-01-01 00:00:00", "1970-01-01 00:00:00", "–", "–"]
    assert values[5:11] == ["1e+300 s", "1767444200000 s", "-1000000000000000 s", "NaN s", "Infinity s", "soon"]
    assert values[11:] == ["9999-12-31 23:59:59", "253402300800 s"]


@pytest.mark.skipif(NODE is None, reason="needs node")
def test_dates_for_charts_are_null_when_out_of_range() -> None:
    values = run_node(["f.toDate(1767225600).toISOString()", "f.toDate(1e300)", "f.toDate(NaN)", "f.toDate(null)",
                       "f.fmtNum(1234.5, 1)", "f.fmtNum(null)", "f.fmtNum(NaN)", "f.fmtNum(1e308)"])
    assert values[:4] == ["2026-01-01T00:00:00.000Z", None, None, None]
    assert values[4] in ("1,234.5", "1234.5") and values[5] == "–" and values[6] == "–" and values[7]


def test_app_js_makes_no_dates_of_its_own() -> None:
    app = (STATIC / "app.js").read_text()
    assert "new Date(" not in app and "toISOString" not in app, "times go through format.js (fmtTime, toDate)"
    html = (STATIC / "index.html").read_text()
    assert re.search(r'<script src="/dashboard/static/format.js" defer></script>\s*<script src="/dashboard/static/app.js"', html)
