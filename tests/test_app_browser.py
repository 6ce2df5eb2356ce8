"""The app in a real browser: Streamlit served on localhost, driven by Playwright with Debian's chromium."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tests.processes import wait_until_healthy

ROOT = Path(__file__).resolve().parent.parent
APP = ROOT / "app" / "streamlit_app.py"
ARTIFACTS = ROOT / "artifacts"
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]
# The first page view loads the model and encodes the demo corpus; a busy 2-core machine needs minutes for that.
FIRST_VIEW_TIMEOUT_MS = 240_000
QUERY = "Who discovered polonium and radium?"

pytestmark = pytest.mark.skipif(
    not CHROMIUM.exists(), reason=f"no browser: {CHROMIUM} is missing (apt-get install chromium)"
)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def app_url(tmp_path):
    port = free_port()
    log = (tmp_path / "streamlit.log").open("w")
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "streamlit",
            "run",
            str(APP),
            "--server.port",
            str(port),
            "--server.address",
            "127.0.0.1",
            "--server.headless",
            "true",
            "--browser.gatherUsageStats",
            "false",
        ],
        cwd=ROOT,
        stdout=log,
        stderr=subprocess.STDOUT,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )
    try:
        url = f"http://127.0.0.1:{port}"
        wait_until_healthy(server, url, tmp_path / "streamlit.log", 60)
        yield url
    finally:
        server.terminate()
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        log.close()


def test_a_typed_query_shows_shaded_fields_and_the_gate_chart(app_url):
    from playwright.sync_api import expect, sync_playwright

    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1440, "height": 1900})
            page.goto(app_url)
            query = page.get_by_placeholder("Ask something")
            query.wait_for(timeout=FIRST_VIEW_TIMEOUT_MS)
            query.fill(QUERY)
            query.press("Enter")

            slots = page.locator(".sl-field .sl-slot")
            slots.first.wait_for(timeout=60_000)
            expect(page.locator("[class*='st-key-result-']")).to_have_count(8)
            assert slots.count() > 20
            assert re.fullmatch(r"slot 1 · score [01]\.\d{3}", slots.first.get_attribute("title"))
            background = slots.first.evaluate("el => getComputedStyle(el).backgroundColor")
            assert background not in ("rgba(0, 0, 0, 0)", "transparent")

            gate = page.locator(".st-key-gate-chart")
            expect(gate.get_by_role("heading", name="Gate")).to_be_visible()
            chart = gate.locator(".vega-embed canvas, .vega-embed svg.marks").first
            chart.wait_for(timeout=30_000)
            box = chart.bounding_box()
            assert box and box["width"] > 200 and box["height"] > 150
            expect(page.locator(".sl-chip.sl-active")).to_have_count(4)
            expect(page.get_by_text("routed to 4 of 9 pathways")).to_be_visible()

            expect(page.get_by_role("button", name="Stop")).to_have_count(
                0, timeout=60_000
            )  # the whole run has finished
            page.wait_for_timeout(500)  # let the charts finish their first paint for the screenshot
            page.screenshot(path=str(ARTIFACTS / "app_browser.png"))
        finally:
            browser.close()
