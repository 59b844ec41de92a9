"""Debian's chromium for Playwright tests — never `playwright install` (it downloads a browser)."""

from __future__ import annotations

from pathlib import Path

CHROMIUM = Path("/usr/bin/chromium")
#: no background network: this machine's closed network refuses those connections.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
SKIP_REASON = f"Debian chromium not found at {CHROMIUM} (apt-get install chromium)"


def launch(playwright):
    """A headless Debian chromium browser from a ``sync_playwright()`` handle."""
    return playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
