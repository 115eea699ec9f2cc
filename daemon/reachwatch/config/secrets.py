"""Secrets as types, and reading them from files or environment variables.

Secrets are never accepted inline in the YAML: a config file gets copied, pasted into bug reports and
backed up, a key file with mode 0600 does not. A file readable by group or others is refused, because on
a shared box that is a leak already.

Whether a field names a secret is declared by its type, never guessed from its name: ``SecretFile`` (a
path to a file only its owner may read: keys, passwords, proxy URLs, ``.ovpn`` files with inline keys),
``SecretEnv`` (the name of an environment variable holding a secret) and ``PublicFile`` (a path to a file
that need only be readable: CA bundles, the web config, relay lists). ``file_fields`` walks a loaded
config and yields every such field that is set; the loader's checks (``config.load.check_files``), the
log redactor (``logging``) and the reference documentation (``scripts/gen_config_docs.py``) all read it.
"""

from __future__ import annotations

import os
import stat
import typing
from collections.abc import Iterator
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel
from pydantic.fields import FieldInfo

from reachwatch.errors import ConfigError


class FileKind(StrEnum):
    """What a path or variable-name field holds."""

    SECRET_FILE = "secret_file"  # noqa: S105 - a kind of field, not a password
    SECRET_ENV = "secret_env"  # noqa: S105
    PUBLIC_FILE = "public_file"


@dataclass(frozen=True)
class FileMarker:
    """The marker ``SecretFile``/``SecretEnv``/``PublicFile`` carry in their ``Annotated`` metadata."""

    kind: FileKind


SecretFile = Annotated[str, FileMarker(FileKind.SECRET_FILE)]
"""A path (relative to the config file) to a secret file: mode 0600 or 0400, checked at load."""
SecretEnv = Annotated[str, FileMarker(FileKind.SECRET_ENV)]
"""The name of an environment variable holding a secret; it must be set when the config is loaded."""
PublicFile = Annotated[str, FileMarker(FileKind.PUBLIC_FILE)]
"""A path (relative to the config file) to a file that is not secret; it must be readable."""


def field_kind(info: FieldInfo) -> FileKind | None:
    """The ``FileKind`` a model field is declared with (``SecretFile | None`` included), else ``None``."""
    for item in info.metadata:
        if isinstance(item, FileMarker):
            return item.kind
    stack: list[Any] = [info.annotation]
    while stack:
        tp = stack.pop()
        if typing.get_origin(tp) is Annotated:
            for item in tp.__metadata__:
                if isinstance(item, FileMarker):
                    return item.kind
        stack.extend(typing.get_args(tp))
    return None


@dataclass(frozen=True)
class FileField:
    """One set path or variable-name field of a config: where (``targets[2] (name 'x').password_file``),
    what kind, and its value as written."""

    path: str
    kind: FileKind
    value: str


def file_fields(model: BaseModel, where: str = "") -> Iterator[FileField]:
    """Every set ``SecretFile``/``SecretEnv``/``PublicFile`` field of ``model`` and the models inside it,
    in declaration order; list items are named by index and, when they have one, by ``name``."""
    for name, info in type(model).model_fields.items():
        value = getattr(model, name)
        path = f"{where}.{name}" if where else name
        kind = field_kind(info)
        if kind is not None and isinstance(value, str):
            yield FileField(path, kind, value)
        elif isinstance(value, BaseModel):
            yield from file_fields(value, path)
        elif isinstance(value, list | tuple):
            for i, item in enumerate(value):
                if isinstance(item, BaseModel):
                    item_name = getattr(item, "name", None)
                    label = f" (name {item_name!r})" if isinstance(item_name, str) else ""
                    yield from file_fields(item, f"{path}[{i}]{label}")


def resolve_path(path: str, base_dir: Path) -> Path:
    """Relative paths in a config are relative to the config file, not to the working directory."""
    p = Path(path).expanduser()
    return p if p.is_absolute() else base_dir / p


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


def check_text(value: bytes | str, field: str, what: str) -> str:
    """``value`` as UTF-8 text, or a ``ConfigError`` naming ``what`` (never the value: it is a secret).

    A ``str`` from ``os.environ`` holds undecodable bytes as surrogates, which fail at ``encode`` later.
    """
    try:
        return value.decode("utf-8") if isinstance(value, bytes) else value.encode("utf-8").decode("utf-8")
    except UnicodeError:
        raise ConfigError(field, f"{what} is not UTF-8 text") from None


def read_secret(file: str | None, env: str | None, base_dir: Path, field: str) -> str | None:
    """A text secret from ``*_file`` or ``*_env`` (file wins); ``None`` when neither is set."""
    if file:
        data = read_secret_file(file, base_dir, field)
        return check_text(data, field, f"secret file {resolve_path(file, base_dir)}").strip()
    if env:
        value = os.environ.get(env)
        if value is None:
            raise ConfigError(field, f"environment variable {env} is not set")
        return check_text(value, field, f"environment variable {env}")
    return None
