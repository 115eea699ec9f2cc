"""wg-quick configs (``[Interface]``/``[Peer]``) -> ``wireguard`` entries, one per peer with an Endpoint.

The private key sits inline in ``[Interface]`` and the ``wireguard`` probe reads a file holding only the
key, so this importer needs an output directory: it writes ``PrivateKey`` (and any ``PresharedKey``) to
0600 files there. Use a DEDICATED probe peer's config, never a person's: the server keeps one endpoint
per key, so probing with someone's key would steal their tunnel.

Entries are ``private: true``: the endpoint is the user's own, and publishing it (metrics, API, journal)
would hand it to the censor.

The data stage: ``Address`` (its first IPv4) becomes ``tunnel_address``, and the first private IPv4 of
``DNS`` (a VPN's resolver inside the tunnel, usually its gateway) becomes ``ping_address``, the address the
probe's echoes go to. Without both the entry probes the handshake only; set ``ping_address`` by hand then.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
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


def _first_ipv4(value: str, *, private_only: bool) -> str | None:
    """The first IPv4 address of a comma-separated wg-quick list (``10.0.0.2/32, fd00::2/128``)."""
    for item in value.split(","):
        try:
            address = ipaddress.ip_address(item.strip().split("/", 1)[0])
        except ValueError:
            continue  # a DNS search domain, or junk: nothing to take from it
        if address.version == 4 and (address.is_private or not private_only):
            return str(address)
    return None


def import_wgquick(path: Path, text: str, out: Output) -> list[dict[str, Any]]:
    """One ``wireguard`` entry per ``[Peer]`` with an Endpoint; keys go to 0600 files in the output dir."""
    source = str(path)
    section: str | None = None
    private: tuple[str, str] | None = None  # key, where
    inside: dict[str, str] = {}  # tunnel_address / ping_address, from Address / DNS
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
        elif section == "interface" and key in ("address", "dns"):
            found = _first_ipv4(value, private_only=key == "dns")
            if found is not None:
                inside.setdefault("tunnel_address" if key == "address" else "ping_address", found)
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
        if len(inside) == 2:
            entry.update(inside)
        if psk is not None:
            entry["preshared_key_file"] = str(out.write_secret(f"{name}.wg-psk.key", (psk + "\n").encode()))
        entries.append(entry)
    return entries
