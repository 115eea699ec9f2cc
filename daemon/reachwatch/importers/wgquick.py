"""wg-quick configs (``[Interface]``/``[Peer]``) -> ``wireguard`` entries, one per peer with an Endpoint.

The private key sits inline in ``[Interface]`` and the ``wireguard`` probe reads a file holding only the
key, so this importer needs an output directory: it writes ``PrivateKey`` (and any ``PresharedKey``) to
0600 files there. Use a DEDICATED probe peer's config, never a person's: the server keeps one endpoint
per key, so probing with someone's key would steal their tunnel.

Entries are ``private: true``: the endpoint is the user's own, and publishing it (metrics, API, journal)
would hand it to the censor.
"""

from __future__ import annotations

import base64
import binascii
from pathlib import Path
from typing import Any

from reachwatch.config.types import split_host_port
from reachwatch.errors import ConfigError
from reachwatch.importers.common import Output, entry_name


def _key(value: str, where: str, field: str) -> str:
    try:
        raw = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise ConfigError(where, f"{field} is not base64") from None
    if len(raw) != 32:
        raise ConfigError(where, f"{field} must decode to 32 bytes")
    return value


def _endpoint(value: str, where: str) -> tuple[str, int]:
    try:
        return split_host_port(value)
    except ValueError:
        raise ConfigError(where, f"Endpoint {value!r} is not host:port") from None


def import_wgquick(path: Path, text: str, out: Output) -> list[dict[str, Any]]:
    """One ``wireguard`` entry per ``[Peer]`` with an Endpoint; keys go to 0600 files in the output dir."""
    source = str(path)
    section: str | None = None
    private: tuple[str, str] | None = None  # key, where
    peers: list[dict[str, str]] = []
    for number, raw in enumerate(text.splitlines(), 1):
        where = f"{source}:{number}"
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        if line.startswith("[") and line.endswith("]"):
            section = line[1:-1].strip().lower()
            if section == "peer":
                peers.append({"line": str(number)})
            elif section != "interface":
                raise ConfigError(where, f"unknown section [{line[1:-1]}]")
            continue
        key, sep, value = line.partition("=")
        if not sep or section is None:
            raise ConfigError(where, "expected 'Key = Value' inside [Interface] or [Peer]")
        key, value = key.strip().lower(), value.strip()
        if section == "interface" and key == "privatekey":
            private = (_key(value, where, "PrivateKey"), where)
        elif section == "peer" and key in ("publickey", "presharedkey", "endpoint"):
            peers[-1][key] = value
            peers[-1][key + "_where"] = where
    if private is None:
        raise ConfigError(source, "no PrivateKey in [Interface]: not a wg-quick client config")
    usable = [p for p in peers if "endpoint" in p]
    if not usable:
        raise ConfigError(source, "no [Peer] with an Endpoint: nothing to probe")
    if out.output_dir is None:
        raise ConfigError(
            source, "the private key is inline; import with an output directory to write it to a 0600 file"
        )
    checked: list[tuple[str, int, str, str | None]] = []  # validate everything before writing a file
    for peer in usable:
        if "publickey" not in peer:
            raise ConfigError(f"{source}:{peer['line']}", "[Peer] has no PublicKey")
        public = _key(peer["publickey"], peer["publickey_where"], "PublicKey")
        host, port = _endpoint(peer["endpoint"], peer["endpoint_where"])
        psk = peer.get("presharedkey")
        if psk is not None:
            _key(psk, peer["presharedkey_where"], "PresharedKey")
        checked.append((host, port, public, psk))
    stem = entry_name(path.stem)
    key_file = str(out.write_secret(f"{stem}.wg-private.key", (private[0] + "\n").encode()))
    entries: list[dict[str, Any]] = []
    for number, (host, port, public, psk) in enumerate(checked, 1):
        name = out.unique_name(entry_name(stem if len(checked) == 1 else f"{stem}-peer{number}"))
        entry: dict[str, Any] = {
            "name": name,
            "kind": "wireguard",
            "private": True,  # the user's own endpoint: never published
            "host": host,
            "port": port,
            "public_key": public,
            "private_key_file": key_file,
        }
        if psk is not None:
            entry["preshared_key_file"] = str(out.write_secret(f"{name}.wg-psk.key", (psk + "\n").encode()))
        entries.append(entry)
    return entries
