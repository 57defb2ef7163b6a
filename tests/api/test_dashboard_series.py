"""A host's page on a series pipeline (real headless Chromium): each metric plotted over time with the band its
series model expected (expected ± 2σ) and its anomalies marked, as people read Grafana; the page speaks of hosts."""

from __future__ import annotations

import pytest

from tests.api.conftest import busiest_entity
from tests.api.test_dashboard import CHROMIUM, browser, open_dashboard, shot  # noqa: F401 - the fixture
from tocsin.api.server import start_in_thread

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium at /usr/bin/chromium (apt-get install -y chromium)"),
]

#: what Plotly drew in each metric chart: its traces (name, points, fill) as the page holds them
TRACES = """() => [...document.querySelectorAll('[data-testid=metric-plot]')].map(div => ({
    metric: div.dataset.metric,
    traces: (div.data || []).map(t => ({name: t.name, fill: t.fill || null, points: (t.y || []).filter(y => y !== null).length})),
    fills: div.querySelectorAll('.scatterlayer .js-fill').length,
    markers: div.querySelectorAll('.scatterlayer .trace .points path.point').length,
}))"""


def test_a_host_page_plots_each_metric_with_its_usual_band_and_its_anomalies(browser, hosts_app, keys) -> None:  # noqa: F811
    key = busiest_entity(hosts_app)
    expected = hosts_app.state.service.entity(key, principal=_viewer())["metrics"]
    running = start_in_thread(hosts_app)
    try:
        page = open_dashboard(browser, running.url, keys.viewer, f"#/entities/{key}")
        page.add_init_script("window.__violations = []; document.addEventListener('securitypolicyviolation', "
                             "e => window.__violations.push([e.violatedDirective, e.blockedURI, e.sample]))")
        page.reload()
        page.wait_for_function("() => document.querySelectorAll('[data-testid=metric-plot] .main-svg').length >= 3", timeout=20_000)
        charts = page.evaluate(TRACES)
        assert [c["metric"] for c in charts] == ["cpu", "memory", "net_mbps"]
        for chart, metric in zip(charts, expected):
            names = [t["name"] for t in chart["traces"]]
            assert names[:5] == ["usual low", "usual: expected ± 2σ", "expected", metric["metric"], "anomaly"], names
            band = chart["traces"][1]
            assert band["fill"] == "tonexty" and band["points"] == len(metric["times"]) and chart["fills"] >= 1, chart
            assert chart["traces"][4]["points"] == len(metric["anomalies"])
        marked = [c for c, m in zip(charts, expected) if m["anomalies"]]
        assert marked, "the busiest host has anomalies to mark"
        assert all(c["markers"] >= 1 for c in marked), charts  # drawn, not only data
        assert page.get_by_test_id("entity-title").text_content() == f"Host {key}"
        assert page.locator("[data-nav=entities]").text_content() == "Hosts"
        assert page.locator("#entity-search label").text_content().strip() == "host"
        violations = page.evaluate("window.__violations")  # plotly's unused MapLibre CSS aside (see test_dashboard.py)
        assert [v for v in violations if not (v[2] or "").startswith(".maplibregl")] == [], violations
        shot(page, "entity-series")
        page.close()
    finally:
        running.stop()


def test_a_host_alert_rings_its_reading_on_the_metric_charts(browser, hosts_app, keys) -> None:  # noqa: F811
    service = hosts_app.state.service
    alerts = [a for a in service.store.alerts(pipeline="hosts") if not a["first_event_id"].startswith("silence:")]
    recent = {e["event_id"] for a in alerts for e in service.recent.of(a["entity"], 200)}
    alert = next(a for a in alerts if a["first_event_id"] in recent)
    running = start_in_thread(hosts_app)
    try:
        page = open_dashboard(browser, running.url, keys.viewer, f"#/alerts/{alert['id']}")
        page.wait_for_function("() => document.querySelectorAll('#entity-chart [data-testid=metric-plot] .main-svg').length >= 3", timeout=20_000)
        rings = page.evaluate("() => [...document.querySelectorAll('#entity-chart [data-testid=metric-plot]')]"
                              ".map(div => div.data.filter(t => t.name === 'this alert').length)")
        assert rings == [1, 1, 1]
        assert page.locator("#view h3", has_text="Recent events of this host").count() == 1
        assert page.locator("[data-testid=mute-scope] option").all_text_contents() == ["this host and pattern", "everything of this host"]
        shot(page, "alert-series")
        page.close()
    finally:
        running.stop()


def _viewer():
    from tocsin.api.auth import Principal, Role

    return Principal(subject="test", role=Role.viewer, method="test")
