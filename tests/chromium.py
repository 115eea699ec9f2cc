"""Headless Chromium (Debian ``chromium``) as the page and report tests run it: one set of flags.

No sandbox (the suite runs as root), no GPU, and nothing that reaches out on its own (first-run pages,
component updates, sync, background networking): the tests may only send traffic to loopback.
"""

from __future__ import annotations

import shutil

FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
]


def binary() -> str:
    """The chromium executable; a clear failure when the Debian package is missing."""
    found = shutil.which("chromium")
    assert found, "chromium (Debian package) is required: tests/debian-packages.txt"
    return found
