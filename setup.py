"""Build hook: every wheel records the git revision it was built from (reachwatch/data/revision.txt).

Everything else about the build is declared in pyproject.toml. ``REACHWATCH_REVISION`` overrides the
revision where the tree has no ``.git`` (a Docker build context, a source tarball).
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent


def _revision() -> str:
    env = os.environ.get("REACHWATCH_REVISION", "").strip()
    if env:
        return env
    try:
        head = subprocess.run(
            ["git", "-C", str(ROOT), "rev-parse", "--short=12", "HEAD"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(ROOT), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""
    return f"{head}-dirty" if dirty else head


class BuildPyWithRevision(build_py):
    """The usual build_py, then the revision file beside the package data."""

    def run(self) -> None:
        super().run()
        revision = _revision()
        if revision:
            target = Path(self.build_lib) / "reachwatch" / "data" / "revision.txt"
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(revision + "\n", encoding="ascii")


setup(cmdclass={"build_py": BuildPyWithRevision})
