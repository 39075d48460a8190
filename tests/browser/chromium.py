"""Where the browser tests find Chromium: Debian's /usr/bin/chromium, driven by Playwright (no `playwright install`)."""

from __future__ import annotations

from pathlib import Path

import pytest

CHROMIUM = "/usr/bin/chromium"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run"]  # fmt: skip


def require_chromium() -> None:
    """Skip the calling test module where Playwright or Debian's chromium is missing."""
    pytest.importorskip("playwright.sync_api")
    if not Path(CHROMIUM).exists():
        pytest.skip("Debian chromium is not installed", allow_module_level=True)
