"""Who completed our handshake before, and THE rule that turns silence into ``protocol_blocking`` evidence.

A key-less or wrong-key VPN or proxy server is silent, and so is a censored one: silence alone is never
evidence. A probe marks ``protocol_blocking`` only when both hold (``HandshakeMemory.silence_evidence``):

1. this endpoint, as configured now, completed our handshake earlier in this process: its address, keys
   and mode were right then;
2. the path works now: something that is not our protocol reached the same place while our handshake
   did not (a same-path UDP control answered, the TCP connect itself succeeded, another payload on the
   same port got a reaction; each probe says which).

A censor that fingerprints the protocol drops the handshake and lets the rest through; a dead server or
a blackholed address fails both.

"Before" is only worth something about the same endpoint, so the memory is keyed by what it is about:
the destination, a digest of the target's own fields (everything but the fields every kind shares:
name, group, labels, interval, timeout, private) and a digest of the key material the probe read for the
attempt (a key file's content can change without a reload). A reload that changes the host, the port,
the server key, the mode or the key file's content gives a different key, so an old success never counts
as evidence against a different endpoint; ``retain`` (the scheduler calls it on reload) also drops what
no current target can use, which keeps the memory as small as the config. A change of interval or labels
keeps it.

The memory belongs to whoever runs the probes (``probes.base.Services``): the daemon keeps one for its
life, a one-shot ``reachwatch check`` starts with an empty one, as the daemon does after a restart (which
only makes the probes more cautious).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable

from reachwatch.config.types import TargetBase
from reachwatch.failures import Technique

# fields every kind has: they schedule and present a target, they never decide whether a handshake works
_SHARED_FIELDS = frozenset(TargetBase.model_fields)


def endpoint_key(target: TargetBase) -> str:
    """The destination and a digest of the kind's own fields (host, port, server key, mode, ...)."""
    fields = target.model_dump(mode="json", exclude=set(_SHARED_FIELDS))
    digest = hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()[:32]
    return f"{target.destination()} {digest}"


def _material_digest(material: bytes) -> bytes:
    return hashlib.sha256(material).digest()


class HandshakeMemory:
    """Which endpoints (``endpoint_key``) completed our handshake, and with which key material."""

    def __init__(self) -> None:
        self._answered: dict[str, bytes] = {}  # endpoint key -> digest of the material that worked

    def __len__(self) -> int:
        return len(self._answered)

    def answered(self, target: TargetBase, material: bytes = b"") -> None:
        """Note an authentic answer to our handshake; ``material`` is the key material the probe used."""
        self._answered[endpoint_key(target)] = _material_digest(material)

    def answered_before(self, target: TargetBase, material: bytes = b"") -> bool:
        return self._answered.get(endpoint_key(target)) == _material_digest(material)

    def silence_evidence(
        self, target: TargetBase, *, path_ok: bool, material: bytes = b""
    ) -> Technique | None:
        """THE rule: ``protocol_blocking`` when the handshake met silence although the path works now and
        this endpoint, with this material, answered before; otherwise no evidence."""
        if path_ok and self.answered_before(target, material):
            return Technique.PROTOCOL_BLOCKING
        return None

    def retain(self, targets: Iterable[TargetBase]) -> None:
        """Forget every endpoint no target of the (new) config has."""
        # digests only for targets at a remembered destination: a reload of 10,000 TLS targets costs
        # nothing here while the memory holds a few VPN endpoints
        destinations = {key.rsplit(" ", 1)[0] for key in self._answered}
        keep: set[str] = set()
        for target in targets:
            try:
                if target.destination() in destinations:
                    keep.add(endpoint_key(target))
            except NotImplementedError:  # a kind without an endpoint never completes a handshake here
                continue
        for key in list(self._answered):
            if key not in keep:
                del self._answered[key]
