"""Port lists as config values (``[22, 443, "8000-8010"]`` or ``"22,443,8000-8010"``) and the one spelling
of a surveyed port (``179/tcp``, ``3785/udp``, ``icmp``) that facts, metrics and reports share.

Used by the ``port_survey`` target (what to survey) and by ``reachwatch canary`` (what to listen on).
Bounded: every port of a survey becomes a metric series and every canary port a socket.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BeforeValidator

Proto = Literal["tcp", "udp", "icmp"]
PROTOS: tuple[Proto, ...] = ("tcp", "udp", "icmp")
MAX_PORTS = 256
ICMP_LABEL = "icmp"

# Ports that stayed open through past shutdowns, and the ports circumvention tools and common services
# use. Kazakhstan, January 2022: an obfs4 bridge on 179/tcp (BGP) kept working, Lantern moved to 3785 and
# 5060 (net4people/bbs #99, #102); DNS, NTP and the web ports are what a national network keeps for
# itself; 500/4500 (IKE), 1194 (OpenVPN), 3478 (STUN/TURN), 51820 (WireGuard) are the tunnels' own.
SURVIVOR_PORTS: tuple[int, ...] = (
    22,
    53,
    80,
    123,
    179,
    443,
    500,
    993,
    1194,
    3478,
    3785,
    4500,
    5060,
    8080,
    8443,
    51820,
)


def _items(value: Any) -> list[Any]:
    if isinstance(value, str):
        return [part for part in (p.strip() for p in value.split(",")) if part]
    if isinstance(value, list | tuple):
        return list(value)
    raise ValueError('expected a list of ports such as [22, 443, "8000-8010"]')


def _port(text: Any) -> int:
    if isinstance(text, bool) or not isinstance(text, int | str):
        raise ValueError(f"{text!r} is not a port")
    if isinstance(text, str) and not text.strip().isdigit():
        raise ValueError(f"{text!r} is not a port or a range such as 8000-8010")
    port = int(text)
    if not 1 <= port <= 65535:
        raise ValueError(f"port {port} is out of range (1-65535)")
    return port


def parse_ports(value: Any) -> tuple[int, ...]:
    """Ports and ``low-high`` ranges -> sorted unique ports; ``ValueError`` with a one-line reason."""
    ports: set[int] = set()
    for item in _items(value):
        if isinstance(item, str) and "-" in item:
            low_text, _, high_text = item.partition("-")
            low, high = _port(low_text.strip()), _port(high_text.strip())
            if high < low:
                raise ValueError(f"range {item!r} goes backwards")
            if high - low >= MAX_PORTS:
                raise ValueError(f"range {item!r} has more than {MAX_PORTS} ports")
            ports.update(range(low, high + 1))
        else:
            ports.add(_port(item))
        if len(ports) > MAX_PORTS:
            raise ValueError(f"more than {MAX_PORTS} ports")
    return tuple(sorted(ports))


PortList = Annotated[tuple[int, ...], BeforeValidator(parse_ports)]
"""A port list in YAML: ``[22, 443, "8000-8010"]`` or ``"22,443,8000-8010"`` (at most 256 ports)."""


def port_label(proto: Proto, port: int = 0) -> str:
    """``179/tcp``, ``3785/udp``; ``icmp`` for the echo (no port)."""
    return ICMP_LABEL if proto == "icmp" else f"{port}/{proto}"


def parse_port_label(label: str) -> tuple[Proto, int]:
    """The inverse of ``port_label``: ``(proto, port)``, port 0 for ``icmp``; ``ValueError`` otherwise."""
    if label == ICMP_LABEL:
        return "icmp", 0
    port_text, sep, proto = label.partition("/")
    if not sep or proto not in ("tcp", "udp") or not port_text.isdigit():
        raise ValueError(f"not a port label: {label[:32]!r}")
    port = int(port_text)
    if not 1 <= port <= 65535:
        raise ValueError(f"not a port label: {label[:32]!r}")
    return ("tcp" if proto == "tcp" else "udp"), port
