"""Relay sets from the consensus documents a real Tor network wrote, probed end to end.

The private network (``torlab`` fixture: a directory authority, three relays, two bridges on loopback)
votes a real consensus; its nodes cache it as ``cached-consensus`` (authority) and
``cached-microdesc-consensus`` (relays acting as clients). Every relay listed there must be reachable
with its identity verified, and the bridges (never in a consensus) must not appear.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from reachwatch.config.relaysets import RelaySetConfig, relay_set_targets
from reachwatch.config.targets.tor_dirport import TorDirPortTarget
from reachwatch.config.targets.tor_relay import TorRelayTarget
from reachwatch.probes import PROBES
from reachwatch.probes.base import ProbeContext, run_probe
from tests.tor.torlab import TorLab

pytestmark = pytest.mark.slow


async def _probe_all(targets: list[TorRelayTarget]) -> list[bool]:
    async def one(target: TorRelayTarget) -> bool:
        ctx = ProbeContext(target=target.name, kind=target.kind, timeout=10)
        result = await run_probe(PROBES["tor_relay"], target, ctx)
        return result.success

    return list(await asyncio.gather(*(one(t) for t in targets)))


@pytest.mark.parametrize("document", ["cached-consensus", "cached-microdesc-consensus"])
async def test_every_relay_of_a_real_consensus_is_reachable_with_its_identity(
    torlab: TorLab, document: str
) -> None:
    holder = torlab.auth if document == "cached-consensus" else torlab.relays[0]
    path: Path = holder.datadir / document
    assert path.exists(), f"{holder.name} has no {document}"
    targets = relay_set_targets(RelaySetConfig(name="lab", source=str(path), flags=["Running"]), path.parent)
    fingerprints = {t.fingerprint for t in targets}
    expected = {torlab.auth.fingerprint, *(r.fingerprint for r in torlab.relays)}
    assert expected <= fingerprints
    assert torlab.bridge.fingerprint not in fingerprints
    assert torlab.obfs4_bridge.fingerprint not in fingerprints
    assert all(await _probe_all(targets))


async def test_dirport_of_the_labs_directory_authority_serves_its_signed_descriptor(torlab: TorLab) -> None:
    target = TorDirPortTarget(
        name="lab-auth",
        kind="tor_dirport",
        host="127.0.0.1",
        port=torlab.auth.dir_port,
        fingerprint=torlab.auth.fingerprint,
    )
    result = await run_probe(
        PROBES["tor_dirport"], target, ProbeContext(target="lab-auth", kind="tor_dirport", timeout=10)
    )
    assert result.success, result.to_dict()
