"""What every importer shares: entry names, where secrets go, and the canary every data-carrying target needs.

Keys and passwords never enter the generated YAML. Without an output directory an entry references the
user's original file (and line), which must then be private (mode 0600), the same rule the daemon
applies to every secret file; with ``output_dir`` the importer writes each secret to its own 0600 file
there and references that.
"""

from __future__ import annotations

import os
import re
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from reachwatch.errors import ConfigError

_NAME_BAD = re.compile(r"[^A-Za-z0-9_.:-]+")


def entry_name(raw: str) -> str:
    """A target name (``NAME_PATTERN``) derived from a tag or a file name and position.

    Never from the endpoint's address: names reach metric labels, the API and the journal even for
    ``private: true`` targets, so a host in the name would publish what ``private`` hides.
    """
    name = _NAME_BAD.sub("-", raw.strip()).strip("-._:")
    if not name or not name[0].isalnum():
        name = "imported-" + name
    return name[:56]


@dataclass
class Output:
    """Per-run state: names already used, the optional secret output directory, the canary."""

    output_dir: Path | None = None
    canary_host: str | None = None
    canary_port: int | None = None
    used: set[str] = field(default_factory=set)

    def unique_name(self, base: str) -> str:
        """``base``, or ``base-2``, ``base-3``... when an earlier entry of this run took it."""
        name = base
        n = 2
        while name in self.used:
            name = f"{base[:52]}-{n}"
            n += 1
        self.used.add(name)
        return name

    def write_secret(self, filename: str, data: bytes) -> Path:
        """Write one secret into the output directory with mode 0600; returns its absolute path."""
        assert self.output_dir is not None
        self.output_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        path = (self.output_dir / filename).resolve()
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.chmod(path, 0o600)  # O_CREAT's mode does not apply to an existing file
        return path

    @staticmethod
    def require_private(path: Path) -> None:
        """A referenced file holding a secret must be private, or the daemon would refuse it later."""
        mode = path.stat().st_mode
        if mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise ConfigError(
                str(path),
                f"holds a secret and is readable by group or others (mode {stat.S_IMODE(mode):o}); "
                "chmod 600 it, or import with an output directory",
            )

    def canary(self) -> dict[str, Any] | None:
        if self.canary_host is None or self.canary_port is None:
            return None
        return {"host": self.canary_host, "port": self.canary_port}
