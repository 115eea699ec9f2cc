"""Shadowsocks ``ss://`` URIs, one per line, to ``shadowsocks`` target entries.

The URI forms and their parsing are ``config.ssuri`` (the probe reads the same files at run time). URIs with
a ``plugin`` (simple-obfs, v2ray-plugin) are rejected with a clear message: the probe cannot speak the
plugin's transport, and probing the bare port would test something the user does not use.

Imported entries are ``private: true``: the servers are the user's own, and publishing them (metrics,
API, journal) would hand them to the censor.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from reachwatch.config.ssuri import parse_ss_uri
from reachwatch.config.targets.shadowsocks import CIPHERS_2022, SUPPORTED
from reachwatch.errors import ConfigError
from reachwatch.formats.ss2022 import decode_psk
from reachwatch.importers.common import Output, entry_name


def import_ss_uri(path: Path, line_no: int, text: str, out: Output) -> dict[str, Any]:
    """One ``shadowsocks`` target entry from the URI on ``line_no`` of ``path``."""
    where = f"{path}:{line_no}"
    try:
        uri = parse_ss_uri(text)
    except ValueError as exc:
        raise ConfigError(where, str(exc)) from None
    if uri.plugin:
        plugin_name = uri.plugin.split(";", 1)[0]
        raise ConfigError(where, f"ss:// plugin {plugin_name!r} is not supported (only plain AEAD servers)")
    if uri.method not in SUPPORTED:
        raise ConfigError(where, f"cipher {uri.method!r} is not supported; supported: {', '.join(SUPPORTED)}")
    if uri.method in CIPHERS_2022:
        try:
            decode_psk(uri.method, uri.password)
        except ValueError as exc:
            raise ConfigError(where, str(exc)) from None
    canary = out.canary()
    if canary is None:
        raise ConfigError(where, "a shadowsocks entry needs a canary (an echo service abroad): give one")
    name = out.unique_name(entry_name(uri.tag or f"ss-{path.stem}-{line_no}"))
    entry: dict[str, Any] = {
        "name": name,
        "kind": "shadowsocks",
        "private": True,  # the user's own server: never published
        "host": uri.host,
        "port": uri.port,
        "method": uri.method,
    }
    if out.output_dir is not None:
        entry["password_file"] = str(out.write_secret(f"{name}.password", uri.password.encode()))
    else:
        out.require_private(path)
        entry["uri_file"] = str(path.resolve())
        entry["uri_line"] = line_no
    entry["canary"] = canary
    return entry
