"""The admin's live status page, in a real headless Chromium: staff only, and it moves."""

from __future__ import annotations

import os
import re
import secrets
import shutil
import time
from pathlib import Path
from urllib.parse import unquote

import httpx
import pytest

from ..conftest import free_port, manage, need

STATUS_PATH = "/admin/server-status/"


def find_chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "chrome"):
        if path := shutil.which(name):
            return path
    for root in (os.environ.get("PROGRAMFILES"), os.environ.get("PROGRAMFILES(X86)")):  # Windows
        if root and (path := Path(root, "Google", "Chrome", "Application", "chrome.exe")).is_file():
            return str(path)
    return None


def find_chromedriver() -> str | None:
    if path := shutil.which("chromedriver"):
        return path
    folder = os.environ.get("CHROMEWEBDRIVER")  # where GitHub's runners keep it
    for name in ("chromedriver", "chromedriver.exe"):
        if folder and (path := Path(folder, name)).is_file():
            return str(path)
    return None


@pytest.fixture(scope="module")
def browser():
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        need(False, "selenium is not installed (pip install -r requirements-dev.txt)")
    chromium, driver_path = find_chromium(), find_chromedriver()
    need(chromium is not None, "Chromium not installed (apt-get install chromium)")
    need(driver_path is not None, "chromedriver not installed (apt-get install chromium-driver)")
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                     "--window-size=1280,900", "--no-first-run"):
        options.add_argument(argument)
    driver = webdriver.Chrome(options=options, service=Service(driver_path))
    driver.set_page_load_timeout(30)
    yield driver
    driver.quit()


@pytest.fixture(scope="module")
def staff_user(server_env) -> tuple[str, str]:
    username, password = f"staff_{secrets.token_hex(3)}", secrets.token_urlsafe(16)
    manage("createsuperuser", "--noinput", "--username", username, "--email", "staff@example.com",
           env={**server_env, "DJANGO_SUPERUSER_PASSWORD": password})
    return username, password


def wait_for(condition, timeout: float = 30, message: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := condition():
            return value
        time.sleep(0.2)
    pytest.fail(f"{message} not met in {timeout}s")


def line_heights(browser, series: str) -> set[str]:
    """The distinct y coordinates of one chart line (an empty set if it is not drawn)."""
    paths = browser.find_elements("css selector", f"path.line.{series}")  # none before the first poll
    return set(re.findall(r"[ML][\d.-]+ ([\d.-]+)", paths[0].get_attribute("d") or "")) if paths else set()


def figure(browser, name: str) -> str:
    return browser.find_element("id", f"figure-{name}").text


def test_staff_see_the_chart_move_while_requests_come_in(browser, staff_user, start_server):
    from selenium.webdriver.common.by import By

    # A proxy for outgoing HTTP (common on company machines) must not come between the page's
    # data view and the metrics listener on this machine.
    dead_proxy = {"HTTP_PROXY": f"http://127.0.0.1:{free_port()}", "NO_PROXY": ""}
    dead_proxy.update({name.lower(): value for name, value in dead_proxy.items()})
    server = start_server("--workers", "2", "--metrics", str(free_port()), env=dead_proxy)
    browser.delete_all_cookies()
    browser.get(f"{server.url}/admin/login/?next=/admin/")
    browser.find_element(By.NAME, "username").send_keys(staff_user[0])
    browser.find_element(By.NAME, "password").send_keys(staff_user[1])
    browser.find_element(By.CSS_SELECTOR, "input[type=submit]").click()
    wait_for(lambda: browser.current_url.rstrip("/").endswith("/admin"), message="logged in")
    link = browser.find_element(By.CSS_SELECTOR, "#server-status-link a")
    assert link.get_attribute("href").endswith(STATUS_PATH)
    link.click()

    # The page draws the chart and the worker table from its first poll.
    wait_for(lambda: len(line_heights(browser, "rps")) >= 1, message="the throughput line drawn")
    wait_for(lambda: len(browser.find_elements(By.CSS_SELECTOR, "#workers tbody tr")) == 2,
             message="both workers listed")
    assert "Server status" in browser.title
    before = int(figure(browser, "total").replace(",", "") or 0)

    with httpx.Client(timeout=10) as http:
        for _ in range(5):
            for _ in range(40):
                assert http.get(f"{server.url}/healthz").status_code == 200
            time.sleep(0.5)
    wait_for(lambda: int(figure(browser, "total").replace(",", "")) >= before + 200,
             message="the request total to grow by 200")
    wait_for(lambda: len(line_heights(browser, "rps")) > 1, message="the throughput line to rise")
    assert figure(browser, "p50") not in ("", "\u2013")
    if path := os.environ.get("STATUS_PAGE_SCREENSHOT"):  # how the README's picture is made
        browser.save_screenshot(path)


def test_anonymous_users_are_sent_to_the_login_page(browser, start_server):
    server = start_server()
    browser.delete_all_cookies()
    browser.get(f"{server.url}{STATUS_PATH}")
    assert "/admin/login/" in browser.current_url
    assert "next=" + STATUS_PATH in unquote(browser.current_url)
    with httpx.Client(timeout=10) as http:
        data = http.get(f"{server.url}{STATUS_PATH}data.json")
        assert data.status_code == 302
        assert data.headers["location"].startswith("/admin/login/")


def test_the_page_says_how_to_switch_metrics_on(staff_user, start_server):
    server = start_server()  # no --metrics
    with httpx.Client(timeout=10, base_url=server.url) as http:
        form = http.get("/admin/login/")
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', form.text).group(1)
        http.post("/admin/login/", data={"csrfmiddlewaretoken": token, "username": staff_user[0],
                                         "password": staff_user[1], "next": "/admin/"})
        page = http.get(STATUS_PATH)
        assert page.status_code == 200
        assert "--metrics 9100" in page.text
        data = http.get(f"{STATUS_PATH}data.json").json()
        assert data["enabled"] is False and "SERVER_METRICS" in data["reason"]
