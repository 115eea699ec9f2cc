"""The revision a build records and a checkout reports come from one reader (``buildinfo.git_revision``),
and the build hook (``setup.py``) can use it before any dependency is installed."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from reachwatch.buildinfo import git_revision

REPO = Path(__file__).resolve().parents[2]


def test_the_build_hook_reads_the_revision_with_the_standard_library_alone() -> None:
    # -S -I: no site-packages, no environment: what an isolated build has before our dependencies
    code = "import sys; sys.path.insert(0, sys.argv[1]); from reachwatch.buildinfo import git_revision; " \
           "print(git_revision(__import__('pathlib').Path(sys.argv[2])))"  # fmt: skip
    out = subprocess.run(
        [sys.executable, "-S", "-I", "-c", code, str(REPO / "daemon"), str(REPO)],
        capture_output=True, text=True, check=True, timeout=30,
    ).stdout.strip()  # fmt: skip
    assert out == git_revision(REPO)
    head = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short=12", "HEAD"],
                          capture_output=True, text=True, check=True).stdout.strip()  # fmt: skip
    assert out.removesuffix("-dirty") == head


def test_outside_a_checkout_the_revision_is_empty(tmp_path: Path) -> None:
    assert git_revision(tmp_path) == ""
