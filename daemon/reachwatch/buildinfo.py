"""Which reachwatch is running: the version and the source revision it was built from.

A fleet of Pis updated by hand drifts; ``reachwatch_build_info{version, revision}`` and ``--version`` say
which code each vantage runs. The revision comes from, in order: ``data/revision.txt`` that the build
(``setup.py``) writes into every wheel, ``git`` when the package runs from a checkout (development,
editable installs), else ``unknown``. Read once: a build does not change while it runs.

``git_revision`` is also what the build hook (``setup.py``) writes into the wheel, so a checkout and the
wheel built from it name the same revision. It must stay importable with the standard library alone:
the build runs before any dependency is installed.
"""

from __future__ import annotations

import functools
import re
import subprocess
from pathlib import Path

from reachwatch import __version__

PACKAGE_DIR = Path(__file__).resolve().parent
REVISION_FILE = PACKAGE_DIR / "data" / "revision.txt"
UNKNOWN = "unknown"
# a git object name (abbreviated or full), optionally "-dirty": anything else is not shown as a label
_REVISION = re.compile(r"^[0-9a-f]{7,40}(-dirty)?$")


@functools.cache
def revision() -> str:
    """The source revision (a git commit id, ``-dirty`` when built from a modified tree) or ``unknown``."""
    try:
        text = REVISION_FILE.read_text(encoding="ascii").strip()
    except (OSError, UnicodeDecodeError):
        text = git_revision(PACKAGE_DIR)
    return text if _REVISION.match(text) else UNKNOWN


def git_revision(where: Path, timeout: float = 5.0) -> str:
    """``git describe``-like commit id of the checkout holding ``where``; empty when there is none."""
    try:
        head = subprocess.run(
            ["git", "-C", str(where), "rev-parse", "--short=12", "HEAD"],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(where), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""
    return f"{head}-dirty" if dirty else head


def version_line() -> str:
    """``reachwatch 0.1.0 (revision 0123abcd4567)`` for ``--version``."""
    return f"reachwatch {__version__} (revision {revision()})"
