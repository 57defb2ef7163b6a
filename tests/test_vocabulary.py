"""One owner for the shared words: the severity names are spelled out in tocsin/vocabulary.py only."""

import re
from pathlib import Path

from tocsin.vocabulary import ALERT_SEVERITIES, SEVERITIES, SEVERITY_ORDER, score_100

SRC = Path(__file__).resolve().parents[1] / "src" / "tocsin"
#: a tuple, list or Literal of two or more severity names, in any quoting
SPELLED_OUT = re.compile(r"""["'](info|warning|critical)["']\s*,\s*["'](info|warning|critical)["']""")


def test_the_severity_names_have_one_owner() -> None:
    owners = sorted(str(path.relative_to(SRC)) for path in SRC.rglob("*.py") if SPELLED_OUT.search(path.read_text()))
    assert owners == ["vocabulary.py"], f"severity names spelled out outside vocabulary.py: {owners}"


def test_the_vocabulary() -> None:
    assert SEVERITIES == ("info", "warning", "critical") and ALERT_SEVERITIES == ("warning", "critical")
    assert [SEVERITY_ORDER[name] for name in SEVERITIES] == [0, 1, 2]
    assert score_100(0.99937) == 99.94 and score_100(1.0) == 100.0
    assert score_100([0.5, 0.12346]).tolist() == [50.0, 12.35]
