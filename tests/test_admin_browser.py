"""The admin page in a real headless Chromium, served by the real `supportbot serve` process:
sign in with the token, see every section, approve a learned answer, save a screenshot.

Needs the system's chromium and chromedriver (`.ci/run` installs them with apt-get when
missing); skipped, saying so, only when they are not installed. With
SUPPORTBOT_UPDATE_SCREENSHOTS=1 the screenshot is also written to docs/admin-page.png.
"""

from __future__ import annotations

import asyncio
import os
import shutil
from pathlib import Path

import pytest

from tests.admin_support import DRAFT_QUESTION, seed_admin_data
from tests.fakes.slack_api import FakeSlackAPI
from tests.fakes.slack_fixtures import api, kb_uri
from tests.fakes.slack_harness import BOT_TOKEN, SIGNING_SECRET
from tests.test_slack_serve import _env, _free_port, _sigterm, _start_serve

__all__ = ["api", "kb_uri"]
TOKEN = "browser-test-admin-token-91c2"
DOCS_SCREENSHOT = Path(__file__).resolve().parent.parent / "docs" / "admin-page.png"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")

pytestmark = pytest.mark.skipif(
    not (CHROMIUM and CHROMEDRIVER),
    reason="no system Chromium/chromedriver: `apt-get install chromium chromium-driver` "
    "(.ci/run does this) to run the admin page browser test",
)


def drive_browser(base: str, screenshot: Path) -> dict[str, str]:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as shown
    from selenium.webdriver.support.ui import WebDriverWait

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM or ""
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu"):
        options.add_argument(flag)
    options.add_argument("--window-size=1280,1900")
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    seen: dict[str, str] = {}
    try:
        driver.set_page_load_timeout(30)
        wait = WebDriverWait(driver, 30)  # generous: the machine may be busy
        driver.get(f"{base}/admin")
        wait.until(shown.presence_of_element_located((By.ID, "token")))
        seen["login"] = driver.find_element(By.TAG_NAME, "body").text
        driver.find_element(By.ID, "token").send_keys(TOKEN)
        driver.find_element(By.ID, "sign-in").click()
        wait.until(shown.presence_of_element_located((By.ID, "learned")))
        seen["page"] = driver.find_element(By.TAG_NAME, "main").text
        seen["charts"] = str(len(driver.find_elements(By.TAG_NAME, "svg")))
        driver.save_screenshot(str(screenshot))
        driver.find_element(By.CSS_SELECTOR, "button[id^='approve-']").click()
        wait.until(shown.presence_of_element_located((By.ID, "note")))
        seen["after_approve"] = driver.find_element(By.TAG_NAME, "main").text
    finally:
        driver.quit()
    return seen


async def test_admin_page_in_chromium(
    api: FakeSlackAPI,
    kb_uri: str,
    tmp_path: Path,
) -> None:
    db_file = tmp_path / "serve.db"
    await seed_admin_data(f"sqlite+aiosqlite:///{db_file}")
    env = _env(
        tmp_path,
        SUPPORTBOT_KB_URI=kb_uri,
        SLACK_API_URL=api.base_url,
        SLACK_SIGNING_SECRET=SIGNING_SECRET,
        SLACK_BOT_TOKEN=BOT_TOKEN,
        SUPPORTBOT_ADMIN_TOKEN=TOKEN,
        SUPPORTBOT_LEARNED_DIR=str(tmp_path / "learned_docs"),
        PORT=str(_free_port()),
    )
    proc = await _start_serve(env, tmp_path)
    screenshot = tmp_path / "admin-page.png"
    try:
        seen = await asyncio.to_thread(drive_browser, f"http://127.0.0.1:{env['PORT']}", screenshot)
    finally:
        output = await _sigterm(proc)
    assert TOKEN not in output
    assert "Admin token" in seen["login"]
    for fragment in ("Overview", "Open hand-offs (1)", DRAFT_QUESTION, "Channel settings"):
        assert fragment in seen["page"], fragment
    assert int(seen["charts"]) >= 3
    assert "is in the knowledge base" in seen["after_approve"]
    assert "Learned answers to review (0)" in seen["after_approve"]
    assert screenshot.stat().st_size > 10_000 and screenshot.read_bytes()[:4] == b"\x89PNG"
    if os.environ.get("SUPPORTBOT_UPDATE_SCREENSHOTS") == "1":
        shutil.copyfile(screenshot, DOCS_SCREENSHOT)
