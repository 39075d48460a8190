"""The web UI in a real headless Chromium (Debian's /usr/bin/chromium driven by Playwright).

Proves what a test client cannot: that the browser runs no script from a
hostile message and sends no request to a remote host it names, under the
sanitiser, the sandboxed iframe and the CSP together (and under the CSP alone).
Also restores a folder through the pages into an account of the real Dovecot
fixture and checks on the server that every message arrived byte-exact.
Screenshots of the main pages go to test-output/screenshots/.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path

import pytest

from archiver.times import utc_now
from tests.fixtures.browser import CHROMIUM

pytestmark = pytest.mark.browser
SHOTS = Path(__file__).resolve().parents[2] / "test-output" / "screenshots"
pytest.importorskip("playwright.sync_api")
if not Path(CHROMIUM).exists():
    pytest.skip("Debian chromium is not installed", allow_module_level=True)


def use_zone(tab, base: str, zone: str) -> None:
    """Pick the time zone on the preferences page (the server cannot learn the browser's: no script)."""
    tab.goto(base + "/prefs")
    tab.select_option("#tz", zone)
    tab.click("text=Save")
    assert f"Times: {zone}" in tab.locator("header").inner_text()


def shot(tab, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    tab.screenshot(path=str(SHOTS / f"{name}.png"))


def test_login_browse_read_search(page, site):
    base, _ = site
    use_zone(page, base, "UTC")
    page.goto(base + "/")
    shot(page, "accounts")
    assert page.locator("table").inner_text().count("alpha") >= 1
    page.click("text=alpha")
    shot(page, "folders")
    page.click("a:text-is('INBOX')")
    assert page.locator("table.messages tbody tr").count() == 50
    page.click("text=Older →")
    assert page.locator("table.messages tbody tr").count() == 10
    page.click("a:text-is('Newest')")
    assert page.locator("table.messages tbody td").nth(1).inner_text() == "2024-01-01 01:00 UTC"  # en-GB: ISO style
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
    outline = page.evaluate("getComputedStyle(document.activeElement).outlineStyle")
    assert outline != "none"  # the focused element is visibly marked
    page.keyboard.press("Enter")
    assert page.evaluate("location.hash") == "#main"
    page.keyboard.press("Tab")  # from the skip target, the next stop is inside the page content
    assert page.evaluate("document.activeElement.closest('main') !== null")


def test_restore_a_folder_into_dovecot_through_the_pages(page, site, dovecot, mailbox):
    base, app = site
    page.goto(base + "/a/alpha")
    page.click("a:text-is('INBOX')")
    page.click("text=Restore this folder")
    assert page.locator("tfoot").inner_text().split()[-3] == "60"  # Total, 60 messages
    page.select_option("#target", "mailbox")
    prefix = page.input_value("#prefix")
    assert prefix == f"Restored/{utc_now().date().isoformat()}"
    shot(page, "restore")
    page.click("text=Start restore")
    page.wait_for_selector("text=Done:", timeout=60_000)  # the job page refreshes itself until then
    shot(page, "restore-result")
    result = page.locator("table.result tbody tr").first.inner_text()
    assert "INBOX" in result and f"{prefix}/INBOX" in result and "60" in result
    # On the server: exactly the archived bytes, each message once.
    catalog = app.extensions["archiver_archive"].catalog
    store = app.extensions["archiver_archive"].store
    archived = sorted(
        hashlib.sha256(store.get(row.blob_id)).hexdigest()
        for row in catalog.placements_as_of(catalog.account_id("alpha"), "INBOX")
    )
    on_server = sorted(
        hashlib.sha256(raw).hexdigest()
        for raw, _flags, _when in dovecot.fetch_all(mailbox.name, mailbox.password, f"{prefix}/INBOX").values()
    )
    assert len(archived) == 60 and on_server == archived
    # The same restore again appends nothing: the engine finds every message already there.
    page.goto(base + "/restore?account=alpha&folder=INBOX")
    page.select_option("#target", "mailbox")
    page.click("text=Start restore")
    page.wait_for_selector("text=Done:", timeout=60_000)
    assert "0 messages restored" in page.locator("p[role=status]").inner_text()
    assert "60 already there" in page.locator("p[role=status]").inner_text()


def test_restore_a_selection_in_place(page, site, dovecot, mailbox):
    base, app = site
    page.goto(base + "/a/alpha")
    page.click("a:text-is('INBOX')")
    page.check("input[name=pid] >> nth=0")
    page.check("input[name=pid] >> nth=2")
    page.click("text=Restore selected")
    assert "2 selected messages" in page.locator("h1").inner_text()
    page.select_option("#target", "mailbox")
    page.check("input[value=in_place]")
    page.click("text=Start restore")
    page.wait_for_selector("text=Done:", timeout=60_000)
    assert "2 messages restored" in page.locator("p[role=status]").inner_text()
    store = app.extensions["archiver_archive"].store
    catalog = app.extensions["archiver_archive"].catalog
    folder = next(f for f in catalog.web_folders(catalog.account_id("alpha")) if f["name"] == "INBOX")
    rows = catalog.web_folder_page(folder["id"], before=None, limit=3)
    expected = sorted(hashlib.sha256(store.get(rows[i]["blob_id"])).hexdigest() for i in (0, 2))
    inbox = dovecot.fetch_all(mailbox.name, mailbox.password, "INBOX").values()
    assert sorted(hashlib.sha256(raw).hexdigest() for raw, _flags, _when in inbox) == expected


def test_back_up_now_shows_the_run(page, site):
    base, _ = site
    page.goto(base + "/")
    page.locator("tr", has_text="mailbox").locator("text=Back up now").click()
    page.wait_for_selector("text=Backup ok", timeout=60_000)
    shot(page, "backup-result")
    assert "Restored" in page.locator("table").inner_text()  # the folder the restore test made, backed up now
    page.click("text=All runs")
    assert page.locator("text=Backup of mailbox").count() == 1


def test_readable_at_200_percent_zoom(browser, site):
    """200 % zoom is a viewport half as wide in CSS pixels: nothing may need sideways scrolling."""
    base, app = site
    context = browser.new_context(viewport={"width": 640, "height": 800}, device_scale_factor=2)
    tab = context.new_page()
    tab.goto(base + "/login")
    tab.fill("#username", "root")
    tab.fill("#password", "root-pass")
    tab.click("button[type=submit]")
    use_zone(tab, base, "America/New_York")
    catalog = app.extensions["archiver_archive"].catalog
    folder = next(f for f in catalog.web_folders(catalog.account_id("alpha")) if f["name"] == "INBOX")
    pid = catalog.web_folder_page(folder["id"], before=None, limit=1)[0]["id"]
    paths = {"accounts": "/", "folder": f"/f/{folder['id']}", "message": f"/m/{pid}", "search": "/search?q=walrus1",
             "restore": "/restore?account=alpha&folder=INBOX", "runs": "/runs"}  # fmt: skip
    for name, path in paths.items():
        tab.goto(base + path)
        overflow = tab.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth")
        assert overflow <= 0, (name, overflow)
        if name in ("folder", "restore"):
            shot(tab, f"zoom200-{name}")
        if name == "folder":  # this context's language is US English: US date style
            assert tab.locator("table.messages tbody td").nth(1).inner_text() == "Dec 31, 2023, 8:00 PM EST"
    context.close()


def test_hostile_html_runs_no_script_and_loads_nothing_remote(page, site, recorder):
    base, app = site
    recorder.requests.clear()
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
    assert recorder.requests == []


def test_remote_images_load_only_when_asked(page, site, recorder):
    base, app = site
    recorder.requests.clear()
    catalog = app.extensions["archiver_archive"].catalog
    folder = next(f for f in catalog.web_folders(catalog.account_id("alpha")) if f["name"] == "Hostile")
    pid = catalog.web_folder_page(folder["id"], before=None, limit=1)[0]["id"]
    page.goto(f"{base}/m/{pid}?remote=1")
    page.wait_for_selector("iframe.body")
    page.wait_for_timeout(1500)
    assert "GET /img-remote" in recorder.requests
    images = {"GET /img-remote", "GET /inline-style", "GET /css-bg"}  # the toggle relaxes img-src only
    assert set(recorder.requests) <= images


def test_screenshots_of_the_main_pages_were_taken():
    """The tests above leave a screenshot of each main page in test-output/screenshots/ (CI artefacts).

    ``ARCHIVER_UPDATE_SCREENSHOTS=1`` also copies them to docs/screenshots/ for docs/web.md; a plain
    test run never writes into the source tree.
    """
    names = ("accounts", "folder", "message", "search", "restore", "restore-result")
    if not any((SHOTS / f"{name}.png").exists() for name in names):
        pytest.skip("run the whole browser module: the page tests take the screenshots")
    for name in names:
        shot = SHOTS / f"{name}.png"
        assert shot.exists(), name
        assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and 1_000 < shot.stat().st_size < 200_000, name
    if os.environ.get("ARCHIVER_UPDATE_SCREENSHOTS") == "1":
        target = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
        target.mkdir(parents=True, exist_ok=True)
        for name in names:
            shutil.copyfile(SHOTS / f"{name}.png", target / f"{name}.png")
