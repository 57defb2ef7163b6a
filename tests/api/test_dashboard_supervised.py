"""The alert page shows the supervised model's part of the score (real headless Chromium): a pipeline whose
re-ranker learnt from labels flags events it raised, and their alert says so first."""

from __future__ import annotations

import httpx
import numpy as np
import pyarrow.parquet as pq
import pytest

from tests.api.test_dashboard import CHROMIUM, browser, open_dashboard, shot  # noqa: F401 - the fixture
from tests.engine.test_supervised import history, spec_data  # noqa: F401 - the fixture
from tocsin.api import create_app
from tocsin.api.server import start_in_thread
from tocsin.engine.pipeline import Pipeline
from tocsin.spec import parse_spec

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium at /usr/bin/chromium (apt-get install -y chromium)"),
]


def test_the_alert_page_shows_what_labels_added(browser, tmp_path, history, auth, keys) -> None:  # noqa: F811
    data = spec_data(tmp_path, supervised=True)
    data["severity"] = {"warning": 0.994, "critical": 0.9995}  # every anomaly of this short stream opens an alert
    spec = parse_spec(data)
    table = pq.read_table(history).to_pylist()
    pipeline = Pipeline(spec)
    for start in range(0, 24_000, 2_000):  # learn from labels as a backtest would
        scored = pipeline.process_records(table[start:start + 2_000], source="history")
        labelled = scored.events.take(np.flatnonzero(scored.events.labels == 1))
        pipeline.apply_labels(labelled, labelled.times, "history-labels", np.arange(start, start + len(labelled)))
    assert pipeline.supervised.is_fitted
    running = start_in_thread(create_app(spec, auth, pipeline=pipeline))
    try:
        analyst = {"X-API-Key": keys.analyst}
        answer = httpx.post(f"{running.url}/v1/score", json={"events": table[24_000:30_000]}, headers=analyst, timeout=60)
        assert answer.status_code == 200, answer.text
        alerts = httpx.get(f"{running.url}/v1/alerts", params={"limit": 1000}, headers=analyst).json()["items"]
        raised = [a for a in alerts if a["explanation"] and a["explanation"][0]["feature"] == "supervised"]

        assert raised, "some alerts were raised by what labels taught"
        page = open_dashboard(browser, running.url, keys.viewer, f"#/alerts/{raised[0]['id']}")
        part = page.get_by_test_id("supervised-part")
        part.wait_for(timeout=20_000)
        assert part.text_content().startswith("score raised by the supervised model")
        shot(page, "alert-supervised")
        page.close()
    finally:
        running.stop()
