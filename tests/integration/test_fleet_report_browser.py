"""The fleet report in a real browser: Debian's headless chromium, driven by selenium with the
system chromedriver, opens ``report.html`` from disk; it renders, every plot is there and drawn,
and no request leaves the page."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from tests.fleet_fixtures import run_small
from tests.optional import require_module, unavailable

from fleetid.sim.fleet.report_html import PLOTS


def _driver() -> Iterator[Any]:
    webdriver = require_module("selenium.webdriver", install="pip install -r requirements/test.txt")
    browser = shutil.which("chromium")
    driver_path = shutil.which("chromedriver")
    if browser is None or driver_path is None:
        unavailable("chromium is not installed (Debian: apt-get install chromium chromium-driver)")
    options = webdriver.ChromeOptions()
    options.binary_location = browser
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"performance": "ALL"})
    service = webdriver.ChromeService(executable_path=driver_path)
    driver = webdriver.Chrome(options=options, service=service)
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture(scope="module")
def report_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("fleet-report")
    run_small(root / "state", devices=12, years=0.02, report_dir=root / "report")
    return root / "report"


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    yield from _driver()


def _requests(driver: Any) -> list[str]:
    """Every URL the page asked the network stack for (the DevTools performance log)."""
    urls = []
    for entry in driver.get_log("performance"):
        message = json.loads(entry["message"])["message"]
        if message["method"] == "Network.requestWillBeSent":
            urls.append(message["params"]["request"]["url"])
    return urls


def test_the_report_renders_every_plot_and_fetches_nothing(report_dir: Path, browser: Any) -> None:
    page = (report_dir / "report.html").resolve().as_uri()
    browser.get_log("performance")  # drop what the browser did before the page
    browser.get(page)
    assert browser.title.startswith("fleetid fleet simulation: 12 devices")
    assert browser.execute_script("return document.readyState") == "complete"
    for key, title in PLOTS:
        figure = browser.find_element("id", f"plot-{key}")
        assert title in figure.text
        size = browser.execute_script(
            "const r = arguments[0].querySelector('svg').getBoundingClientRect();"
            "return [r.width, r.height, arguments[0].querySelectorAll('svg path').length];",
            figure,
        )
        assert size[0] > 100 and size[1] > 50 and size[2] > 5, (key, size)
    verdict = browser.find_element("id", "verdict").text
    assert verdict == "converged"
    assert browser.execute_script("return performance.getEntriesByType('resource').length") == 0
    assert [url for url in _requests(browser) if url != page] == []


def test_the_check_sees_a_request_that_leaves_the_page(
    report_dir: Path, browser: Any, tmp_path: Path
) -> None:
    """The same checks on a copy of the report that loads one image from elsewhere: they must
    see it (a check that can see nothing proves nothing)."""
    leaky = tmp_path / "leaky.html"
    text = (report_dir / "report.html").read_text()
    leaky.write_text(
        text.replace("img-src data:", "img-src http://127.0.0.1:9").replace(
            "</body>", '<img src="http://127.0.0.1:9/pixel.png"></body>'
        )
    )
    browser.get_log("performance")
    browser.get(leaky.as_uri())
    assert "http://127.0.0.1:9/pixel.png" in _requests(browser)
