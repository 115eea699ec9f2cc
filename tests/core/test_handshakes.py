"""The protocol_blocking rule and its memory (``probes.handshakes``): what "answered before" is about, and
what a reload keeps. The four kinds that use it prove it against real servers behind the test censor
(tests/vpn/test_{openvpn,wireguard,ikev2}.py, tests/proxy/test_censor.py)."""

from __future__ import annotations

import asyncio
import base64
import json
import random
from pathlib import Path
from typing import Any

import pytest

from reachwatch.config.load import LoadedConfig, parse_config
from reachwatch.config.targets.wireguard import WireGuardTarget
from reachwatch.failures import Technique
from reachwatch.model import ProbeResult
from reachwatch.probes import PROBES
from reachwatch.probes.base import ProbeContext, ProbeSpec
from reachwatch.probes.handshakes import HandshakeMemory
from reachwatch.scheduler import Scheduler
from reachwatch.state import StateStore

KEY_A = base64.b64encode(bytes(range(32))).decode()
KEY_B = base64.b64encode(bytes(range(1, 33))).decode()


def wg(**kw: Any) -> dict[str, Any]:
    fields = {"name": "wg", "kind": "wireguard", "host": "192.0.2.10", "port": 51820, "public_key": KEY_A,
              "private_key_file": "probe.key"}  # fmt: skip
    return {**fields, **kw}


def model(**kw: Any) -> WireGuardTarget:
    return WireGuardTarget.model_validate(wg(**kw))


@pytest.mark.parametrize(
    ("change", "kept"),
    [
        ({"interval": "5m"}, True),
        ({"timeout": "3s"}, True),
        ({"labels": {"isp": "x"}}, True),
        ({"group": "vpn"}, True),
        ({"name": "renamed"}, True),
        ({"private": True}, True),
        ({"host": "192.0.2.11"}, False),
        ({"port": 51821}, False),
        ({"public_key": KEY_B}, False),
        ({"private_key_file": "other.key"}, False),
        ({"preshared_key_file": "psk"}, False),
    ],
)
def test_answered_before_is_about_the_endpoint_not_its_schedule(change: dict[str, Any], kept: bool) -> None:
    memory = HandshakeMemory()
    memory.answered(model(), b"key-material")
    assert memory.answered_before(model(**change), b"key-material") is kept


def test_other_key_material_in_the_same_files_is_another_endpoint() -> None:
    """A key file rotated without a reload: the old success says nothing about the new key."""
    memory = HandshakeMemory()
    memory.answered(model(), b"old key")
    assert not memory.answered_before(model(), b"new key")
    assert memory.answered_before(model(), b"old key")


@pytest.mark.parametrize(
    ("answered", "path_ok", "evidence"),
    [
        (True, True, Technique.PROTOCOL_BLOCKING),
        (True, False, None),  # the whole path is dead: a dead server or a blackholed address
        (False, True, None),  # never answered: a wrong key or an unregistered peer is silent too
        (False, False, None),
    ],
)
def test_silence_is_protocol_blocking_only_when_answered_before_and_the_path_works(
    answered: bool, path_ok: bool, evidence: Technique | None
) -> None:
    memory = HandshakeMemory()
    if answered:
        memory.answered(model())
    assert memory.silence_evidence(model(), path_ok=path_ok) is evidence


# -- through the scheduler: the memory is the one probes see, and a reload prunes it ----------------


async def answering_probe(target: WireGuardTarget, ctx: ProbeContext) -> ProbeResult:
    """Stands in for a real handshake that got an authentic answer (no network in this test)."""
    ctx.services.handshakes.answered(target)
    return ctx.succeed()


async def silent_probe(target: WireGuardTarget, ctx: ProbeContext) -> ProbeResult:
    return ctx.succeed()  # notes nothing: after the reload only what the memory kept can answer for it


def stub(probe: Any) -> dict[str, ProbeSpec[Any]]:
    return {**PROBES, "wireguard": ProbeSpec(kind="wireguard", target_model=WireGuardTarget, probe=probe)}


class LowRandom(random.Random):
    """No start stagger: the first attempt runs at once."""

    def uniform(self, a: float, b: float) -> float:
        return a


def config(tmp_path: Path, target: dict[str, Any]) -> LoadedConfig:
    doc = {"defaults": {"interval": "1h", "timeout": "2s"}, "targets": [target]}
    return parse_config(json.dumps(doc), "test.yaml", tmp_path)


@pytest.mark.parametrize(
    ("change", "kept"),
    [({"interval": "2h"}, True), ({"host": "192.0.2.11"}, False), ({"public_key": KEY_B}, False)],
    ids=["interval-only", "host", "server-key"],
)
async def test_reload_that_changes_host_or_key_forgets_answered_before(
    tmp_path: Path, change: dict[str, Any], kept: bool
) -> None:
    first = config(tmp_path, wg())
    sched = Scheduler(first, StateStore(), probes=stub(answering_probe), rng=LowRandom())
    memory = sched.services.handshakes
    sched.start()
    try:
        async with asyncio.timeout(5):
            while not memory.answered_before(first.config.targets[0]):
                await asyncio.sleep(0.01)
        second = config(tmp_path, wg(**change))
        # every change here restarts the target's job; its new attempts must not answer for it again
        sched.probes = stub(silent_probe)
        await sched.reload(second)
        new_target = second.config.targets[0]
        assert memory.answered_before(new_target) is kept
        assert len(memory) == (1 if kept else 0)  # the old endpoint is gone, not merely unmatched
    finally:
        await sched.drain(2)
