"""The admin dashboard in a real browser (Debian's Chromium, headless) against gunicorn.

An admin logs in with the admin token, creates a key (its secret shown
once), a client uses the key through the openai SDK, and the request shows
up in the ledger view, the spend chart and the budgets' progress bars; the
page runs under a strict Content-Security-Policy with no violation in the
browser's console. The test saves a screenshot of each view it checks.
"""

from __future__ import annotations

import re
from pathlib import Path

import openai
import pytest
import requests

from tests import webdriver
from tests.integration.tenancy import ADMIN_TOKEN, AUTH_SECRET

pytestmark = pytest.mark.slow

MISSING = webdriver.available()
SCREENSHOTS = Path(__file__).resolve().parents[2] / ".cache" / "screenshots"
KEYS_ENV = {
    "GATEWAY_AUTH": "keys",
    "GATEWAY_ADMIN_TOKEN": ADMIN_TOKEN,
    "GATEWAY_AUTH_SECRET": AUTH_SECRET,
}


def test_the_shell_is_public_holds_no_data_and_allows_no_inline_script(start_gateway):
    gateway = start_gateway(workers=1, **KEYS_ENV)
    page = requests.get(f"{gateway.url}/v1/gateway/admin", timeout=10)
    assert page.status_code == 200 and page.headers["Content-Type"].startswith("text/html")
    policy = page.headers["Content-Security-Policy"]
    assert "script-src 'self'" in policy and "unsafe-inline" not in policy
    assert "default-src 'none'" in policy and "frame-ancestors 'none'" in policy
    assert not re.search(r"<script(?![^>]*\bsrc=)", page.text), "an inline script"
    assert not re.search(r"<[^>]*\son[a-z]+\s*=", page.text), "an inline event handler"
    script = requests.get(f"{gateway.url}/v1/gateway/admin/app.js", timeout=10).text
    assert "innerHTML" not in script and "eval(" not in script
    assert ADMIN_TOKEN not in page.text + script
    # The data is behind the admin API: without a token, nothing.
    assert requests.get(f"{gateway.url}/v1/gateway/keys", timeout=10).status_code == 401


@pytest.mark.skipif(MISSING is not None, reason=MISSING or "")
def test_log_in_create_a_key_and_see_its_request_in_the_ledger(start_gateway, tmp_path):
    gateway = start_gateway(workers=1, **KEYS_ENV)
    price = {
        "model": "fake-model",
        "input_micros_per_million": 1_000_000,
        "output_micros_per_million": 2_000_000,
    }
    requests.put(
        f"{gateway.url}/v1/gateway/prices",
        json={"prices": [price]},
        headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
        timeout=10,
    ).raise_for_status()
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    with webdriver.chromium(tmp_path / "chromedriver.log") as browser:
        browser.open(f"{gateway.url}/v1/gateway/admin")
        browser.type("#token", "not-the-token")
        browser.click("#login-button")
        browser.wait_for(lambda: browser.text("#login-error"), "the refusal")
        browser.run("document.getElementById('token').value = ''")
        browser.type("#token", ADMIN_TOKEN)
        browser.click("#login-button")
        browser.wait_for(
            lambda: browser.run("return !document.getElementById('tabs').hidden"),
            "the logged-in view",
        )
        assert browser.run("return sessionStorage.getItem('gatewayAdminToken')") == ADMIN_TOKEN

        browser.type("#new-key-name", "dashboard-key")
        browser.type("#new-key-budget", "5")
        browser.click("#create-key")
        secret = browser.wait_for(lambda: browser.text("#new-secret"), "the new secret")
        assert secret.startswith("gw-")
        browser.wait_for(lambda: "dashboard-key" in browser.text("#keys"), "the key listed")
        browser.screenshot(SCREENSHOTS / "dashboard-keys.png")

        client = openai.OpenAI(base_url=f"{gateway.url}/v1", api_key=secret, max_retries=0)
        answer = client.responses.create(model="fake-model", input="hello from the dashboard")
        assert answer.status == "completed"

        browser.click("#tabs button[data-view=ledger]")
        browser.wait_for(lambda: "dashboard-key" in browser.text("#ledger"), "the ledger row")
        assert "completed" in browser.text("#ledger")
        browser.screenshot(SCREENSHOTS / "dashboard-ledger.png")
        # A date range after today: the rows are filtered by the API, so none.
        browser.run("document.getElementById('ledger-start').value = '2999-01-01'")
        browser.click("#ledger-refresh")
        browser.wait_for(lambda: "dashboard-key" not in browser.text("#ledger"), "the range")

        browser.click("#tabs button[data-view=spend]")
        bars = browser.wait_for(
            lambda: browser.run("return document.querySelectorAll('#spend-chart rect').length"),
            "the spend chart",
        )
        assert bars == 1 and "fake-model" in browser.text("#spend")
        browser.click("#tabs button[data-view=budgets]")
        browser.wait_for(lambda: "dashboard-key" in browser.text("#budgets"), "the budget row")
        value = browser.run("return document.querySelector('#budgets progress').value")
        assert value > 0
        shot = browser.screenshot(SCREENSHOTS / "dashboard-budgets.png")
        assert shot.stat().st_size > 1000

        browser.click("#tabs button[data-view=audit]")
        browser.wait_for(lambda: "key.create" in browser.text("#audit"), "the audit row")
        violations = [
            entry["message"]
            for entry in browser.console()
            if "Content Security Policy" in entry["message"] or entry["level"] == "SEVERE"
        ]
        # The one expected error: the 401 of the wrong token typed first.
        assert all("401" in message for message in violations), violations
