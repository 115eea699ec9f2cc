"""Loading a config: ONE ``load_full_config`` for the daemon (start, reload) and every CLI command.

It runs every step, in order: YAML -> ``Config`` (``load_config``/``parse_config``); the targets the
``tor:`` section generates (directory authorities, fallback directories: ``with_tor_targets``); the
relay sets read from files and the GeoIP files (``with_relay_sets``: their members are not configured
targets but generated ones the daemon hands the scheduler at run time, ``relaywatch``); the files and
environment variables the config names (``check_files``: secret files private, public files readable);
and the exporter-toolkit web config (the ``--web.config.file`` override or the config's
``web.config_file``). So ``validate``, ``run --check``, ``check``, the daemon's start and its reload accept
and refuse exactly the same files.

Errors read like ``config.yaml: targets[2] (name 'obfs4-a').port: must be <= 65535`` so an operator who
is not a Python programmer can fix the file. The caller (CLI or reload) decides what to do: exit 2, or
keep running on the last good config.
"""

from __future__ import annotations

import hashlib
import os
import stat
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from importlib import resources
from pathlib import Path

import structlog
import yaml
from pydantic import ValidationError

from reachwatch.config import yamlsafe
from reachwatch.config.dirauths import directory_authority_targets
from reachwatch.config.fallbackdirs import fallback_targets
from reachwatch.config.geoip import GeoIP, load_geoip
from reachwatch.config.messages import format_validation_error
from reachwatch.config.relaysets import relay_set_targets
from reachwatch.config.schema import Config, TorConfig
from reachwatch.config.secrets import FileKind, check_text, file_fields, read_secret_file, resolve_path
from reachwatch.config.targets.tor_relay import TorRelayTarget
from reachwatch.config.types import TargetBase
from reachwatch.config.webconfig import WebSecurity, load_web_security
from reachwatch.errors import ConfigError

log = structlog.get_logger(__name__)

EMBEDDED = "<embedded default>"


@dataclass(frozen=True)
class LoadedConfig:
    """A validated config and where it came from (relative paths resolve against ``base_dir``); ``web``
    is the web config's TLS and basic auth once ``load_full_config`` has read it (plain HTTP before)."""

    config: Config
    source: str
    base_dir: Path
    digest: str
    web: WebSecurity = field(default_factory=WebSecurity)
    # the GeoIP tables of tor.geoip (None: no files configured) and the members of file-sourced relay
    # sets as read at load (``with_relay_sets``): the daemon's first refresh starts from them
    geoip: GeoIP | None = None
    relay_members: Mapping[str, list[TorRelayTarget]] = field(default_factory=dict)


def load_full_config(path: str | Path | None, *, web_config_file: str | None = None) -> LoadedConfig:
    """The config with everything it implies, checked; ``None`` loads the embedded default.

    ``web_config_file`` (``--web.config.file``) overrides the config's ``web.config_file``; it is relative
    to the working directory, the config's own is relative to the config file. Raises ``ConfigError``.
    """
    loaded = with_tor_targets(load_config(path))
    check_files(loaded)
    loaded = with_secrets_read(loaded)
    loaded = with_relay_sets(loaded)
    web_file = web_config_file
    if web_file is None and loaded.config.web.config_file:
        web_file = str(resolve_path(loaded.config.web.config_file, loaded.base_dir))
    return replace(loaded, web=load_web_security(web_file))


def embedded_default_text() -> str:
    """The default config shipped inside the package."""
    return resources.files("reachwatch").joinpath("data/default.yaml").read_text(encoding="utf-8")


def load_config(path: str | Path | None) -> LoadedConfig:
    """Read and validate a config file; ``None`` loads the embedded default."""
    if path is None:
        return parse_config(embedded_default_text(), EMBEDDED, Path.cwd())
    p = Path(path)
    try:
        # bounded: a FIFO, a silent stdin or /dev/zero cannot hang or exhaust the process (yamlsafe)
        text = yamlsafe.read_text(p)
        mode = p.stat().st_mode
    except OSError as exc:
        raise ConfigError(str(p), f"cannot read config: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise ConfigError(str(p), "config is not UTF-8 text") from None
    except yamlsafe.YamlLimitError as exc:
        raise ConfigError(str(p), f"cannot read config: {exc}") from None
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
        data = yamlsafe.load(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        where = f"{source}:{mark.line + 1}:{mark.column + 1}" if mark else source
        raise ConfigError(where, f"invalid YAML: {exc.problem}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(source, f"invalid YAML: {' '.join(str(exc).split())}") from None
    except yamlsafe.YamlLimitError as exc:
        raise ConfigError(source, f"invalid YAML: {exc}") from None
    if data is None:
        # an empty (or truncated, or comments-only) file configures nothing: measuring nothing is a mistake
        raise ConfigError(source, "config is empty (start from config/example.yaml)")
    if not isinstance(data, dict):
        raise ConfigError(source, f"top level must be a mapping, got {type(data).__name__}")
    try:
        config = Config.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(source, format_validation_error(exc, data)) from None
    digest = hashlib.sha256(text.encode()).hexdigest()
    return LoadedConfig(config=config, source=source, base_dir=base_dir, digest=digest)


def config_mtime(path: str | Path) -> float:
    """Modification time, for ``reachwatch_config_last_reload_success_timestamp_seconds``."""
    return os.stat(path).st_mtime


def tor_targets(tor: TorConfig) -> list[TargetBase]:
    """The targets the ``tor:`` section adds: directory authorities and fallback directories (if enabled)."""
    targets: list[TargetBase] = []
    if tor.directory_authorities:
        targets.extend(directory_authority_targets())
    if tor.fallback_directories:
        targets.extend(fallback_targets(tor.fallback_interval))
    return targets


def with_tor_targets(loaded: LoadedConfig) -> LoadedConfig:
    """``loaded`` with the ``tor:`` section's targets appended to ``targets`` (what the scheduler runs).

    Raises ``ConfigError`` when a generated name collides with a configured one.
    """
    extra = tor_targets(loaded.config.tor)
    if not extra:
        return loaded
    names = {t.name for t in loaded.config.all_targets()}
    for target in extra:
        if target.name in names:
            raise ConfigError(loaded.source, f"tor: target name {target.name!r} is already configured")
        names.add(target.name)
    config = loaded.config.model_copy(update={"targets": [*loaded.config.targets, *extra]})
    return replace(loaded, config=config)


def with_secrets_read(loaded: LoadedConfig) -> LoadedConfig:
    """``loaded`` with what targets keep in secret files read in (``TargetBase.with_secrets``: bridge lines
    from ``bridge_file``), checked like inline values. Raises ``ConfigError``."""
    inline = [t.name for t in loaded.config.targets if t.private and getattr(t, "bridge", None)]
    if inline:
        log.warning(
            "private_bridges_inline",
            count=len(inline),
            first=inline[0],
            hint="move private bridge lines to bridge_file (mode 0600): a config gets copied and pasted",
        )
    changed = False
    targets = []
    for index, target in enumerate(loaded.config.targets):
        where = f"{loaded.source}: targets[{index}] (name {target.name!r})"
        read = target.with_secrets(loaded.base_dir, where)
        changed |= read is not target
        targets.append(read)
    if not changed:
        return loaded
    config = loaded.config.model_copy(update={"targets": targets})
    try:
        config.check_bridge_transports()
    except ValueError as exc:
        raise ConfigError(loaded.source, str(exc)) from None
    return replace(loaded, config=config)


def with_relay_sets(loaded: LoadedConfig) -> LoadedConfig:
    """``loaded`` with its GeoIP tables read and its file-sourced relay sets expanded (``relay_members``).

    Reading them here makes a bad file a one-line ``ConfigError`` at ``validate``, start and reload, like
    any config error. A member named like a configured target is refused the same way. Live sets have no
    members until the daemon's directory tor has a consensus.
    """
    tor = loaded.config.tor
    geo: GeoIP | None = None
    if tor.geoip.country_file or tor.geoip.asn_file:
        geo = load_geoip(
            resolve_path(tor.geoip.country_file, loaded.base_dir) if tor.geoip.country_file else None,
            resolve_path(tor.geoip.asn_file, loaded.base_dir) if tor.geoip.asn_file else None,
        )
    names = {t.name for t in loaded.config.all_targets()}
    members: dict[str, list[TorRelayTarget]] = {}
    for spec in tor.relay_sets:
        if spec.source is None:
            continue
        members[spec.name] = relay_set_targets(spec, loaded.base_dir, geo)
        for target in members[spec.name]:
            if target.name in names:
                raise ConfigError(loaded.source, f"tor: target name {target.name!r} is already configured")
    return replace(loaded, geoip=geo, relay_members=members)


def check_files(loaded: LoadedConfig) -> None:
    """Every secret file the config names must be private, every public file readable, every secret
    environment variable set (the fields are typed ``SecretFile``/``PublicFile``/``SecretEnv``).

    Probes read their secrets at probe time; checking here turns a bad secret into a one-line error at
    start, ``validate`` or reload instead of a failing probe hours later.
    """
    for item in file_fields(loaded.config):
        where = f"{loaded.source}: {item.path}"
        if item.kind is FileKind.SECRET_ENV:
            if item.value not in os.environ:
                raise ConfigError(where, f"environment variable {item.value} is not set")
            check_text(os.environ[item.value], where, f"environment variable {item.value}")
        elif item.kind is FileKind.SECRET_FILE:
            data = read_secret_file(item.value, loaded.base_dir, where)
            # every secret is text (keys in PEM or base64, passwords, lines): bytes that are not UTF-8
            # failed later, at every attempt, as internal_error
            check_text(data, where, f"secret file {resolve_path(item.value, loaded.base_dir)}")
        else:
            full = resolve_path(item.value, loaded.base_dir)
            if not os.access(full, os.R_OK):
                raise ConfigError(where, f"cannot read file {full}")
