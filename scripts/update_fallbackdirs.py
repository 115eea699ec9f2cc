"""Regenerate ``daemon/reachwatch/config/fallbackdirs.py`` from the fallback list compiled into tor.

tor compiles ``src/app/config/fallback_dirs.inc`` into its binary as strings of the form
``IP orport=PORT id=FINGERPRINT [ipv6=[ADDR]:PORT]``; this reads them from the installed binary (the
Debian ``tor`` package) so the table matches the tor that runs next to reachwatch, and
``tests/tor/test_fallbackdirs.py`` fails when the two drift apart (a tor upgrade: run this again).

    .venv/bin/python scripts/update_fallbackdirs.py [/usr/sbin/tor]
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

OUT = Path(__file__).resolve().parents[1] / "daemon" / "reachwatch" / "config" / "fallbackdirs.py"
LINE = re.compile(
    rb"(\d{1,3}(?:\.\d{1,3}){3}) orport=(\d{1,5}) id=([0-9A-F]{40})(?: ipv6=(\[[0-9a-f:]+\]:\d{1,5}))?"
)


def compiled_fallbacks(binary: str) -> list[tuple[str, int, str, str | None]]:
    """(address, ORPort, fingerprint, ipv6 ORPort) of every fallback compiled into ``binary``."""
    found = {}
    for match in LINE.finditer(Path(binary).read_bytes()):
        ipv6 = match[4].decode() if match[4] else None
        found[match[3].decode()] = (match[1].decode(), int(match[2]), match[3].decode(), ipv6)
    return sorted(found.values(), key=lambda f: f[2])


def main() -> int:
    binary = sys.argv[1] if len(sys.argv) > 1 else (shutil.which("tor") or "/usr/sbin/tor")
    version = subprocess.run([binary, "--version"], capture_output=True, text=True, check=True).stdout
    tor_version = version.split("Tor version ")[1].split()[0].rstrip(".")
    rows = "\n".join(f"    {fallback!r}," for fallback in compiled_fallbacks(binary))
    template = OUT.read_text().split("# -- generated below")[0]
    template = re.sub(r'TOR_VERSION = "[^"]*"', f'TOR_VERSION = "{tor_version}"', template)
    OUT.write_text(
        f"{template}# -- generated below by scripts/update_fallbackdirs.py: do not edit by hand\n"
        f"FALLBACKS: tuple[tuple[str, int, str, str | None], ...] = (\n{rows}\n)  # fmt: skip\n"
    )
    print(f"{OUT}: {rows.count(chr(10)) + 1} fallbacks from tor {tor_version}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
