"""The configuration a one-off ``reachwatch check THING`` runs under: the THINGs, judged by real controls.

A single failed attempt means nothing until the controls say the vantage is online, so the THINGs
(``importers.oneoff``) run beside the controls of ``--config``, or of the embedded default config when
there is none. From that config only what judges and paces is kept (vantage, defaults, scheduler,
confirmation, controls, reference vantages, tor binaries); its own targets, relay sets and directory
authorities are left out, and nothing is journaled. Secrets the THINGs carry (an ``ss://`` password, a
``.ovpn``'s keys) go to private files in ``secrets_dir``, which the caller removes afterwards.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from reachwatch.config.load import (
    LoadedConfig,
    check_files,
    embedded_default_text,
    parse_config,
    with_secrets_read,
)
from reachwatch.errors import ConfigError
from reachwatch.importers import parse_canary
from reachwatch.importers.common import Output
from reachwatch.importers.oneoff import PlainKind, entries_for

# the sections of the base config a one-off check keeps
KEPT = ("vantage", "defaults", "scheduler", "confirmation", "controls", "reference_vantages", "log")


def _base(config_path: Path | None) -> tuple[dict[str, Any], str, Path]:
    if config_path is None:
        return yaml.safe_load(embedded_default_text()), "the embedded default config", Path.cwd()
    try:
        text = config_path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(str(config_path), f"cannot read: {getattr(exc, 'strerror', None) or exc}") from None
    # a broken file gets the loader's own one-line message
    loaded = parse_config(text, str(config_path), config_path.parent)
    del loaded
    data = yaml.safe_load(text) or {}
    return data, str(config_path), config_path.resolve().parent


def one_off_config(
    things: Sequence[str],
    *,
    config_path: Path | None,
    kind: PlainKind,
    canary: str | None,
    secrets_dir: Path,
) -> LoadedConfig:
    """A validated config, files checked: the base config's controls and settings, the THINGs as targets."""
    base, source, base_dir = _base(config_path)
    host, port = parse_canary(canary)
    out = Output(output_dir=secrets_dir, canary_host=host, canary_port=port)
    entries = entries_for(things, out, kind=kind)
    out.commit()
    doc: dict[str, Any] = {key: base[key] for key in KEPT if key in base}
    tor = {
        k: v for k, v in (base.get("tor") or {}).items() if k not in ("relay_sets", "directory_authorities")
    }
    doc["tor"] = tor
    doc["journal"] = {"enabled": False}
    doc["targets"] = entries
    loaded = parse_config(yaml.safe_dump(doc, sort_keys=False), f"{source} + command line", base_dir)
    check_files(loaded)  # the files it names (the base config's, the THINGs' private copies) are usable
    return with_secrets_read(loaded)  # bridge lines from the private copies
