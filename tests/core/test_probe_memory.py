"""What probes remember about endpoints (``probes.memory``) belongs to one run's ``Services``, is keyed by
what it is about and is pruned on reload: WireGuard timestamps per peer pair, Shadowsocks 2022 clock
skews per endpoint. The probes use them against real peers in tests/vpn/test_wireguard.py (two attempts
in a row need strictly later timestamps) and tests/proxy/test_ss2022.py (a skew seen before explains
a later silence, but only within the same run)."""

from __future__ import annotations

import asyncio
import base64
import json
import random
import struct
from pathlib import Path
from typing import Any

from reachwatch.config.load import LoadedConfig, parse_config
from reachwatch.config.targets.shadowsocks import ShadowsocksTarget
from reachwatch.config.targets.wireguard import WireGuardTarget
from reachwatch.formats import noise
from reachwatch.model import ProbeResult
from reachwatch.probes import PROBES
from reachwatch.probes.base import ProbeContext, ProbeSpec, Services
from reachwatch.probes.memory import WireGuardTimestamps
from reachwatch.scheduler import Scheduler
from reachwatch.state import StateStore

SERVER_A, SERVER_B, OURS = bytes(range(32)), bytes(range(1, 33)), bytes(range(2, 34))


def b64(key: bytes) -> str:
    return base64.b64encode(key).decode()


def wg(**kw: Any) -> dict[str, Any]:
    fields = {"name": "wg", "kind": "wireguard", "host": "192.0.2.10", "port": 51820,
              "public_key": b64(SERVER_A), "private_key_file": "probe.key"}  # fmt: skip
    return {**fields, **kw}


def ss(**kw: Any) -> dict[str, Any]:
    fields = {"name": "ss", "kind": "shadowsocks", "host": "192.0.2.20", "port": 8388,
              "method": "2022-blake3-aes-128-gcm", "password_file": "psk",
              "canary": {"host": "192.0.2.30", "port": 7}, "data_stage": {"min_lifetime": "0s"}}  # fmt: skip
    return {**fields, **kw}


def label(secs: int, nanos: int) -> bytes:
    return struct.pack(">QI", noise.TAI64_BASE + secs, nanos)


# -- WireGuard timestamps ---------------------------------------------------------------------------


def test_timestamps_stay_strictly_increasing_when_the_clock_stands_still_or_steps_back() -> None:
    stamps = WireGuardTimestamps()
    sent = [
        stamps.next(SERVER_A, OURS, label(100, 5)),
        stamps.next(SERVER_A, OURS, label(100, 5)),  # same clock reading
        stamps.next(SERVER_A, OURS, label(99, 0)),  # the clock stepped back (NTP)
        stamps.next(SERVER_A, OURS, label(100, 999_999_999)),
        stamps.next(SERVER_A, OURS, label(100, 999_999_999)),  # the bump carries into the seconds
    ]
    assert sent == sorted(set(sent))
    assert sent[-1] == label(101, 0)
    assert stamps.next(SERVER_A, OURS, label(200, 0)) == label(200, 0)  # a clock that moved on is used


def test_timestamps_are_per_peer_pair() -> None:
    stamps = WireGuardTimestamps()
    stamps.next(SERVER_A, OURS, label(100, 5))
    assert stamps.next(SERVER_B, OURS, label(100, 5)) == label(100, 5)  # another server: no record there
    assert stamps.next(SERVER_A, SERVER_B, label(100, 5)) == label(100, 5)  # another probe key


def test_two_runs_in_one_process_do_not_share_timestamps() -> None:
    first, second = Services(), Services()
    first.wireguard_timestamps.next(SERVER_A, OURS, label(100, 5))
    assert second.wireguard_timestamps.next(SERVER_A, OURS, label(100, 5)) == label(100, 5)
    assert len(second.wireguard_timestamps) == 1 and len(first.wireguard_timestamps) == 1


def test_reload_keeps_timestamps_for_a_server_key_still_configured_whatever_its_address() -> None:
    """The responder checks per peer, not per address: moving the host keeps the record; dropping the
    server key forgets it."""
    services = Services()
    services.wireguard_timestamps.next(SERVER_A, OURS, label(100, 5))
    services.retain([WireGuardTarget.model_validate(wg(host="192.0.2.99", port=1))])
    assert services.wireguard_timestamps.next(SERVER_A, OURS, label(100, 5)) == label(100, 6)
    services.retain([WireGuardTarget.model_validate(wg(public_key=b64(SERVER_B)))])
    assert len(services.wireguard_timestamps) == 0


# -- Shadowsocks clock skews ------------------------------------------------------------------------


def test_two_runs_in_one_process_do_not_share_clock_skews() -> None:
    target = ShadowsocksTarget.model_validate(ss())
    first, second = Services(), Services()
    first.clock_skews.put(target, (20.0, 1.0))
    assert first.clock_skews.get(target) == (20.0, 1.0)
    assert second.clock_skews.get(target) is None


def test_a_skew_is_about_the_endpoint_not_its_name() -> None:
    services = Services()
    services.clock_skews.put(ShadowsocksTarget.model_validate(ss()), (20.0, 1.0))
    assert services.clock_skews.get(ShadowsocksTarget.model_validate(ss(name="renamed"))) == (20.0, 1.0)
    assert services.clock_skews.get(ShadowsocksTarget.model_validate(ss(port=8389))) is None


# -- through the scheduler: a reload prunes every memory the probes see -----------------------------


class LowRandom(random.Random):
    """No start stagger: the first attempt runs at once."""

    def uniform(self, a: float, b: float) -> float:
        return a


def config(tmp_path: Path, *targets: dict[str, Any]) -> LoadedConfig:
    doc = {"defaults": {"interval": "1h", "timeout": "2s"}, "targets": list(targets)}
    return parse_config(json.dumps(doc), "test.yaml", tmp_path)


async def remembering_wg(target: WireGuardTarget, ctx: ProbeContext) -> ProbeResult:
    """Stands in for an initiation sent to the server (no network in this test)."""
    ctx.services.wireguard_timestamps.next(base64.b64decode(target.public_key), OURS)
    return ctx.succeed()


async def remembering_ss(target: ShadowsocksTarget, ctx: ProbeContext) -> ProbeResult:
    """Stands in for a 2022 answer 20 s off our clock."""
    ctx.services.clock_skews.put(target, (20.0, 1.0))
    return ctx.succeed()


async def quiet(target: Any, ctx: ProbeContext) -> ProbeResult:
    return ctx.succeed()


def stub(wg_probe: Any, ss_probe: Any) -> dict[str, ProbeSpec[Any]]:
    return {
        **PROBES,
        "wireguard": ProbeSpec(kind="wireguard", target_model=WireGuardTarget, probe=wg_probe),
        "shadowsocks": ProbeSpec(kind="shadowsocks", target_model=ShadowsocksTarget, probe=ss_probe),
    }


async def test_reload_that_changes_the_endpoints_forgets_timestamps_and_skews(tmp_path: Path) -> None:
    first = config(tmp_path, wg(), ss())
    sched = Scheduler(first, StateStore(), probes=stub(remembering_wg, remembering_ss), rng=LowRandom())
    services = sched.services
    sched.start()
    try:
        async with asyncio.timeout(5):
            while not (len(services.wireguard_timestamps) and len(services.clock_skews)):
                await asyncio.sleep(0.01)
        sched.probes = stub(quiet, quiet)
        await sched.reload(config(tmp_path, wg(public_key=b64(SERVER_B)), ss(port=8389)))
        assert len(services.wireguard_timestamps) == 0
        assert len(services.clock_skews) == 0
    finally:
        await sched.drain(2)
