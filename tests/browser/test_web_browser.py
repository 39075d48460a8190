"""The web UI in a real headless Chromium (Debian's /usr/bin/chromium driven by Playwright).

Proves what a test client cannot: that the browser runs no script from a
hostile message and sends no request to a remote host it names, under the
sanitiser, the sandboxed iframe and the CSP together (and under the CSP alone).
Screenshots of the main pages go to test-output/screenshots/.
"""

from __future__ import annotations

import http.server
import shutil
import threading
from pathlib import Path
from typing import ClassVar

import pytest
from argon2 import PasswordHasher

from archiver import index
from archiver.archive import Archive
from tests.browser.webdata import add_messages, hostile_message, message, web_config

pytestmark = pytest.mark.browser
CHROMIUM = "/usr/bin/chromium"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run"]  # fmt: skip
SHOTS = Path(__file__).resolve().parents[2] / "test-output" / "screenshots"
playwright_api = pytest.importorskip("playwright.sync_api")
if not Path(CHROMIUM).exists():
    pytest.skip("Debian chromium is not installed", allow_module_level=True)


class _Recorder(http.server.BaseHTTPRequestHandler):
    requests: ClassVar[list[str]] = []

    def _record(self) -> None:
        _Recorder.requests.append(f"{self.command} {self.path}")
        self.send_response(200)
        self.send_header("Content-Type", "image/png")
        self.end_headers()

    do_GET = do_POST = _record

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def recorder():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Recorder)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()


@pytest.fixture(scope="module")
def site(tmp_path_factory, recorder):
    import waitress

    from web import create_app

    root = tmp_path_factory.mktemp("web")
    users = f'[[web.users]]\nname = "root"\npassword_hash = "{PasswordHasher().hash("root-pass")}"\nadmin = true\n'
    config = web_config(root, users)
    remote = f"127.0.0.1:{recorder.server_address[1]}"
    with Archive(config.archive) as archive:
        add_messages(archive, "alpha", "INBOX", [message(f"Quarterly report {i}", f"numbers walrus{i}", n=i)
                                                 for i in range(60)])  # fmt: skip
        add_messages(archive, "alpha", "Hostile", [hostile_message(remote)])
        add_messages(archive, "beta", "Archive/2023", [message("Old invoice", "invoice pelican", n=99)])
        index.update_index(archive)
    app = create_app(config)
    server = waitress.create_server(app, host="127.0.0.1", port=0, threads=4)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.effective_port}", app
    server.close()
    app.extensions["archiver_archive"].close()


@pytest.fixture(scope="module")
def browser():
    with playwright_api.sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=CHROMIUM, args=FLAGS, headless=True)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser, site):
    base, _ = site
    context = browser.new_context(viewport={"width": 1100, "height": 800})
    tab = context.new_page()
    tab.goto(base + "/")
    tab.fill("#username", "root")
    tab.fill("#password", "root-pass")
    tab.click("button[type=submit]")
    tab.wait_for_url(base + "/")
    yield tab
    context.close()


def shot(tab, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    tab.screenshot(path=str(SHOTS / f"{name}.png"))


def test_login_browse_read_search(page, site):
    base, _ = site
    shot(page, "accounts")
    assert page.locator("table").inner_text().count("alpha") >= 1
    page.click("text=alpha")
    shot(page, "folders")
    page.click("a:text-is('INBOX')")
    assert page.locator("table.messages tbody tr").count() == 50
    page.click("text=Older →")
    assert page.locator("table.messages tbody tr").count() == 10
    page.click("text=Newest")
    shot(page, "folder")
    page.click("text=Quarterly report 59")
    assert "walrus59" in page.locator("pre.text").inner_text()
    shot(page, "message")
    page.goto(base + "/search")
    page.fill("#q", "pelican")
    page.press("#q", "Enter")
    page.wait_for_selector("ol.hits li")
    assert page.locator("mark").first.inner_text().lower() == "pelican"
    shot(page, "search")
    page.click("text=Old invoice")
    assert "invoice pelican" in page.locator("pre.text").inner_text()


def test_keyboard_reaches_the_main_links(page):
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.textContent") == "Skip to content"


def test_hostile_html_runs_no_script_and_loads_nothing_remote(page, site, recorder):
    base, app = site
    _Recorder.requests.clear()
    dialogs: list[str] = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    catalog = app.extensions["archiver_archive"].catalog
    folder = next(f for f in catalog.web_folders(catalog.account_id("alpha")) if f["name"] == "Hostile")
    pid = catalog.web_folder_page(folder["id"], before=None, limit=1)[0]["id"]
    page.goto(f"{base}/m/{pid}")
    frame_element = page.wait_for_selector("iframe.body")
    frame = frame_element.content_frame()
    frame.wait_for_selector("h1:text('Hostile message')")
    page.wait_for_timeout(1500)
    shot(page, "hostile")
    assert page.evaluate("window.pwned") is None
    assert frame_element.get_attribute("sandbox") == ""
    # The cid: image came from the archive and decoded.
    width = frame.eval_on_selector("img[alt='inline logo']", "img => img.naturalWidth")
    assert width == 1
    frame.click("text=click me", timeout=2000)
    page.wait_for_timeout(500)
    # The body route opened top-level: only the CSP (and the sanitiser) stand between it and the browser.
    page.goto(f"{base}/m/{pid}/html")
    page.wait_for_timeout(1000)
    assert page.evaluate("window.pwned") is None
    assert dialogs == []
    assert _Recorder.requests == []


def test_remote_images_load_only_when_asked(page, site):
    base, app = site
    _Recorder.requests.clear()
    catalog = app.extensions["archiver_archive"].catalog
    folder = next(f for f in catalog.web_folders(catalog.account_id("alpha")) if f["name"] == "Hostile")
    pid = catalog.web_folder_page(folder["id"], before=None, limit=1)[0]["id"]
    page.goto(f"{base}/m/{pid}?remote=1")
    page.wait_for_selector("iframe.body")
    page.wait_for_timeout(1500)
    assert "GET /img-remote" in _Recorder.requests
    images = {"GET /img-remote", "GET /inline-style", "GET /css-bg"}  # the toggle relaxes img-src only
    assert set(_Recorder.requests) <= images


def test_copy_small_screenshots_for_readme():
    """Keep three screenshots for the README (small, under 150 KB each)."""
    target = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
    target.mkdir(parents=True, exist_ok=True)
    for name in ("accounts", "message", "search"):
        source = SHOTS / f"{name}.png"
        if source.exists() and source.stat().st_size < 150_000:
            shutil.copyfile(source, target / f"{name}.png")
