"""The web page in a real browser: Debian's chromium driven by Playwright opens the page served by a real
``tremor serve``, types a query, presses Enter, and checks that results, the query's term bars (with expansions)
and each hit's contribution bars render; the screenshot is kept in the test's temporary directory."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from serve_helpers import ServerProcess, build_serve_indexes

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run", "--disable-quic"]


def chromium_or_skip() -> Path:
    """Chromium's path; a skip only outside CI (in CI a missing browser is a failure)."""
    if CHROMIUM.is_file():
        return CHROMIUM
    if os.environ.get("CI"):
        pytest.fail(f"{CHROMIUM} is missing in CI; .ci/run installs Debian's chromium before the tests")
    pytest.skip(f"{CHROMIUM} not installed (apt-get install chromium)")


def test_page_searches_and_draws_term_bars(tmp_path):
    executable = chromium_or_skip()
    from playwright.sync_api import expect, sync_playwright

    paths = build_serve_indexes(tmp_path / "indexes")
    with ServerProcess([str(paths["splade"]), f"bm25={paths['bm25']}"], tmp_path / "server.log") as server, \
            sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(executable), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1100, "height": 1400})
            failed = []
            page.on("requestfailed", lambda request: failed.append(request.url))
            page.on("pageerror", lambda exc: failed.append(str(exc)))
            page.goto(server.url + "/")
            expect(page.locator("#index option")).to_have_count(2)
            page.select_option("#index", "splade")
            page.fill("#q", "seismic waves from earthquakes")
            page.press("#q", "Enter")

            hits = page.locator("#results li.hit")
            expect(hits.first).to_be_visible(timeout=30_000)
            assert hits.count() == 6  # the tiny corpus, ranked whole by a dense SPLADE-like model
            expect(page.locator("#status")).to_contain_text("results from splade in")
            query_bars = page.locator("#query-terms .bar")
            assert query_bars.count() >= 3
            assert page.locator("#query-terms .bar.expansion").count() >= 1  # the model's expansions, marked
            assert page.locator("#query-terms .bar:not(.expansion)").count() >= 1  # and the query's own terms
            first_hit_bars = hits.first.locator(".contributions .bar")
            assert first_hit_bars.count() >= 1
            width = first_hit_bars.first.locator(".fill").evaluate("e => e.getBoundingClientRect().width")
            assert width > 10
            assert hits.first.locator(".hit-title").inner_text().strip()
            assert hits.first.locator(".score").inner_text().startswith("score ")
            assert "q=seismic+waves+from+earthquakes" in page.url and "index=splade" in page.url
            screenshot = tmp_path / "screenshot.png"
            page.screenshot(path=str(screenshot), full_page=True)
            assert screenshot.stat().st_size > 10_000
            if os.environ.get("TREMOR_SCREENSHOT"):
                shutil.copy(screenshot, os.environ["TREMOR_SCREENSHOT"])

            # the URL carries the query: opening it shows the same results without typing
            shared = browser.new_page()
            shared.goto(server.url + "/?q=earthquakes&index=bm25&k=5")
            expect(shared.locator("#results li.hit").first).to_contain_text("Earthquakes", timeout=30_000)
            expect(shared.locator("#q")).to_have_value("earthquakes")
            # an error is shown as the server's message
            shared.goto(server.url + "/?q=earthquakes&index=bm25&k=5000")
            expect(shared.locator("#status.error")).to_contain_text("k must be at most 1000", timeout=30_000)
            assert not failed, failed
        finally:
            browser.close()


def test_page_with_an_api_key(tmp_path):
    executable = chromium_or_skip()
    from playwright.sync_api import expect, sync_playwright

    paths = build_serve_indexes(tmp_path / "indexes", splade=False)
    with ServerProcess([str(paths["bm25"])], tmp_path / "server.log", env={"TREMOR_API_KEY": "k3y"}) as server, \
            sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(executable), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page()
            response = page.goto(server.url + "/?q=earthquakes")
            assert response.status == 401  # no key: the page itself is refused
            page.goto(server.url + "/?api_key=k3y&q=earthquakes")
            expect(page.locator("#results li.hit").first).to_contain_text("Earthquakes", timeout=30_000)
            page.fill("#q", "cats")
            page.press("#q", "Enter")
            expect(page.locator("#results li.hit").first).to_contain_text("Cats", timeout=30_000)
            assert "api_key=k3y" in page.url
        finally:
            browser.close()
