"""Relay sets from the consensus documents a real Tor network wrote, probed end to end.

The private network (``torlab`` fixture: a directory authority, three relays, two bridges on loopback)
votes a real consensus; its nodes cache it as ``cached-consensus`` (authority) and
``cached-microdesc-consensus`` (relays acting as clients). Every relay listed there must be reachable
with its identity verified, and the bridges (never in a consensus) must not appear.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from aiohttp import web

from reachwatch.config.load import parse_config, with_relay_sets
from reachwatch.config.relaysets import RelaySetConfig, relay_set_targets
from reachwatch.config.targets.tor_dirport import TorDirPortTarget
from reachwatch.config.targets.tor_relay import TorRelayTarget
from reachwatch.probes import PROBES
from reachwatch.probes.base import ProbeContext, run_probe
from reachwatch.relaywatch import RelaySetWatcher, source_key
from reachwatch.scheduler import Scheduler
from reachwatch.state import StateStore
from reachwatch.tor.directory import DirectoryTor
from tests.servers import http_app
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


async def test_a_live_onionoo_set_is_fetched_through_the_directory_tor(
    torlab: TorLab, tmp_path: Path
) -> None:
    """``live: onionoo``: the details document comes over HTTP through the directory tor's SOCKS port and a
    3-hop circuit of the lab (its exits reach loopback), never directly; country and AS come with it."""
    relays = [
        {"fingerprint": r.fingerprint, "or_addresses": [f"127.0.0.1:{r.or_port}"], "flags": ["Guard"],
         "country": "xa", "as": "AS64501"}
        for r in torlab.relays
    ]  # fmt: skip
    fetched: list[str] = []

    async def details(request: web.Request) -> web.Response:
        fetched.append(request.path_qs)
        return web.json_response({"relays": relays})

    app = web.Application()
    app.router.add_get("/details", details)
    async with http_app(app) as port:
        url = f"http://127.0.0.1:{port}/details?type=relay&running=true"
        options = json.dumps(torlab.client_options())
        text = (
            f"tor:\n  torrc: {options}\n  relay_list: {{onionoo_url: '{url}'}}\n"
            "  relay_sets: [{name: oo, live: onionoo}]\n"
        )
        loaded = with_relay_sets(parse_config(text, "c.yaml", tmp_path))
        sched = Scheduler(loaded, StateStore())
        directory = DirectoryTor.from_config(loaded.config.tor)
        assert directory is not None
        watcher = RelaySetWatcher(sched, loaded, directory)
        try:
            assert await watcher.refresh() == {"oo": True}
        finally:
            await directory.close()
    members = sched.generated(source_key("oo"))
    assert {t.fingerprint for t in members} == {r.fingerprint for r in torlab.relays}
    assert {(t.relay_country, t.relay_as) for t in members} == {("xa", "AS64501")}  # type: ignore[attr-defined]
    assert fetched == ["/details?type=relay&running=true"]
