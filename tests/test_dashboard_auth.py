"""Who gets into the cockpit: passwords per role, refusals to serve openly, masked keys, audit."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from dashboard_data import demo_home, query
from pydantic import SecretStr
from streamlit.testing.v1 import AppTest

from configs.schema import SecurityConfig
from dashboards.access import DATA_TEAM, MARKETING, bind_refusal, is_local, role_for, role_passwords

APP = Path(__file__).resolve().parents[1] / "dashboards" / "app.py"
RAW_ID = re.compile(r"\bC\d{8}\b")
PASSWORDS = {
    "CHURN_SECURITY__DASHBOARD_PASSWORD": "dt-secret",
    "CHURN_SECURITY__MARKETING_PASSWORD": "mk-secret",
}


@pytest.fixture(autouse=True)
def _main_module_restored():
    """AppTest leaves the page as __main__ (see tests/test_dashboard.py)."""
    main = sys.modules["__main__"]
    yield
    sys.modules["__main__"] = main


def test_loopback_is_local_and_everything_else_is_not():
    assert all(is_local(h) for h in ("127.0.0.1", "localhost", "::1", "[::1]", "127.0.1.1"))
    assert not any(is_local(h) for h in ("0.0.0.0", "", "::", "192.168.1.5", "cockpit.example"))  # noqa: S104


def test_each_password_opens_its_own_role_only():
    security = SecurityConfig(
        dashboard_password=SecretStr("a1"), marketing_password=SecretStr("b2")
    )
    passwords = role_passwords(security)
    assert role_for("a1", passwords) == DATA_TEAM and role_for("b2", passwords) == MARKETING
    assert role_for("", passwords) is None and role_for("a1 ", passwords) is None
    assert role_passwords(SecurityConfig()) == {}
    assert bind_refusal("0.0.0.0", {}) and bind_refusal("127.0.0.1", {}) is None  # noqa: S104
    assert bind_refusal("0.0.0.0", passwords) is None  # noqa: S104


def test_cli_refuses_to_serve_beyond_localhost_without_a_password(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("CHURN_SECURITY")}
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "pipelines",
            "--home",
            str(tmp_path / "h"),
            "dashboard",
            "--host",
            "0.0.0.0",
        ],  # noqa: S104
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert proc.returncode == 2
    lines = [line for line in (proc.stdout + proc.stderr).splitlines() if line.strip()]
    assert len(lines) == 1 and "without a password" in lines[0], lines
    assert not (tmp_path / "h").exists()  # refused before anything was created


@pytest.fixture(scope="module")
def dash_home(tmp_path_factory) -> Path:
    return demo_home(tmp_path_factory)


def open_app(
    home: Path, monkeypatch, slug: str = "customer", address: str = "127.0.0.1", **env
) -> AppTest:
    from streamlit import config

    monkeypatch.setenv("CHURN_HOME", str(home))
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    config.set_option("server.address", address)
    at = AppTest.from_file(str(APP), default_timeout=60)
    at.session_state["start_page"] = slug
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def texts(at: AppTest) -> str:
    """Everything the page shows as text: headings, markdown, metrics, widgets, tables."""
    parts = [
        e.value
        for kind in ("title", "subheader", "markdown", "caption", "info", "error")
        for e in at.get(kind)
    ]
    parts += [str(m.value) for m in at.metric]
    parts += [str(o) for sb in at.selectbox for o in sb.options]  # as shown (formatted)
    parts += [w.label for w in [*at.selectbox, *at.text_input]]
    parts += [df.value.to_csv() for df in at.dataframe]
    return "\n".join(str(p) for p in parts)


def test_open_bind_without_password_shows_no_data(dash_home, monkeypatch):
    at = open_app(dash_home, monkeypatch, slug="overview", address="0.0.0.0")  # noqa: S104
    assert any("no password" in e.value for e in at.error)
    assert not at.metric and not at.dataframe


def test_login_wall_then_marketing_sees_masked_keys_only(dash_home, monkeypatch):
    at = open_app(dash_home, monkeypatch, **PASSWORDS)
    assert at.button[0].label == "Sign in" or any(b.label == "Sign in" for b in at.button)
    assert not at.metric and not at.dataframe  # nothing behind the wall
    at.text_input[0].input("nope")
    at.button[0].click().run()
    assert any("Wrong password" in e.value for e in at.error)
    at.text_input[0].input("mk-secret")
    at.button[0].click().run()
    assert not at.exception, [e.value for e in at.exception]
    page = texts(at)
    assert "masked keys" in page and not RAW_ID.search(page), RAW_ID.findall(page)[:3]
    key = at.selectbox(key="customer_pick").value
    assert re.fullmatch(r"K[0-9a-f]{16}", key) and at.subheader[0].value == key
    # A raw id typed into the search finds nobody: marketing cannot look customers up by id.
    raw = query(
        dash_home, "SELECT customer_id FROM retention.retention_lists WHERE customer_key = ?", [key]
    )[0][0]
    at.text_input(key="customer_key").set_value(raw).run()
    assert any("No customer with masked key" in i.value for i in at.info)
    assert raw not in texts(at).replace(f"{raw!r}", "")  # only echoed back as the failed query
    audit = (dash_home / "audit.log").read_text()
    assert "sign-in refused" in audit and "sign-in role=marketing" in audit
    assert f"customer lookup role=marketing customer={key}" in audit
    assert not any(RAW_ID.search(line) for line in audit.splitlines() if "marketing" in line)


def test_data_team_looks_customers_up_by_id_and_each_lookup_is_audited(dash_home, monkeypatch):
    at = open_app(dash_home, monkeypatch, **PASSWORDS)
    at.text_input[0].input("dt-secret")
    at.button[0].click().run()
    assert not at.exception, [e.value for e in at.exception]
    first = at.selectbox(key="customer_pick").value
    assert RAW_ID.fullmatch(first) and at.subheader[0].value == first
    other = query(dash_home, "SELECT customer_id FROM scores.customer_scores ORDER BY 1 LIMIT 1")[
        0
    ][0]
    log = dash_home / "audit.log"

    def lookups(cid: str) -> int:
        return sum(
            f"role=data team customer={cid}" in line for line in log.read_text().splitlines()
        )

    before = lookups(other)
    at.text_input(key="customer_id").set_value(other).run()
    assert at.subheader[0].value == other
    at.run()  # a rerun of the same view is not a second lookup
    assert lookups(first) >= 1
    assert lookups(other) == before + 1
