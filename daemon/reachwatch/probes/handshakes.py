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

"Before" is only worth something about the same endpoint, so the memory is keyed by what it is about
(``probes.memory.endpoint_key``: the destination and a digest of the target's own fields) plus a digest
of the key material the probe read for the attempt (a key file's content can change without a reload).
A reload that changes the host, the port, the server key, the mode or the key file's content gives a
different key, so an old success never counts as evidence against a different endpoint; ``retain`` (the
scheduler calls it on reload) also drops what no current target can use. A change of interval or labels
keeps it.

The memory belongs to whoever runs the probes (``probes.base.Services``): the daemon keeps one for its
life, a one-shot ``reachwatch check`` starts with an empty one, as the daemon does after a restart (which
only makes the probes more cautious).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

from reachwatch.config.types import TargetBase
from reachwatch.failures import Technique
from reachwatch.probes.memory import EndpointMemory


def _material_digest(material: bytes) -> bytes:
    return hashlib.sha256(material).digest()


class HandshakeMemory:
    """Which endpoints (``endpoint_key``) completed our handshake, and with which key material."""

    def __init__(self) -> None:
        self._answered: EndpointMemory[bytes] = EndpointMemory()  # digest of the material that worked

    def __len__(self) -> int:
        return len(self._answered)

    def answered(self, target: TargetBase, material: bytes = b"") -> None:
        """Note an authentic answer to our handshake; ``material`` is the key material the probe used."""
        self._answered.put(target, _material_digest(material))

    def answered_before(self, target: TargetBase, material: bytes = b"") -> bool:
        return self._answered.get(target) == _material_digest(material)

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
        self._answered.retain(targets)
