"""The suite runs from any environment that has reachwatch installed (a venv, tox, a distro build)."""

from __future__ import annotations

import re
from pathlib import Path

TESTS = Path(__file__).resolve().parent

# a path into the repository's own virtualenv, e.g. REPO / ".venv" / "bin" / "reachwatch"
_VENV_PATH = re.compile(r"""["']\.venv["']""")


def test_no_test_finds_reachwatch_through_the_repositorys_venv() -> None:
    """Subprocesses use ``sys.executable`` (``-m reachwatch``): a hard-coded ``<repo>/.venv/bin`` made
    the observability, VPN and proxy tests error instead of testing when run from another environment."""
    offenders = [
        f"{path.relative_to(TESTS)}:{number}"
        for path in sorted(TESTS.rglob("*.py"))
        if path != Path(__file__).resolve()
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if _VENV_PATH.search(line)
    ]
    assert offenders == []
