"""What probes remember about endpoints between attempts, keyed by what it is about and pruned on reload.

Some probes need a little of the past: whether this endpoint answered our handshake before
(``probes.handshakes``), the last WireGuard timestamp we sent a server (``WireGuardTimestamps``), the
clock skew a Shadowsocks 2022 server showed (``probes.shadowsocks``). Such memory belongs to whoever
runs the probes (``probes.base.Services``), never to a module: a module-level dict is shared by every
run in the process (two daemons, a daemon's tests) and outlives every reload, so a fact about one
endpoint leaks onto another that merely shares its name or address.

``EndpointMemory`` keys a value by ``endpoint_key``: the destination and a digest of the target's own
fields (everything but those every kind shares: name, group, labels, interval, timeout, private). A
reload that changes the host, the port, a key or the mode gives a different key; ``retain`` (the
scheduler calls it on reload through ``Services.retain``) drops what no current target can use, which
keeps each memory as small as the config. A change of interval or labels keeps it.
"""

from __future__ import annotations

import hashlib
import json
import struct
from collections.abc import Iterable
from typing import Generic, TypeVar

from reachwatch.config.targets.wireguard import WireGuardTarget, wireguard_key
from reachwatch.config.types import TargetBase

V = TypeVar("V")

# fields every kind has: they schedule and present a target, they never decide what an endpoint is
_SHARED_FIELDS = frozenset(TargetBase.model_fields)


def endpoint_key(target: TargetBase) -> str:
    """The destination and a digest of the kind's own fields (host, port, server key, mode, ...)."""
    fields = target.model_dump(mode="json", exclude=set(_SHARED_FIELDS))
    digest = hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()[:32]
    return f"{target.destination()} {digest}"


class EndpointMemory(Generic[V]):
    """One value per endpoint (``endpoint_key``)."""

    def __init__(self) -> None:
        self._values: dict[str, V] = {}

    def __len__(self) -> int:
        return len(self._values)

    def get(self, target: TargetBase) -> V | None:
        return self._values.get(endpoint_key(target))

    def put(self, target: TargetBase, value: V) -> None:
        self._values[endpoint_key(target)] = value

    def retain(self, targets: Iterable[TargetBase]) -> None:
        """Forget every endpoint no target of the (new) config has."""
        if not self._values:
            return
        # digests only for targets at a remembered destination: a reload of 10,000 TLS targets costs
        # nothing here while the memory holds a few VPN endpoints
        destinations = {key.rsplit(" ", 1)[0] for key in self._values}
        keep: set[str] = set()
        for target in targets:
            try:
                if target.destination() in destinations:
                    keep.add(endpoint_key(target))
            except NotImplementedError:  # a kind without an endpoint is never remembered here
                continue
        for key in list(self._values):
            if key not in keep:
                del self._values[key]


class WireGuardTimestamps:
    """The last TAI64N timestamp sent per (server public key, our public key).

    A WireGuard responder drops an initiation whose timestamp is not strictly later than the last one it
    accepted from that peer (replay protection), so two attempts within the clock's resolution, or after
    the clock stepped back, need the memory. It is keyed by the two keys and not by the address: the
    responder's check is per peer whatever address the initiation arrives on, so two targets reaching one
    server by two addresses (IPv4 and IPv6) must share it, and a reload that only moves the host keeps it.
    A reload that drops the server key, or a rotated probe key, starts afresh (the server has no record
    of a new peer pair).
    """

    def __init__(self) -> None:
        self._last: dict[tuple[bytes, bytes], bytes] = {}

    def __len__(self) -> int:
        return len(self._last)

    def next(self, server: bytes, ours: bytes, now: bytes | None = None) -> bytes:
        """A TAI64N label strictly later than the last one sent for this peer pair (``now``: the clock's)."""
        # imported here: every probe's Services holds this memory, only the wireguard probe calls it,
        # and formats.noise loads PyNaCl (~0.7 MB of every daemon otherwise; bench/README.md, issue 9)
        from reachwatch.formats import noise  # noqa: PLC0415

        ts = noise.tai64n() if now is None else now
        last = self._last.get((server, ours))
        if last is not None and ts <= last:
            secs, nanos = struct.unpack(">QI", last)
            secs, nanos = (secs + 1, 0) if nanos >= 999_999_999 else (secs, nanos + 1)
            ts = struct.pack(">QI", secs, nanos)
        self._last[(server, ours)] = ts
        return ts

    def retain(self, targets: Iterable[TargetBase]) -> None:
        """Forget every server key no WireGuard target of the (new) config has."""
        wireguard = (t for t in targets if isinstance(t, WireGuardTarget))
        servers = {wireguard_key(t.public_key, "public_key") for t in wireguard}
        for pair in list(self._last):
            if pair[0] not in servers:
                del self._last[pair]
