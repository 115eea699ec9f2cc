"""Parsing torrc ``Bridge`` lines exactly as users paste them (Tor Browser, bridges.torproject.org, torrc).

Accepted shapes (an optional leading ``Bridge`` keyword is dropped)::

    IP:PORT [FINGERPRINT]                                   vanilla
    obfs4 IP:PORT FINGERPRINT cert=... iat-mode=0
    snowflake IP:PORT FINGERPRINT fingerprint=... url=... fronts=... ice=...
    meek_lite IP:PORT FINGERPRINT url=... front=...
    webtunnel [IPv6]:PORT FINGERPRINT url=... ver=...
    <transport> IP:PORT [FINGERPRINT] [k=v ...]             any other pluggable transport

Nothing here touches the network. Errors are one line (``BridgeLineError``) so ``reachwatch validate``
can print them next to the target's name. A bridge is identified in every output by its target name or
``hashed_fingerprint`` — never by its address, fingerprint or ``cert=``, which ``sensitive_values`` lists
for redaction.
"""

from __future__ import annotations

import hashlib
import ipaddress
import re
from dataclasses import dataclass, field

from reachwatch.errors import ConfigError

_FINGERPRINT = re.compile(r"^\$?([0-9A-Fa-f]{40})$")
_TRANSPORT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_ADDR = re.compile(r"^(?:\[(?P<v6>[0-9A-Fa-f:.]+)\]|(?P<v4>[0-9.]+)):(?P<port>\d{1,5})$")
# parameters whose value identifies the bridge as much as its address does
_IDENTIFYING_PARAMS = ("cert", "url", "fingerprint")

# transports Tor Browser ships and the client binary tor runs for each (lyrebird is obfs4proxy's successor)
KNOWN_TRANSPORTS = ("obfs4", "snowflake", "meek_lite", "webtunnel", "conjure", "scramblesuit", "obfs3")


class BridgeLineError(ValueError):
    """A bridge line that tor would reject; the message is one line and names the problem."""


@dataclass(frozen=True)
class BridgeLine:
    """One parsed bridge line."""

    transport: str | None  # None for a vanilla bridge
    host: str
    port: int
    fingerprint: str | None  # 40 upper-case hex, no "$"
    params: tuple[tuple[str, str], ...] = field(default=())

    @property
    def transport_name(self) -> str:
        """``vanilla`` or the pluggable transport's name (a safe, bounded metric label value)."""
        return self.transport or "vanilla"

    @property
    def address(self) -> str:
        """``host:port`` as tor writes it (IPv6 in brackets)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"

    def param(self, key: str) -> str | None:
        return next((v for k, v in self.params if k == key), None)

    def torrc_value(self) -> str:
        """The value for ``SETCONF Bridge=...`` / a torrc ``Bridge`` line (without the keyword)."""
        parts = [self.transport] if self.transport else []
        parts.append(self.address)
        if self.fingerprint:
            parts.append(self.fingerprint)
        parts += [f"{k}={v}" for k, v in self.params]
        return " ".join(parts)

    def hashed_fingerprint(self) -> str:
        """A stable public handle: SHA-256 of the binary fingerprint (or of the address), 16 hex digits.

        Like tor's hashed fingerprints in sanitized bridge descriptors, it lets dashboards tell bridges
        apart and match them across vantages without revealing the identity a censor could block.
        """
        basis = bytes.fromhex(self.fingerprint) if self.fingerprint else self.address.encode()
        return hashlib.sha256(basis).hexdigest()[:16].upper()

    def sensitive_values(self) -> list[str]:
        """Everything that identifies this bridge: address, fingerprint and identifying parameters."""
        values = [self.host, self.address]
        if self.fingerprint:
            values += [self.fingerprint, self.fingerprint.lower()]
        values += [v for k, v in self.params if k in _IDENTIFYING_PARAMS and v]
        return values


def parse_bridge_line(text: str) -> BridgeLine:
    """Parse one bridge line; raise ``BridgeLineError`` with a one-line reason."""
    words = text.strip().split()
    if words and words[0].lower() == "bridge":
        words = words[1:]
    if not words:
        raise BridgeLineError("empty bridge line")
    transport: str | None = None
    if not _ADDR.match(words[0]):
        if not _TRANSPORT.match(words[0]):
            # never quote the line: a private bridge's address or cert would reach the error log and the
            # HTTP reply of /-/reload
            raise BridgeLineError("bridge line must start with IP:PORT or a transport name")
        transport = words[0]
        words = words[1:]
        if not words:
            raise BridgeLineError(f"{transport} bridge line has no IP:PORT")
    host, port = _parse_address(words[0])
    words = words[1:]
    fingerprint = None
    if words and "=" not in words[0]:
        match = _FINGERPRINT.match(words[0])
        if not match:
            raise BridgeLineError("fingerprint must be 40 hexadecimal digits")
        fingerprint = match[1].upper()
        words = words[1:]
    params: list[tuple[str, str]] = []
    for position, word in enumerate(words, 1):
        key, sep, value = word.partition("=")
        if not sep or not key:
            raise BridgeLineError(f"parameter {position} after the fingerprint is not key=value")
        params.append((key, value))
    if transport is None and params:
        raise BridgeLineError("a vanilla bridge line takes no key=value parameters (missing transport name?)")
    line = BridgeLine(transport, host, port, fingerprint, tuple(params))
    _check_transport(line)
    return line


def _parse_address(word: str) -> tuple[str, int]:
    match = _ADDR.match(word)
    if not match:
        raise BridgeLineError("bridge address must be IPv4:PORT or [IPv6]:PORT")
    host = match["v6"] or match["v4"]
    try:
        ipaddress.ip_address(host)
    except ValueError:
        raise BridgeLineError("bridge address is not a valid IP address") from None
    port = int(match["port"])
    if not 1 <= port <= 65535:
        raise BridgeLineError("bridge port must be between 1 and 65535")
    return host, port


def _check_transport(line: BridgeLine) -> None:
    """Catch the copy-paste truncations that tor would only report at connect time."""
    if line.transport == "obfs4":
        if not line.fingerprint:
            raise BridgeLineError("obfs4 bridge line needs the bridge fingerprint")
        if not line.param("cert"):
            raise BridgeLineError("obfs4 bridge line needs cert=... (was the line cut off?)")
    if line.transport == "meek_lite" and not line.param("url"):
        raise BridgeLineError("meek_lite bridge line needs url=...")
    if line.transport == "webtunnel" and not line.param("url"):
        raise BridgeLineError("webtunnel bridge line needs url=...")


def bridge_lines_from_text(text: str, field: str, *, at_most: int) -> list[str]:
    """The bridge lines of a ``bridge_file``/``bridges_file`` or ``*_env`` value: one per line, blank
    lines and ``#`` comments skipped; each checked. Raises ``ConfigError`` naming ``field`` and the line
    NUMBER, never its content (a private bridge)."""
    lines: list[str] = []
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        try:
            parse_bridge_line(line)
        except BridgeLineError as exc:
            raise ConfigError(field, f"line {number}: {exc}") from None
        lines.append(line)
    if not lines:
        raise ConfigError(field, "holds no bridge line")
    if len(lines) > at_most:
        raise ConfigError(field, f"holds {len(lines)} bridge lines; at most {at_most}")
    return lines
