"""The live dashboard in real headless Chromium (Debian's, through Playwright): it loads, updates while
events flow, and an analyst can acknowledge an alert. Screenshots (PNGs of the 1100x760 viewport, ~50-150 kB) go to
tests/api/screenshots/ (override with TOCSIN_SCREENSHOT_DIR)."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import httpx
import pytest

from tocsin.api import create_app
from tocsin.api.server import start_in_thread
from tests.api.conftest import EVENTS, WARM_EVENTS

CHROMIUM = Path("/usr/bin/chromium")
SCREENSHOTS = Path(os.environ.get("TOCSIN_SCREENSHOT_DIR", Path(__file__).resolve().parent / "screenshots"))
LAUNCH_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--disable-sync", "--no-first-run"]

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium at /usr/bin/chromium (apt-get install -y chromium)"),
]


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=LAUNCH_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def server(spec, auth, warm_pipeline, records, keys):
    """The app on a free loopback port, with a feeder posting events to /v1/events every 100 ms."""
    app = create_app(spec, auth, pipeline=warm_pipeline)
    running = start_in_thread(app)
    stop = threading.Event()
    stream = records[WARM_EVENTS:EVENTS]

    def feed() -> None:
        with httpx.Client(base_url=running.url, headers={"X-API-Key": keys.analyst}, timeout=10) as client:
            for start in range(0, len(stream), 150):
                if stop.is_set():
                    return
                client.post("/v1/events", json={"events": stream[start : start + 150]})
                time.sleep(0.1)

    feeder = threading.Thread(target=feed, daemon=True)
    feeder.start()
    yield running
    stop.set()
    feeder.join(10)
    running.stop()


def open_dashboard(browser, url: str, key: str, hash_: str = ""):
    page = browser.new_page(viewport={"width": 1100, "height": 760})
    page.goto(f"{url}/dashboard/{hash_}")
    page.get_by_test_id("login").wait_for(state="visible")
    page.fill("#api-key", key)
    page.click("#login-form button")
    page.get_by_test_id("whoami").wait_for(state="visible")
    return page


def number(text: str) -> float:
    return float(text.replace(",", "").replace("%", "").strip() or 0)


def shot(page, name: str) -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path), type="png", full_page=False)
    return path


def test_the_overview_loads_and_updates_live(browser, server, keys) -> None:
    page = open_dashboard(browser, server.url, keys.viewer)
    events = page.get_by_test_id("events-total")
    page.wait_for_function("() => document.querySelector('[data-testid=events-total]')?.textContent.trim() !== '–'")
    first = number(events.text_content())
    page.wait_for_function(
        f"() => Number(document.querySelector('[data-testid=events-total]')?.textContent.replace(/,/g, '')) > {first}", timeout=15_000
    )
    assert number(events.text_content()) > first
    page.wait_for_function("() => Number(document.querySelector('[data-testid=events-per-s]')?.textContent.replace(/,/g, '')) > 0")
    page.wait_for_selector("#rate-chart .main-svg", timeout=15_000)  # Plotly drew the live series
    page.wait_for_function("() => document.querySelectorAll('[data-testid=latest-alerts] tr').length > 0", timeout=20_000)
    assert page.get_by_test_id("model-status").text_content() == "scoring live"
    assert "viewer" in page.get_by_test_id("whoami").text_content()
    time.sleep(1.5)  # a few more ticks of live data in the picture
    assert shot(page, "overview").stat().st_size < 400_000
    page.close()


def first_open_alert(page, screenshot: str | None = None):
    """Filter the alerts list to open ones and click the first; returns its id."""
    page.select_option("#alert-filters select[name=status]", "open")
    page.click("#alert-filters button")
    row = page.locator("[data-testid=alerts-rows] tr").first
    row.wait_for(timeout=20_000)
    alert_id = row.get_attribute("data-alert-id")
    if screenshot:
        shot(page, screenshot)
    row.click()
    return alert_id


def test_an_analyst_acknowledges_an_alert_and_its_status_changes(browser, server, keys) -> None:
    page = open_dashboard(browser, server.url, keys.analyst, "#/alerts")
    alert_id = first_open_alert(page, "alerts")
    page.get_by_test_id("alert-status").wait_for()
    page.wait_for_function("() => document.querySelector('[data-testid=alert-status]')?.textContent === 'open'")
    page.wait_for_selector("#entity-chart .main-svg", timeout=15_000)  # the entity's recent series
    assert page.locator("[data-testid=alert-explanation] li").count() >= 1
    page.get_by_test_id("ack").click()
    page.wait_for_function("() => document.querySelector('[data-testid=alert-status]')?.textContent === 'acknowledged'")
    answer = httpx.get(f"{server.url}/v1/alerts/{alert_id}", headers={"X-API-Key": keys.viewer})
    assert answer.json()["status"] == "acknowledged"
    page.get_by_test_id("feedback-tp").click()
    page.wait_for_function("() => document.querySelector('[data-testid=action-result]')?.textContent.startsWith('feedback recorded')")
    shot(page, "alert-detail")
    page.get_by_test_id("resolve").click()
    page.wait_for_function("() => document.querySelector('[data-testid=alert-status]')?.textContent === 'resolved'")
    page.close()


def test_an_analyst_mutes_a_false_alarm_and_the_alert_page_shows_who_and_until_when(browser, server, keys) -> None:
    page = open_dashboard(browser, server.url, keys.analyst, "#/alerts")
    alert_id = first_open_alert(page)
    page.get_by_test_id("alert-status").wait_for()
    page.wait_for_function("() => document.querySelector('[data-testid=alert-status]')?.textContent === 'open'")
    page.wait_for_function("() => document.querySelector('[data-testid=alert-verdicts]')?.textContent === 'no verdict yet'")
    page.select_option("[data-testid=mute-days]", "7")
    page.get_by_test_id("feedback-fp").click()
    page.wait_for_function("() => document.querySelector('[data-testid=action-result]')?.textContent.includes('muted until')")
    page.wait_for_function("() => document.querySelector('[data-testid=alert-status]')?.textContent === 'resolved'")
    alert = httpx.get(f"{server.url}/v1/alerts/{alert_id}", headers={"X-API-Key": keys.viewer}).json()
    (mute,) = alert["mutes"]
    shown = page.get_by_test_id("alert-mutes").text_content()
    assert f"muted by {mute['author']}" in shown and f"with pattern {alert['pattern']}" in shown and "until" in shown
    verdicts = page.get_by_test_id("alert-verdicts").text_content()
    (verdict,) = alert["verdicts"]
    assert verdicts.startswith(f"verdicts: false positive by {verdict['author']} on {alert['count']:,} anomal"), verdicts
    shot(page, "alert-muted")
    page.close()


def test_a_viewer_cannot_act_and_can_search_entities(browser, server, keys) -> None:
    alerts = []
    deadline = time.monotonic() + 20
    while not alerts and time.monotonic() < deadline:
        alerts = httpx.get(f"{server.url}/v1/alerts", headers={"X-API-Key": keys.viewer}).json()["items"]
        time.sleep(0.2)
    page = open_dashboard(browser, server.url, keys.viewer, f"#/alerts/{alerts[0]['id']}")
    page.get_by_test_id("alert-status").wait_for()
    assert page.get_by_test_id("ack").is_disabled()
    page.goto(f"{server.url}/dashboard/#/entities")
    page.get_by_test_id("entity-key").fill(alerts[0]["entity"])
    page.click("#entity-search button")
    page.wait_for_selector("#entity-plot .main-svg", timeout=15_000)
    shot(page, "entity")
    page.close()


def test_a_wrong_key_is_refused(browser, server) -> None:
    page = browser.new_page()
    page.goto(f"{server.url}/dashboard/")
    page.fill("#api-key", "tsk_nothing_here")
    page.click("#login-form button")
    page.wait_for_function("() => document.querySelector('#login-error')?.textContent.includes('refused')")
    page.close()


def test_the_dashboard_runs_under_its_csp_and_survives_a_far_future_time(browser, server, keys) -> None:
    """Scripts and styles from 'self' only (no inline ones: Plotly's rules come from plotly.css), and an alert
    whose event time JavaScript's Date cannot hold shows as a number instead of blanking the page."""
    store = server.server.config.app.state.service.store
    store.write_alerts("transactions", [{"alert_key": "far-future", "entity": "card-far-future", "severity": "critical",
                                         "first_event_id": "far-1", "event_time": 1e300, "score": 0.99, "explanation": []}])
    page = browser.new_page(viewport={"width": 1100, "height": 760})
    page.add_init_script("window.__violations = []; document.addEventListener('securitypolicyviolation', "
                         "e => window.__violations.push([e.violatedDirective, e.blockedURI, e.sample]))")
    page.goto(f"{server.url}/dashboard/")
    page.fill("#api-key", keys.viewer)
    page.click("#login-form button")
    page.wait_for_selector("#rate-chart .main-svg", timeout=15_000)
    assert page.evaluate("getComputedStyle(document.querySelector('#rate-chart .main-svg')).position") == "absolute", "plotly.css applies"
    page.wait_for_function("() => document.querySelector('[data-testid=latest-alerts]')?.textContent.includes('1e+300 s')", timeout=15_000)
    page.goto(f"{server.url}/dashboard/#/alerts")
    page.locator("[data-testid=alerts-rows] tr").first.wait_for(timeout=20_000)
    page.locator("[data-testid=alerts-rows] tr").first.click()  # rows open their alert through a listener, not inline onclick
    page.get_by_test_id("alert-status").wait_for()
    page.wait_for_function("() => document.querySelector('[data-testid=alert-time]')?.textContent !== '–'")
    violations = page.evaluate("window.__violations")
    # plotly's bundle also injects MapLibre's CSS (for map traces, unused here) inline: blocked, harmlessly
    assert [v for v in violations if not (v[2] or "").startswith(".maplibregl")] == [], violations
    page.close()


def test_without_auth_the_dashboard_can_act_and_another_site_cannot(browser, tmp_path) -> None:
    """`tocsin demo` serves without auth: its own page acknowledges an alert (its fetches carry the page's
    Origin although the page's Referrer-Policy is no-referrer), a page of another origin posting the same
    request (a cross-site form, or fetch) is refused, and nothing changes."""
    from tocsin.api import AuthConfig, KeyStore
    from tocsin.spec import parse_spec
    from tests.api.conftest import spec_dict

    spec = parse_spec(spec_dict(f"sqlite:///{tmp_path / 'open.db'}", str(tmp_path / "checkpoints")))
    app = create_app(spec, AuthConfig(enabled=False, keys=KeyStore(None)))
    store = app.state.service.store
    alert = {"entity": "card-1", "severity": "critical", "first_event_id": "e-1", "event_time": 1767225600.0, "score": 0.99, "explanation": []}
    store.write_alerts("transactions", [{**alert, "alert_key": "a"}, {**alert, "alert_key": "b"}])
    mine, theirs = (row["id"] for row in sorted(store.alerts(pipeline="transactions"), key=lambda r: r["alert_key"]))
    running = start_in_thread(app)
    try:
        page = browser.new_page()
        page.goto(f"{running.url}/dashboard/#/alerts/{mine}")
        page.get_by_test_id("ack").wait_for()
        page.get_by_test_id("ack").click()
        page.wait_for_function("() => document.querySelector('[data-testid=alert-status]')?.textContent === 'acknowledged'")
        other = browser.new_page()
        other.set_content(f"""<form method="post" action="{running.url}/v1/alerts/{theirs}/ack"></form>""")
        refused = other.evaluate(f"""async () => {{
            const answer = await fetch("{running.url}/v1/alerts/{theirs}/resolve", {{method: "POST", mode: "no-cors"}});
            return answer.type; }}""")
        assert refused == "opaque"
        with other.expect_navigation():
            other.evaluate("document.forms[0].submit()")
        assert "cross-origin" in other.content()
        statuses = {row["id"]: row["status"] for row in store.alerts(pipeline="transactions")}
        assert statuses == {mine: "acknowledged", theirs: "open"}
        page.close()
        other.close()
    finally:
        running.stop()


def test_the_models_panel_lists_versions_and_an_admin_promotes_and_rolls_back(browser, spec, auth, warm_pipeline, keys) -> None:
    """Models: versions of the spec's registry with their aliases, metrics and training range; an admin promotes
    and rolls back from the page (under the CSP: listeners, no inline script); a viewer is told it is admin-only."""
    from tocsin.registry import CHAMPION
    from tocsin.registry.store import StoreRegistry
    from tests.registry._contract import make_version, sample_arrays

    registry = StoreRegistry(spec.store.url)
    for rows in (40_000, 50_000):
        registry.register(make_version(spec.name, rows=rows, aucpr=rows / 100_000, created_by="trainer"), sample_arrays(rows))
    registry.promote(spec.name, 2, CHAMPION, by="trainer")
    from tocsin.store import Store

    store = Store(spec.store.url)  # a challenger's shadow comparisons, as the driver core writes them
    with store.engine.begin() as conn:
        store.write_rows(conn, "model_comparisons", spec.name, [
            {"stream": "s", "position": position, "champion": 2, "challenger": 1, "events": 1_000, "champion_anomalies": 10,
             "challenger_anomalies": 14, "both_anomalies": 8, "labelled": 1_000, "positives": 12, "champion_true": 9,
             "challenger_true": 11, "champion_scores": [981] + [1] * 19, "challenger_scores": [975] + [1] * 18 + [7]}
            for position in (999, 1_999)])
    store.close()
    running = start_in_thread(create_app(spec, auth, pipeline=warm_pipeline))
    try:
        page = open_dashboard(browser, running.url, keys.admin, "#/models")
        page.add_init_script("window.__violations = []; document.addEventListener('securitypolicyviolation', "
                             "e => window.__violations.push([e.violatedDirective, e.blockedURI, e.sample]))")
        page.reload()
        page.wait_for_selector("[data-testid=models-rows] tr[data-version='2']", timeout=15_000)
        assert page.get_by_test_id("aliases-2").text_content() == "champion"
        assert page.get_by_test_id("aliases-1").text_content() == "–"
        row = page.locator("[data-testid=models-rows] tr[data-version='2']").text_content()
        assert "50,000" in row and "aucpr 0.500" in row and "2026-01-01 00:00:00" in row and "by trainer" in row
        assert page.get_by_test_id("promote-champion-2").is_disabled()
        page.wait_for_selector("[data-testid=compare-rows] tr[data-row='precision']", timeout=15_000)
        status = page.get_by_test_id("compare-status").text_content()
        assert "v1 beside champion v2 over 2,000 events" in status and "flagged by both: 16" in status and "(50.0% of those either flagged)" in status
        precision = page.locator("[data-testid=compare-rows] tr[data-row='precision']").text_content()
        assert "0.900" in precision and "0.786" in precision  # 18/20 and 22/28
        page.wait_for_selector("#compare-chart .plot-container", timeout=15_000)
        page.wait_for_function("() => document.querySelector('[data-testid=drift-status]')?.textContent.includes('model-drift alert past PSI 0.25')")
        shot(page, "models")
        page.get_by_test_id("promote-champion-1").click()
        page.wait_for_function("() => document.querySelector('[data-testid=models-result]')?.textContent === 'champion is now version 1 (was 2)'")
        page.wait_for_function("() => document.querySelector('[data-testid=aliases-1]')?.textContent === 'champion'")
        assert registry.alias(spec.name, CHAMPION) == 1 and registry.alias_history(spec.name, CHAMPION)[-1].by.startswith("key:")
        page.get_by_test_id("rollback-champion").click()
        page.wait_for_function("() => document.querySelector('[data-testid=aliases-2]')?.textContent === 'champion'")
        assert registry.alias(spec.name, CHAMPION) == 2
        violations = page.evaluate("window.__violations")  # plotly's unused MapLibre CSS aside (see the CSP test above)
        assert [v for v in violations if not (v[2] or "").startswith(".maplibregl")] == [], violations
        page.close()
        viewer = open_dashboard(browser, running.url, keys.viewer, "#/models")
        viewer.wait_for_function("() => document.querySelector('[data-testid=models-result]')?.textContent.includes('admin role')")
        assert viewer.get_by_test_id("rollback-champion").is_disabled()
        viewer.close()
    finally:
        running.stop()
        registry.close()
