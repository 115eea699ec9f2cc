"""RiseupVPN / LEAP ``eip-service.json`` -> ``openvpn`` target entries (one per gateway, protocol and port).

Two shapes exist. Version 3 lists transports as objects::

    "capabilities": {"transport": [{"type": "openvpn", "protocols": ["tcp", "udp"], "ports": ["443"]},
                                   {"type": "obfs4", ...}]}

older versions put ``"protocols"``/``"ports"`` directly in ``capabilities`` with ``"transport":
["openvpn"]``. Only the ``openvpn`` transport is imported (obfs4 gateways are bridges, a different probe).
Entries use the gateway's ``ip_address`` (pinned: the DNS name may be what is blocked) and carry its
``host`` and ``location`` as labels. No keys: Riseup gateways do not use tls-auth. The gateway list is
public, so its entries stay public.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from reachwatch.errors import ConfigError
from reachwatch.importers.common import Output, entry_name


def looks_like_riseup(text: str) -> bool:
    """Whether ``text`` is a JSON document with a ``gateways`` list (RiseupVPN's eip-service.json)."""
    return text.lstrip().startswith("{") and '"gateways"' in text


def _list(container: dict[str, Any], key: str, where: str) -> list[Any]:
    """``container[key]`` as a list (absent: empty); anything else is a one-line error naming the key."""
    value = container.get(key, [])
    if not isinstance(value, list):
        raise ConfigError(where, f"{key!r} must be a list, not {type(value).__name__}")
    return value


def _openvpn_transports(caps: dict[str, Any], where: str) -> list[tuple[list[Any], list[Any]]]:
    found: list[tuple[list[Any], list[Any]]] = []
    for transport in _list(caps, "transport", f"{where}.capabilities"):
        if isinstance(transport, dict) and transport.get("type") == "openvpn":
            inner = f"{where}.capabilities.transport"
            found.append((_list(transport, "protocols", inner), _list(transport, "ports", inner)))
        elif transport == "openvpn":
            inner = f"{where}.capabilities"
            found.append((_list(caps, "protocols", inner), _list(caps, "ports", inner)))
    return found


def import_riseup(path: Path, text: str, out: Output) -> list[dict[str, Any]]:
    """One ``openvpn`` entry per gateway, protocol and port that RiseupVPN publishes for OpenVPN."""
    source = str(path)
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{source}:{exc.lineno}", f"invalid JSON: {exc.msg}") from None
    gateways = data.get("gateways") if isinstance(data, dict) else None
    if not isinstance(gateways, list):
        raise ConfigError(source, "no 'gateways' list: not an eip-service.json")
    entries: list[dict[str, Any]] = []
    for index, gw in enumerate(gateways):
        where = f"{source}: gateways[{index}]"
        if not isinstance(gw, dict) or not isinstance(gw.get("ip_address"), str):
            raise ConfigError(where, "gateway without ip_address")
        caps = gw.get("capabilities")
        if not isinstance(caps, dict):
            raise ConfigError(where, "gateway without capabilities")
        label_host = str(gw.get("host", ""))
        for protocols, ports in _openvpn_transports(caps, where):
            for proto in protocols:
                if proto not in ("udp", "tcp"):
                    raise ConfigError(where, f"unknown protocol {_short(proto)}")
                for port in ports:
                    if isinstance(port, bool) or not str(port).isdigit() or not 1 <= int(port) <= 65535:
                        raise ConfigError(where, f"invalid port {_short(port)}")
                    base = f"riseup-{label_host.split('.', maxsplit=1)[0] or gw['ip_address']}-{proto}{port}"
                    entry: dict[str, Any] = {
                        "name": out.unique_name(entry_name(base)),
                        "kind": "openvpn",
                        "group": "riseup",
                        "host": gw["ip_address"],
                        "port": int(port),
                        "proto": proto,
                    }
                    labels = {"location": str(gw.get("location", "")), "gateway": label_host}
                    entry["labels"] = {k: v for k, v in labels.items() if v}
                    entries.append(entry)
    if not entries:
        raise ConfigError(source, "no gateway offers the openvpn transport")
    return entries


def _short(value: Any) -> str:
    """A value for an error line: quoted, one line, at most 40 characters."""
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."
