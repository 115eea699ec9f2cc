"""What every importer shares: entry names, where secrets go, and the canary every data-carrying target needs.

Keys and passwords never enter the generated YAML. Without an output directory an entry references the
user's original file (and line), which must then be private (mode 0600), the same rule the daemon
applies to every secret file; with ``output_dir`` the importer writes each secret to its own 0600 file
there and references that.

Secret files are written only once every input file has been read (``Output.commit``): a later file
that fails leaves no secrets of the earlier ones behind. Each is written to a fresh temporary file and
renamed into place, so a symlink planted at the name is replaced, never followed (it would overwrite
and chmod whatever it points at).
"""

from __future__ import annotations

import contextlib
import os
import re
import stat
import tempfile
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
    seen: set[str] = field(default_factory=set)  # bridge lines already imported in this run (duplicates)
    pending: dict[str, bytes] = field(default_factory=dict)  # file name -> secret, written by commit()

    def unique_name(self, base: str) -> str:
        """``base``, or ``base-2``, ``base-3``... when an earlier entry of this run took it."""
        name = base
        n = 2
        while name in self.used:
            name = f"{base[:52]}-{n}"
            n += 1
        self.used.add(name)
        return name

    def check_output_dir(self) -> None:
        """Create the output directory now, so a wrong ``--output-dir`` fails before any work."""
        if self.output_dir is None:
            return
        if self.output_dir.exists() and not self.output_dir.is_dir():
            raise ConfigError("--output-dir", f"{self.output_dir} is not a directory")
        try:
            self.output_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
            probe = tempfile.NamedTemporaryFile(dir=self.output_dir, prefix=".reachwatch-")  # noqa: SIM115
            probe.close()
        except OSError as exc:
            raise self._dir_error(exc) from None

    def _dir_error(self, exc: OSError) -> ConfigError:
        reason = exc.strerror or type(exc).__name__
        return ConfigError("--output-dir", f"cannot write secrets to {self.output_dir}: {reason}")

    def write_secret(self, filename: str, data: bytes) -> Path:
        """Where one secret WILL be (0600, in the output directory); written by ``commit``."""
        assert self.output_dir is not None
        if "/" in filename or filename in ("", ".", ".."):
            raise ValueError(f"not a plain file name: {filename!r}")
        self.pending[filename] = data
        return self.output_dir.absolute() / filename

    def commit(self) -> None:
        """Write the staged secrets; on a failure remove the ones this run wrote."""
        written: list[Path] = []
        try:
            for filename, data in self.pending.items():
                assert self.output_dir is not None
                target = self.output_dir / filename
                _write_private(target, data)
                written.append(target)
        except OSError as exc:
            for path in written:
                with contextlib.suppress(OSError):
                    path.unlink()
            raise self._dir_error(exc) from None
        self.pending.clear()

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


def _write_private(target: Path, data: bytes) -> None:
    """Write ``data`` to a new 0600 file beside ``target`` and rename it over ``target``: a symlink at
    ``target`` is replaced, not followed."""
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".reachwatch-")  # mkstemp: 0600, O_EXCL
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
