"""Real-browser tests: the admin driven in headless Chromium (Debian's chromium + chromium-driver)
through Selenium, against pytest-django's live server. Outside CI they skip when the browser is
absent; under CI=true (.ci/run installs it) they must run."""
from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import pytest

from tests.conftest import require_service

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"


@pytest.fixture
def downloads():
    folder = Path(tempfile.mkdtemp(prefix="drg-downloads-"))
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def browser(live_server, downloads):
    require_service(bool(CHROMIUM) and Path(CHROMEDRIVER).exists(), "chromium and chromedriver")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu", "--window-size=1366,900", "--lang=zh-CN"):
        options.add_argument(flag)
    options.add_experimental_option("prefs", {
        "download.default_directory": str(downloads), "download.prompt_for_download": False,
        "plugins.always_open_pdf_externally": True, "intl.accept_languages": "zh-CN,zh",
    })
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.implicitly_wait(5)
    driver.base_url = live_server.url
    yield driver
    driver.quit()
