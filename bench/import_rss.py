"""What each library the daemon imports adds to its RSS, in the order the daemon needs them.

    .venv/bin/python bench/import_rss.py                   # the default steps (below)
    .venv/bin/python bench/import_rss.py asyncio aiohttp   # any modules, in that order

Imports each module in turn in this one interpreter and prints VmRSS after it and the step. A step's
figure is what that module adds on top of the ones before (shared dependencies count once, for the first
module that needs them), so the order matters: the default order puts the config layer first, as the
daemon loads it. Issue 9's goal of 55 MB for the daemon on the default config is read against this
(bench/README.md).
"""

from __future__ import annotations

import importlib
import re
import sys
from pathlib import Path

STEPS = [
    "asyncio",
    "ssl",
    "yaml",
    "structlog",
    "pydantic",
    "reachwatch.config.schema",
    "reachwatch.config.load",
    "prometheus_client",
    "sqlite3",
    "h11",
    "dns.asyncresolver",
    "cryptography.x509",
    "bcrypt",
    "stem.control",
    "aiohttp",
    "aiohttp.web",
    "reachwatch.net.tls",
    "reachwatch.scheduler",
    "reachwatch.web",
    "reachwatch.app",
]


def rss_mb() -> float:
    match = re.search(r"^VmRSS:\s+(\d+) kB", Path("/proc/self/status").read_text(), re.MULTILINE)
    return int(match.group(1)) / 1024 if match else 0.0


def main() -> int:
    steps = sys.argv[1:] or STEPS
    before = rss_mb()
    print(f"{'module':<32}{'RSS MB':>8}{'step':>8}{'modules':>9}")
    print(f"{'(interpreter)':<32}{before:>8.1f}{'':>8}{len(sys.modules):>9}")
    for name in steps:
        importlib.import_module(name)
        now = rss_mb()
        print(f"{name:<32}{now:>8.1f}{now - before:>+8.1f}{len(sys.modules):>9}")
        before = now
    return 0


if __name__ == "__main__":
    sys.exit(main())
