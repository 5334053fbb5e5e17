"""The cockpit served by `streamlit run` and driven by headless Chromium: every page renders."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from dashboard_data import demo_home

pytestmark = pytest.mark.browser

REPO = Path(__file__).resolve().parents[1]
SHOTS = REPO / "test-output" / "screenshots"
CHROMIUM = Path("/usr/bin/chromium")
# (url path, page title, text that only appears once the page's data has rendered)
PAGES = [
    ("", "Overview", "Active customers"),
    ("retention-list", "Retention list", "Download XLSX"),
    ("customer", "Customer", "Top reasons"),
    ("models", "Models", "Champion"),
    ("monitoring", "Monitoring", "Top drifted features"),
    ("campaigns", "Campaigns", "Churn reduction"),
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_healthy(url: str, proc: subprocess.Popen, log: Path, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"streamlit exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as r:  # noqa: S310
                if r.read().decode().strip() == "ok":
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.5)
    pytest.fail(f"streamlit not healthy after {timeout:.0f} s:\n{log.read_text()[-3000:]}")


@pytest.fixture(scope="module")
def server(tmp_path_factory) -> Iterator[str]:
    home = demo_home(tmp_path_factory)
    port = free_port()
    log = tmp_path_factory.mktemp("streamlit") / "server.log"
    env = {**os.environ, "CHURN_HOME": str(home)}
    with log.open("w") as out:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "streamlit",
                "run",
                "dashboards/app.py",
                "--server.port",
                str(port),
                "--server.address",
                "127.0.0.1",
                "--server.headless",
                "true",
                "--browser.gatherUsageStats",
                "false",
            ],
            cwd=REPO,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        url = f"http://127.0.0.1:{port}"
        wait_healthy(url, proc, log)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture(scope="module")
def browser():
    if not CHROMIUM.exists():
        pytest.fail(
            f"{CHROMIUM} not found: the browser tests need Debian's chromium (`make browser`)"
        )
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=["--no-sandbox", "--disable-gpu"]
        )
        try:
            yield b
        finally:
            b.close()


def settle(page, marker: str) -> None:
    """Wait for the page's own content, then for the script run and chart drawing to finish."""
    page.wait_for_selector('[data-testid="stAppViewContainer"]', timeout=60_000)
    page.get_by_text(marker, exact=False).first.wait_for(timeout=60_000)
    page.wait_for_function(
        "() => !document.querySelector("
        '\'[data-testid="stStatusWidgetRunningIcon"], [data-testid="stSpinner"]\')',
        timeout=60_000,
    )
    page.wait_for_timeout(1500)  # Vega draws charts asynchronously after the data arrives


@pytest.mark.parametrize(("slug", "title", "marker"), PAGES, ids=[p[1] for p in PAGES])
def test_page_renders_without_errors(server, browser, slug, title, marker):
    page = browser.new_page(viewport={"width": 1440, "height": 2200})
    try:
        page.goto(f"{server}/{slug}")
        settle(page, marker)
        assert page.get_by_role("heading", name=title, level=1).is_visible()
        assert page.get_by_text(marker).first.is_visible()
        assert page.locator('[data-testid="stException"]').count() == 0
        assert page.get_by_text("Page not found").count() == 0
        if slug not in ("retention-list", "customer"):
            # Every page except the two table-first ones leads with charts.
            # Charts arrive after the script run settles; give a busy machine time to draw one.
            page.wait_for_selector('[data-testid="stVegaLiteChart"]', timeout=30_000)
        SHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SHOTS / f"{slug or 'overview'}.png"))
    finally:
        page.close()


def test_sidebar_navigation_switches_pages(server, browser):
    page = browser.new_page(viewport={"width": 1440, "height": 1000})
    try:
        page.goto(server)
        settle(page, "Active customers")
        page.get_by_test_id("stSidebarNav").get_by_text("Campaigns").click()
        settle(page, "Churn reduction")
        assert page.url.rstrip("/").endswith("/campaigns")
        assert page.locator('[data-testid="stException"]').count() == 0
    finally:
        page.close()


DATA_PASSWORD, MARKETING_PASSWORD = "data-team-secret-1", "marketing-secret-2"


@pytest.fixture(scope="module")
def guarded_server(tmp_path_factory) -> Iterator[tuple[str, Path]]:
    """`churn dashboard --host 0.0.0.0` with both passwords set, as a team would expose it."""
    import signal

    home = demo_home(tmp_path_factory)
    port = free_port()
    log = tmp_path_factory.mktemp("guarded") / "server.log"
    env = {
        **os.environ,
        "CHURN_SECURITY__DASHBOARD_PASSWORD": DATA_PASSWORD,
        "CHURN_SECURITY__MARKETING_PASSWORD": MARKETING_PASSWORD,
    }
    cmd = [sys.executable, "-m", "pipelines", "--home", str(home), "dashboard"]
    with log.open("w") as out:
        proc = subprocess.Popen(
            [*cmd, "--host", "0.0.0.0", "--port", str(port)],  # noqa: S104 - the point of the test
            cwd=REPO,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # the CLI's streamlit child goes down with it
        )
    try:
        url = f"http://127.0.0.1:{port}"
        wait_healthy(url, proc, log)
        yield url, home
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def sign_in(page, password: str) -> None:
    page.locator('input[type="password"]').fill(password)
    page.get_by_role("button", name="Sign in").click()


def test_login_wall_stops_strangers_and_lets_each_team_in(guarded_server, browser):
    import re

    url, home = guarded_server
    page = browser.new_page(viewport={"width": 1440, "height": 1400})
    try:
        page.goto(url)
        page.get_by_role("button", name="Sign in").wait_for(timeout=60_000)
        SHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SHOTS / "login.png"))
        assert page.get_by_text("Active customers").count() == 0
        assert page.get_by_test_id("stSidebarNav").count() == 0  # no way around the wall
        sign_in(page, "guess")
        page.get_by_text("Wrong password.").wait_for(timeout=60_000)
        assert page.get_by_text("Active customers").count() == 0

        sign_in(page, MARKETING_PASSWORD)
        settle(page, "Active customers")
        page.get_by_test_id("stSidebarNav").get_by_text("Customer").click()
        settle(page, "Top reasons")
        assert page.get_by_text("masked keys").count() >= 1
        body = page.locator("body").inner_text()
        assert not re.search(r"\bC\d{8}\b", body), "marketing saw a raw customer id"
        page.screenshot(path=str(SHOTS / "customer-marketing.png"))
        page.get_by_text("Sign out").click()
        page.get_by_role("button", name="Sign in").wait_for(timeout=60_000)

        sign_in(page, DATA_PASSWORD)  # back on the page that was open (Customer)
        page.get_by_test_id("stSidebarNav").wait_for(timeout=60_000)
        page.get_by_test_id("stSidebarNav").get_by_text("Customer").click()
        settle(page, "Top reasons")
        assert re.search(r"\bC\d{8}\b", page.locator("body").inner_text())
    finally:
        page.close()
    audit = (home / "audit.log").read_text()
    assert "sign-in refused" in audit
    assert "sign-in role=marketing" in audit and "sign-in role=data team" in audit
    assert re.search(r"customer lookup role=marketing customer=K[0-9a-f]{16}", audit)
    assert re.search(r"customer lookup role=data team customer=C\d{8}", audit)
