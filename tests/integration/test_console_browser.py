"""The operators' console (``/ui``) in a real browser: Debian's headless chromium, driven by
selenium with the system chromedriver, clicks through the overview, certificates, a device's
timeline and tokens as an operator, revokes a certificate, and issues tokens; a viewer's pages
show no action and the viewer's POST is refused. Screenshots of each view are kept (in
``$SCREENSHOT_DIR`` when set, else the test's temporary directory).

A headless chromium cannot be handed a TLS client certificate without a system-wide policy, so
the browser reaches the app over loopback HTTP through the wrapper that presents an operator's
certificate exactly as ``fleetid serve --https`` hands a verified one to the app
(``fleetid.api.peer_certificate.with_client_certificate``). The TLS side of the same
authentication is ``tests/conformance/test_admin_tls.py``'s.
"""

from __future__ import annotations

import os
import shutil
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from tests.authority_server import free_port
from tests.operator_fixtures import Authority, authority
from tests.optional import require_module, unavailable

from fleetid.api import create_app
from fleetid.api.admin.authentication import operator_ca
from fleetid.api.peer_certificate import with_client_certificate
from fleetid.authority.fleet_ca import FleetCa
from fleetid.authority.operator_ca import Role
from fleetid.clock import SystemClock
from fleetid.config import Settings
from fleetid.store.operator_credentials import record_credential

__all__ = ["authority"]  # the fixture, imported for pytest

_DEADLINE_S = 30


@dataclass
class Console:
    operator: str  # base URL where the operator's certificate is presented
    viewer: str
    history: Authority
    shots: Path


def _serve(app: Any, port: int) -> Any:
    import uvicorn

    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None, lifespan="off")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + _DEADLINE_S
    while not server.started:
        assert time.monotonic() < deadline, "the console did not start"
        time.sleep(0.05)
    return server, thread


@pytest.fixture
def console(authority: Authority, tmp_path: Path) -> Iterator[Console]:
    ca = FleetCa.open(Settings.load(authority.data_dir), clock=SystemClock())
    servers = []
    try:
        app = create_app(ca.settings, clock=ca.clock, ca=ca)
        bases = {}
        for role in (Role.OPERATOR, Role.VIEWER):
            issued = operator_ca(ca).issue(f"{role}-ann", role, timedelta(days=1))
            with ca.store.transaction() as tx:
                record_credential(tx, issued.record, by={"via": "test"})
            port = free_port()
            wrapped = with_client_certificate(app, issued.certificate_pem.decode())
            servers.append(_serve(wrapped, port))
            bases[role] = f"http://127.0.0.1:{port}"
        shots = Path(os.environ.get("SCREENSHOT_DIR") or tmp_path / "screenshots")
        shots.mkdir(parents=True, exist_ok=True)
        yield Console(bases[Role.OPERATOR], bases[Role.VIEWER], authority, shots)
    finally:
        for server, thread in servers:
            server.should_exit = True
            thread.join(_DEADLINE_S)
        ca.close()


@pytest.fixture
def browser() -> Iterator[Any]:
    webdriver = require_module("selenium.webdriver", install="pip install -r requirements/test.txt")
    binary, driver_path = shutil.which("chromium"), shutil.which("chromedriver")
    if binary is None or driver_path is None:
        unavailable("chromium is not installed (Debian: apt-get install chromium chromium-driver)")
    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--window-size=1280,900",
    ):
        options.add_argument(flag)
    driver = webdriver.Chrome(
        options=options, service=webdriver.ChromeService(executable_path=driver_path)
    )
    try:
        yield driver
    finally:
        driver.quit()


def _by() -> Any:
    return require_module(
        "selenium.webdriver.common.by", install="pip install -r requirements/test.txt"
    ).By


def _shot(browser: Any, console: Console, name: str) -> None:
    path = console.shots / f"console-{name}.png"
    assert browser.save_screenshot(str(path)), path
    assert path.stat().st_size > 1000


def test_an_operator_clicks_through_and_revokes(console: Console, browser: Any) -> None:
    by = _by()
    serial = console.history.enrolled.serial
    browser.get(f"{console.operator}/ui")
    assert browser.find_element(by.ID, "who").text == "operator-ann (operator)"
    bars = browser.find_elements(by.CSS_SELECTOR, "#certs-by-status rect.bar")
    counts = {b.get_attribute("data-label"): int(b.get_attribute("data-count")) for b in bars}
    assert counts == {"valid": 3, "revoked": 1, "expired": 0}
    expiring = browser.find_element(by.ID, "expiring").text
    assert console.history.other.serial[:16] in expiring  # gw-2's, two days left
    _shot(browser, console, "overview")

    browser.find_element(by.LINK_TEXT, "Certificates").click()
    assert len(browser.find_elements(by.CSS_SELECTOR, "#certificates tbody tr")) == 4
    _shot(browser, console, "certificates")
    button = browser.find_element(by.ID, f"revoke-{serial}")
    form = button.find_element(by.XPATH, "./..")
    form.find_element(by.NAME, "reason").send_keys("keyCompromise")
    button.click()
    # Post/Redirect/Get lands on the certificate, now revoked, its audit entry naming who.
    deadline = time.monotonic() + _DEADLINE_S
    while "/ui/certificates/" + serial not in browser.current_url:
        assert time.monotonic() < deadline, browser.current_url
        time.sleep(0.05)
    facts = browser.find_element(by.ID, "certificate").text
    assert "revoked" in facts and "keyCompromise" in facts
    audit = browser.find_element(by.ID, "audit").text
    assert "ca.revocation" in audit and "operator-ann" in audit
    _shot(browser, console, "certificate")

    browser.find_element(by.LINK_TEXT, "Devices").click()
    browser.find_element(by.LINK_TEXT, "gw-1").click()
    events = [
        row.find_elements(by.TAG_NAME, "td")[1].text
        for row in browser.find_elements(by.CSS_SELECTOR, "#timeline tbody tr")
    ]
    assert events == ["enrolled", "refresh", "re-key", "revoked", "revoked"]
    _shot(browser, console, "device")

    browser.find_element(by.LINK_TEXT, "Tokens").click()
    browser.find_element(by.NAME, "device_prefix").send_keys("lot-")
    count = browser.find_element(by.NAME, "count")
    count.clear()
    count.send_keys("2")
    browser.find_element(by.ID, "issue-tokens").click()
    issued = browser.find_elements(by.CSS_SELECTOR, "#issued tbody tr")
    assert [r.find_element(by.TAG_NAME, "td").text for r in issued] == ["lot-0001", "lot-0002"]
    _shot(browser, console, "tokens")


def test_a_viewer_sees_no_action_and_forged_posts_are_refused(
    console: Console, browser: Any
) -> None:
    by = _by()
    serial = console.history.enrolled.serial
    browser.get(f"{console.viewer}/ui/certificates")
    assert browser.find_element(by.ID, "who").text == "viewer-ann (viewer)"
    assert len(browser.find_elements(by.CSS_SELECTOR, "#certificates tbody tr")) == 4
    assert browser.find_elements(by.CSS_SELECTOR, "button[id^='revoke-']") == []
    browser.get(f"{console.viewer}/ui")
    assert browser.find_elements(by.ID, "publish") == []
    browser.get(f"{console.viewer}/ui/tokens")
    assert browser.find_elements(by.ID, "issue-tokens") == []
    # The form the viewer is not shown, sent anyway: refused, and nothing is revoked.
    refused = httpx.post(
        f"{console.viewer}/ui/certificates/{serial}/revoke",
        content="reason=keyCompromise",
        headers={
            "Origin": console.viewer,
            "Content-Type": "application/x-www-form-urlencoded",
        },
    )
    assert refused.status_code == 403
    assert refused.json()["reason"] == "operator-role"
    shown = httpx.get(f"{console.viewer}/admin/certificates/{serial}").json()
    assert shown["status"] == "valid"
    # Nor may any other site make an operator's browser post the form.
    for origin in ("http://attacker.example", None):
        headers = {"Content-Type": "application/x-www-form-urlencoded"}
        if origin is not None:
            headers["Origin"] = origin
        refused = httpx.post(
            f"{console.operator}/ui/certificates/{serial}/revoke",
            content="reason=keyCompromise",
            headers=headers,
        )
        assert refused.status_code == 403, refused.text
        assert "own origin" in refused.json()["detail"]
    page = httpx.get(f"{console.operator}/ui")
    assert "script" not in page.headers["content-security-policy"]
    assert page.headers["content-security-policy"].startswith("default-src 'none'")
    # Nothing to load: no script, no source, no link off the console.
    assert "<script" not in page.text and " src=" not in page.text
    assert 'href="http' not in page.text
