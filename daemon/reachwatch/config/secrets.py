"""Reading secrets (keys, passwords, bridge lines) from files or environment variables.

Secrets are never accepted inline in the YAML: a config file gets copied, pasted into bug reports and
backed up, a key file with mode 0600 does not. A file readable by group or others is refused, because on
a shared box that is a leak already.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from reachwatch.errors import ConfigError


def resolve_path(path: str, base_dir: Path) -> Path:
    """Relative paths in a config are relative to the config file, not to the working directory."""
    p = Path(path).expanduser()
    return p if p.is_absolute() else base_dir / p


# *_file fields that name public material (certificates, CA bundles), not secrets
PUBLIC_FILE_FIELDS = frozenset({"ca_file", "cert_file", "client_ca_file", "config_file"})

# keys, passwords, URL and bridge lists are a few KB; a bigger "secret" is a wrong path (a disk image)
MAX_SECRET_BYTES = 1024 * 1024


def check_private_file(path: Path, field: str) -> None:
    """Refuse a secret file that group or others may read, or that is not a regular file (a FIFO would
    block the reader forever)."""
    try:
        mode = path.stat().st_mode
    except OSError as exc:
        raise ConfigError(field, f"cannot read secret file {path}: {exc.strerror or exc}") from None
    if not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):  # a directory fails at read, with its own message
        raise ConfigError(field, f"secret file {path} is not a regular file")
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        perms = f"{stat.S_IMODE(mode):o}"
        raise ConfigError(
            field, f"secret file {path} is readable by group or others (mode {perms}); chmod 600 it"
        )


def read_secret_file(path: str, base_dir: Path, field: str, *, binary: bool = False) -> bytes:
    """The bytes of a secret file, after the permission check."""
    full = resolve_path(path, base_dir)
    check_private_file(full, field)
    try:
        with full.open("rb") as fh:
            data = fh.read(MAX_SECRET_BYTES + 1)
    except OSError as exc:
        raise ConfigError(field, f"cannot read secret file {full}: {exc.strerror or exc}") from None
    if len(data) > MAX_SECRET_BYTES:
        raise ConfigError(field, f"secret file {full} is larger than {MAX_SECRET_BYTES // 1024} KiB")
    return data


def read_secret(file: str | None, env: str | None, base_dir: Path, field: str) -> str | None:
    """A text secret from ``*_file`` or ``*_env`` (file wins); ``None`` when neither is set."""
    if file:
        return read_secret_file(file, base_dir, field).decode("utf-8").strip()
    if env:
        value = os.environ.get(env)
        if value is None:
            raise ConfigError(field, f"environment variable {env} is not set")
        return value
    return None
