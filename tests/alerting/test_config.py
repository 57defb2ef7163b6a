"""Tests for src/tocsin/spec/alerting.py (and the channels built from it): the docs' recipe validates; mistakes name the field."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml
from pydantic import ValidationError

from tocsin.alerting.channels import build_channels
from tocsin.spec.alerting import AlertingSpec

DOC = Path(__file__).resolve().parents[2] / "docs" / "alerting.md"


def test_the_recipe_in_the_docs_validates_and_builds() -> None:
    block = re.search(r"```yaml\n(alerting:.*?)```", DOC.read_text(), re.S).group(1)
    spec = AlertingSpec.model_validate(yaml.safe_load(block)["alerting"])
    assert spec.budget.per_day == 50 and spec.window == 3600 and spec.group_wait == 30
    assert [r.channels for r in spec.routes] == [["fraud-hook", "fraud-slack"], ["oncall-mail"]]
    channels = build_channels(spec, env={"TOCSIN_WEBHOOK_KEY": "k", "TOCSIN_SMTP_PASSWORD": "p"})
    assert {n: c.kind for n, c in channels.items()} == {"fraud-hook": "webhook", "fraud-slack": "webhook", "oncall-mail": "email"}


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"routes": [{"channels": ["nope"]}]}, "routes.0.channels: 'nope' is not a channel"),
        ({"channels": {"x": {"kind": "pager"}}}, "channels.x"),
        ({"channels": {"x": {"kind": "webhook", "url": "ftp://x"}}}, "channels.x.webhook.url"),
        ({"channels": {"x": {"kind": "email", "host": "h", "sender": "a", "to": ["b"], "starttls": True, "ssl": True}}}, "starttls or ssl"),
        ({"window": "soon"}, "window"),
        ({"rules": [{"severity": "critical"}]}, "at least one of min_count"),
        ({"budget": {"per_day": 0}}, "budget.per_day"),
        ({"quiet_period": "7h"}, "quiet_period"),
        ({"secret": "inline"}, "secret"),
    ],
)
def test_mistakes_name_the_field(data, message) -> None:
    with pytest.raises(ValidationError) as error:
        AlertingSpec.model_validate(data)
    text = str(error.value)
    assert message in text, text
