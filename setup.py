"""Build hook: every wheel records the git revision it was built from (reachwatch/data/revision.txt).

Everything else about the build is declared in pyproject.toml. ``REACHWATCH_REVISION`` overrides the
revision where the tree has no ``.git`` (a Docker build context, a source tarball).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT / "daemon"))  # the package's own reader of a checkout's revision (stdlib only)
from reachwatch.buildinfo import git_revision  # noqa: E402


def _revision() -> str:
    return os.environ.get("REACHWATCH_REVISION", "").strip() or git_revision(ROOT, timeout=10)


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
