"""The web catalog in a real browser: Debian's headless Chromium driven by selenium through Debian's chromedriver,
against a real `serve` on 127.0.0.1 over a mirror of pulled models (tests/test_web_pages.py builds it). Search,
filter, open a model page, see digests and verdicts, follow a snippet's URL, a hostile card that runs nothing, the
`--token` login, and a screenshot of the model page.

CI installs `chromium` and `chromium-driver` (.ci/run); without them these tests fail, except outside CI (no `CI`
variable), where they are skipped with the reason.
"""

import hashlib
import os
import shutil
import time
from pathlib import Path

import pytest
from selenium import webdriver
from selenium.common.exceptions import NoAlertPresentException
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions
from selenium.webdriver.support.ui import WebDriverWait

from hubmirror.access.tokens import issue
from hubmirror.catalog import Catalog
from tests.fakes.mirror_server import MirrorServer
from tests.fakes.model_files import MINILM_REPO_ID, facenet_files, minilm_files
from tests.test_web_pages import EVIL_REPO, site, web_mirror  # noqa: F401 (fixtures)

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
pytestmark = pytest.mark.skipif(
    not (CHROMIUM.exists() and CHROMEDRIVER.exists()) and not os.environ.get("CI"),
    reason="Debian's chromium and chromium-driver are not installed (apt-get install chromium chromium-driver)")


def _browser(tmp_path: Path, monkeypatch, *, javascript: bool = True):
    """Headless Chromium with a fresh profile, through the Debian chromedriver (selenium-manager kept offline)."""
    for path in (CHROMIUM, CHROMEDRIVER):
        if not path.exists():
            pytest.fail(f"{path} is missing: install Debian's chromium and chromium-driver (see .ci/run)")
    monkeypatch.setenv("SE_OFFLINE", "true")  # selenium-manager, were it asked, must not reach the network
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-dev-shm-usage", "--window-size=1280,1600", f"--user-data-dir={tmp_path / 'profile'}"):
        options.add_argument(flag)
    prefs = {"download.default_directory": str(tmp_path / "downloads"), "download.prompt_for_download": False}
    if not javascript:
        prefs["profile.managed_default_content_settings.javascript"] = 2
    options.add_experimental_option("prefs", prefs)
    service = webdriver.ChromeService(executable_path=str(CHROMEDRIVER), log_output=str(tmp_path / "driver.log"))
    driver = webdriver.Chrome(options=options, service=service)
    driver.set_page_load_timeout(30)
    return driver


@pytest.fixture
def browser(tmp_path, monkeypatch):
    driver = _browser(tmp_path, monkeypatch)
    yield driver
    driver.quit()


@pytest.fixture
def browser_without_javascript(tmp_path, monkeypatch):
    driver = _browser(tmp_path, monkeypatch, javascript=False)
    yield driver
    driver.quit()


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _wait_for_url(driver, part: str) -> None:
    WebDriverWait(driver, 20).until(expected_conditions.url_contains(part))


def test_search_filter_and_model_page_without_javascript(site, browser_without_javascript, tmp_path):  # noqa: F811
    driver = browser_without_javascript
    driver.get(site.url + "/")
    assert driver.find_element(By.ID, "cached-count").text == "3"
    box = driver.find_element(By.CSS_SELECTOR, "main form.search input[name=search]")
    box.send_keys("minilm")
    box.submit()
    _wait_for_url(driver, "/models?search=minilm")
    assert [a.text for a in driver.find_elements(By.CSS_SELECTOR, "#results a.model")] == [MINILM_REPO_ID]
    filters = driver.find_element(By.CSS_SELECTOR, "form.filters")
    filters.find_element(By.NAME, "search").clear()
    task = filters.find_element(By.CSS_SELECTOR, "select[name=pipeline_tag] option[value='text-classification']")
    assert task.text == "text-classification (1)"  # the Hub's facets: each value with its count
    task.click()
    filters.find_element(By.CSS_SELECTOR, "select[name=cached] option[value=true]").click()
    filters.find_element(By.ID, "apply").click()
    _wait_for_url(driver, "pipeline_tag=text-classification")
    assert "cached=true" in driver.current_url
    assert [a.text for a in driver.find_elements(By.CSS_SELECTOR, "#results a.model")] == [EVIL_REPO]
    driver.get(site.url + "/models?search=minilm")
    driver.find_element(By.LINK_TEXT, MINILM_REPO_ID).click()
    _wait_for_url(driver, f"/{MINILM_REPO_ID}")
    assert driver.find_element(By.ID, "repo").text == MINILM_REPO_ID
    shown = {row.get_attribute("data-path"): (row.find_element(By.CSS_SELECTOR, "code.digest").text,
                                              row.find_element(By.CSS_SELECTOR, ".verdict").text)
             for row in driver.find_elements(By.CSS_SELECTOR, "#files tbody tr")}
    assert shown == {path: (_sha256(source), "clean") for path, source in minilm_files().items()}
    assert len(driver.find_elements(By.CSS_SELECTOR, "#plots svg")) == 2
    shot = tmp_path / "model-page.png"
    assert driver.save_screenshot(str(shot))
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 20_000


def test_quarantine_and_a_hostile_card_that_runs_nothing(site, browser):  # noqa: F811
    browser.get(f"{site.url}/{EVIL_REPO}")
    row = browser.find_element(By.CSS_SELECTOR, '#files tr[data-path="pytorch_model.bin"]')
    assert "quarantined" in row.get_attribute("class")
    assert "posix.system" in row.find_element(By.CSS_SELECTOR, ".reason").text
    assert row.find_elements(By.TAG_NAME, "a") == []  # no download link for it
    _assert_nothing_ran(browser)
    card = browser.find_element(By.ID, "card")
    assert "A friendly model" in card.text
    for text in ("click me", "data link", "styled"):  # what is left of the links and handlers does nothing
        card.find_element(By.XPATH, f".//*[contains(text(), '{text}')]").click()
    time.sleep(0.5)
    _assert_nothing_ran(browser)
    assert browser.current_url == f"{site.url}/{EVIL_REPO}"
    browser.get(f"{site.url}/{MINILM_REPO_ID}")  # the hostile device name in the plots and table stays text
    assert "<script>" in browser.find_element(By.ID, "benchmarks").text
    _assert_nothing_ran(browser)


def _assert_nothing_ran(driver) -> None:
    """No alert is open and no hostile script set `window.__pwned`."""
    with pytest.raises(NoAlertPresentException):
        driver.switch_to.alert.text  # noqa: B018
    assert driver.execute_script("return window.__pwned") is None


def test_following_a_snippet_url_downloads_the_file(site, browser, tmp_path):  # noqa: F811
    browser.get(site.url + "/models?source=file")
    browser.find_element(By.CSS_SELECTOR, "#results a.model").click()
    link = WebDriverWait(browser, 20).until(
        expected_conditions.presence_of_element_located((By.CSS_SELECTOR, '[data-kind="torch.hub"] a.snippet-url')))
    assert link.get_attribute("href").startswith(site.url)
    link.click()
    target = tmp_path / "downloads" / "pnet.pt"
    deadline = time.monotonic() + 30
    while not target.exists() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert _sha256(target) == _sha256(facenet_files()["pnet.pt"])


def test_login_with_token(web_mirror, browser):  # noqa: F811
    token = "browser-login-secret"
    with MirrorServer(web_mirror, token=token) as server:
        browser.get(f"{server.url}/models?search=minilm")
        _wait_for_url(browser, "/login")
        field = browser.find_element(By.NAME, "token")
        field.send_keys("not-the-token")
        field.submit()
        assert "not this mirror's" in browser.find_element(By.ID, "login-error").text
        field = browser.find_element(By.NAME, "token")
        field.send_keys(token)
        field.submit()
        _wait_for_url(browser, "/models?search=minilm")
        assert [a.text for a in browser.find_elements(By.CSS_SELECTOR, "#results a.model")] == [MINILM_REPO_ID]
        cookie = next(c for c in browser.get_cookies() if c["name"] == "hubmirror_session")
        assert cookie["httpOnly"] and cookie["sameSite"] == "Strict" and token not in cookie["value"]
        assert browser.execute_script("return document.cookie") == ""  # HttpOnly: not readable by scripts
        browser.find_element(By.LINK_TEXT, MINILM_REPO_ID).click()
        _wait_for_url(browser, f"/{MINILM_REPO_ID}")
        assert token not in browser.page_source
        browser.find_element(By.CSS_SELECTOR, "form[action='/logout'] button").click()
        _wait_for_url(browser, "/login")
        browser.get(f"{server.url}/")
        _wait_for_url(browser, "/login?next=")


def test_two_people_each_see_their_own_models(web_mirror, browser, tmp_path):  # noqa: F811
    """Logged in with personal tokens (`hubmirror token`), alice and bob each see only the models their globs allow,
    on the home page, in search and on model pages (another's model page is not found)."""
    root = tmp_path / "mirror"
    shutil.copytree(web_mirror, root)
    catalog = Catalog(root / "catalog.db")
    tokens = {}
    for who, repos in (("alice", ("sentence-transformers/*",)), ("bob", (f"{EVIL_REPO.split('/')[0]}/*",))):
        tokens[who], record = issue(who, "read", repos, (), None)
        catalog.put_token(record)
    catalog.close()
    mine = {"alice": MINILM_REPO_ID, "bob": EVIL_REPO}
    with MirrorServer(root) as server:
        for who, other in (("alice", "bob"), ("bob", "alice")):
            browser.get(f"{server.url}/")
            _wait_for_url(browser, "/login")
            field = browser.find_element(By.NAME, "token")
            field.send_keys(tokens[who])
            field.submit()
            _wait_for_url(browser, f"{server.url}/")
            assert browser.find_element(By.ID, "signed-in-as").text == who
            assert browser.find_element(By.ID, "cached-count").text == "1"
            browser.get(f"{server.url}/models")
            assert [a.text for a in browser.find_elements(By.CSS_SELECTOR, "#results a.model")] == [mine[who]]
            browser.get(f"{server.url}/{mine[other]}")
            assert "No such page or model" in browser.page_source and mine[other] not in browser.page_source
            browser.find_element(By.CSS_SELECTOR, "form[action='/logout'] button").click()
            _wait_for_url(browser, "/login")


def test_pages_fit_the_window_and_say_each_thing_once(site, browser):  # noqa: F811
    """At 1300 and 1000 px no page scrolls sideways (long snippet lines and URLs wrap); a model page shows its task,
    library and licence as chips and not again among its tags."""
    driver = browser
    for width in (1300, 1000):
        driver.set_window_size(width, 1000)
        for page in ("/", f"/{MINILM_REPO_ID}", f"/{MINILM_REPO_ID}/tree/main", "/models?search=minilm",
                     f"/{EVIL_REPO}"):
            driver.get(site.url + page)
            wide, inner = driver.execute_script("return [document.documentElement.scrollWidth, window.innerWidth]")
            assert wide <= inner, (width, page, wide)
    driver.get(f"{site.url}/{MINILM_REPO_ID}")
    chips = [t.text for t in driver.find_elements(By.CSS_SELECTOR, "a.tag")]
    tags = [t.text for t in driver.find_elements(By.CSS_SELECTOR, "span.tag")]
    assert chips == ["sentence-similarity", "sentence-transformers", "license: apache-2.0"] and tags
    assert len(tags) == len(set(tags)) and not {"sentence-similarity", "sentence-transformers",
                                                "license:apache-2.0"} & set(tags)
