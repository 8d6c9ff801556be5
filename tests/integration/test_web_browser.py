# ruff: noqa: F811 - the fixtures are imported from web_helpers and push/conftest by name
"""The web interface in a real browser: headless Chromium driven by selenium (TESTING.md section 8).

Logs in, sees the sim://demo meter list, sets a label, activates a heard wM-Bus meter, starts a readout,
and finds the changes in device_handle.cfg. A screenshot of the Meter tab is kept in the test's tmp dir.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from sonocli.engine.core import Engine
from tests.conftest import need_exe
from tests.integration.web_helpers import _prepared, root, web  # noqa: F401 (fixtures)


@pytest.fixture()
def browser() -> Any:
    chromium = need_exe("chromium", "chromium chromium-driver")
    driver_exe = need_exe("chromedriver", "chromium chromium-driver")
    if os.environ.get("CI"):
        import selenium  # noqa: F401 - under CI the test extra has it: fail loudly if not
    webdriver = pytest.importorskip("selenium.webdriver")
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    options = Options()
    options.binary_location = chromium
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--window-size=1600,1200"):
        options.add_argument(arg)
    driver = webdriver.Chrome(options=options, service=Service(driver_exe))
    try:
        yield driver
    finally:
        driver.quit()


def _wait_for(browser: Any, text: str, timeout: float = 30) -> None:
    """Until the page (the one after a click has loaded) shows ``text`` in its main part."""
    from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException, WebDriverException
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    def shown(driver: Any) -> bool:
        try:
            return text in driver.find_element(By.TAG_NAME, "main").text
        except WebDriverException as exc:
            # Chromium reports an element the next page replaced while its text was read as an inspector
            # error, not as a stale element: the page is still loading, look again
            if "does not belong to the document" in str(exc):
                return False
            raise

    WebDriverWait(browser, timeout, ignored_exceptions=(NoSuchElementException, StaleElementReferenceException)
                  ).until(shown, f"{text!r} not shown")


def test_an_engineer_commissions_the_demo_in_a_browser(browser: Any, web: Any, root: Path, tmp_path: Path) -> None:
    from selenium.webdriver.common.by import By

    browser.get(web.url + "/")
    browser.find_element(By.ID, "user").send_keys("web")
    browser.find_element(By.ID, "password").send_keys("web")
    browser.find_element(By.ID, "login").click()
    _wait_for(browser, "default password")  # the warning while Table 13's passwords are unchanged
    browser.get(web.url + "/meter")
    table = browser.find_element(By.ID, "meters").text
    first = Engine(root).meter_list().meters[0]
    assert first.serial in table and "EMH" in table

    browser.find_element(By.ID, "edit-1").click()
    label = browser.find_element(By.ID, "user")
    label.clear()
    label.send_keys("Boiler room")
    browser.find_element(By.ID, "save-meter").click()
    _wait_for(browser, "meter 1 saved")

    browser.get(web.url + "/meter")
    heard = Engine(root).heard_meters()[0].id
    browser.find_element(By.ID, f"heard-{heard}").click()
    _wait_for(browser, "added to the list and activated")

    browser.find_element(By.ID, "readout").click()
    _wait_for(browser, "readout: done", 90)  # the page refreshes itself while the readout runs
    shot = tmp_path / "meter-tab.png"
    browser.save_screenshot(str(shot))
    assert shot.stat().st_size > 1000

    cfg = (root / "app" / "device_handle.cfg").read_text()
    assert "Boiler room" in cfg
    listed = {m.serial: m for m in Engine(root).meter_list().meters}
    assert listed[heard].active
    assert Engine(root).meter_list().meters[0].user == "Boiler room"
