"""Loading a config file into a validated ``Config``, with one-line errors that name file and field.

Errors read like ``config.yaml: targets[2] (name 'obfs4-a').port: must be <= 65535`` so an operator who
is not a Python programmer can fix the file. The caller (CLI or reload) decides what to do: exit 2, or
keep running on the last good config.
"""

from __future__ import annotations

import hashlib
import os
import stat
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import structlog
import yaml
from pydantic import ValidationError

from reachwatch.config.schema import Config
from reachwatch.errors import ConfigError

log = structlog.get_logger(__name__)

EMBEDDED = "<embedded default>"


@dataclass(frozen=True)
class LoadedConfig:
    """A validated config and where it came from (relative paths resolve against ``base_dir``)."""

    config: Config
    source: str
    base_dir: Path
    digest: str


def embedded_default_text() -> str:
    """The default config shipped inside the package."""
    return resources.files("reachwatch").joinpath("data/default.yaml").read_text(encoding="utf-8")


def load_config(path: str | Path | None) -> LoadedConfig:
    """Read and validate a config file; ``None`` loads the embedded default."""
    if path is None:
        return parse_config(embedded_default_text(), EMBEDDED, Path.cwd())
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
        mode = p.stat().st_mode
    except OSError as exc:
        raise ConfigError(str(p), f"cannot read config: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise ConfigError(str(p), "config is not UTF-8 text") from None
    if mode & stat.S_IROTH:
        log.warning(
            "config_world_readable",
            path=str(p),
            hint=f"chmod o-r {p}: the config names the endpoints you test",
        )
    return parse_config(text, str(p), p.resolve().parent)


def parse_config(text: str, source: str, base_dir: Path) -> LoadedConfig:
    """Validate YAML text; raises ``ConfigError`` with one line."""
    try:
        data = yaml.safe_load(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        where = f"{source}:{mark.line + 1}:{mark.column + 1}" if mark else source
        raise ConfigError(where, f"invalid YAML: {exc.problem}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(source, f"invalid YAML: {exc}") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(source, f"top level must be a mapping, got {type(data).__name__}")
    try:
        config = Config.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(source, format_validation_error(exc, data)) from None
    digest = hashlib.sha256(text.encode()).hexdigest()
    return LoadedConfig(config=config, source=source, base_dir=base_dir, digest=digest)


def _path(loc: tuple[int | str, ...], data: Any) -> str:
    """``('targets', 2, 'tcp', 'port')`` -> ``targets[2] (name 'x').port``; drops pydantic's union tags."""
    out = ""
    node: Any = data
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
            node = node[part] if isinstance(node, list) and part < len(node) else None
            if isinstance(node, dict) and isinstance(node.get("name"), str):
                out += f" (name {node['name']!r})"
            continue
        if isinstance(node, dict) and part in node:
            out += f".{part}" if out else part
            node = node[part]
        elif isinstance(node, dict) and "kind" in node and part == node.get("kind"):
            continue  # the discriminator tag pydantic inserts for unions
        else:
            out += f".{part}" if out else str(part)
            node = None
    return out or "(top level)"


def format_validation_error(exc: ValidationError, data: Any) -> str:
    """The first error, in words an operator can act on; the count of others if any."""
    errors = exc.errors(include_url=False)
    first = errors[0]
    where = _path(tuple(first["loc"]), data)
    kind = first["type"]
    if kind == "extra_forbidden":
        msg = "unknown key"
    elif kind == "missing":
        msg = "required field is missing"
    elif kind == "union_tag_invalid":
        msg = f"unknown kind {first['ctx']['tag']!r}; known kinds: {first['ctx']['expected_tags']}"
    elif kind == "union_tag_not_found":
        msg = "missing 'kind'"
    else:
        msg = first["msg"]
        if msg.startswith("Value error, "):
            msg = msg[len("Value error, ") :]
    more = f" (and {len(errors) - 1} more errors)" if len(errors) > 1 else ""
    return f"{where}: {msg}{more}"


def config_mtime(path: str | Path) -> float:
    """Modification time, for ``reachwatch_config_last_reload_success_timestamp_seconds``."""
    return os.stat(path).st_mtime
