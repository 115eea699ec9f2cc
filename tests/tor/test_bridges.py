"""Batch bridge testing through ONE real tor against the private Tor network (tests/tor/torlab.py).

Proves: working bridges (vanilla and obfs4) are marked working and dead ones fail with the reason tor
saw, all in one batch; a repeated batch still fetches descriptors (fresh tor when needed); a missing
tor or transport plugin is a clear Tor-only failure; private bridges leave no address, fingerprint or
cert in results or logs.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
import structlog

from reachwatch.config.bridgeline import parse_bridge_line
from reachwatch.config.schema import TorConfig
from reachwatch.config.targets.canary import CanaryConfig
from reachwatch.config.targets.tor_bridge import TorBridgeTarget
from reachwatch.failures import Failure, Stage
from reachwatch.model import ProbeResult
from reachwatch.probes.base import ProbeContext, Services, run_probe
from reachwatch.probes.tor_bridge import SPEC
from reachwatch.tor.circuits import BatchPaths
from reachwatch.tor.service import TorService
from reachwatch.tor.supervisor import TorUnavailable
from tests.proxy.conftest import echo_canary
from tests.tor.torlab import TorLab, free_port

pytestmark = pytest.mark.slow

WRONG_FP = "B" * 40


@pytest.fixture
async def tor_service(torlab: TorLab) -> AsyncIterator[TorService]:
    service = TorService.from_config(TorConfig(batch_timeout=30.0), torlab.client_options())
    service.tester.gather_window = 0.3
    try:
        yield service
    finally:
        await service.close()


async def probe_bridge(
    service: TorService | None, name: str, line: str, *, private: bool = False, **fields: Any
) -> ProbeResult:
    target = TorBridgeTarget(name=name, kind="tor_bridge", bridge=line, private=private, **fields)
    ctx = ProbeContext(
        target=name, kind="tor_bridge", timeout=45.0, private=private, services=Services(tor=service)
    )
    return await run_probe(SPEC, target, ctx)


def lines(torlab: TorLab) -> dict[str, str]:
    return {
        "vanilla": torlab.vanilla_bridge_line(),
        "obfs4": torlab.obfs4_bridge_line(),
        # nothing listens there: tor's ORCONN says CONNECTREFUSED
        "dead": f"127.0.0.1:{free_port()} {'A' * 40}",
        # a real relay, but not the identity the line claims: IDENTITY
        "impostor": f"127.0.0.1:{torlab.auth.or_port} {WRONG_FP}",
    }


async def test_one_batch_marks_working_bridges_working_and_dead_ones_failed_with_reason(
    torlab: TorLab, tor_service: TorService
) -> None:
    names = lines(torlab)
    outcomes = await asyncio.gather(*(probe_bridge(tor_service, n, line) for n, line in names.items()))
    results = dict(zip(names, outcomes, strict=True))
    assert tor_service.tester.batches == 1  # four targets, one SETCONF
    assert results["vanilla"].success, results["vanilla"]
    assert results["obfs4"].success, results["obfs4"]
    assert results["obfs4"].facts["transport"] == "obfs4"
    dead, impostor = results["dead"], results["impostor"]
    assert (dead.success, dead.failure, dead.stage) == (False, Failure.CONNECTION_REFUSED, Stage.CONNECT)
    assert dead.facts["orconn_reason"] == "connectrefused"
    assert (impostor.failure, impostor.stage) == (Failure.TOR_IDENTITY_MISMATCH, Stage.PROTOCOL_HANDSHAKE)
    assert impostor.facts["orconn_reason"] == "identity"


async def test_repeated_batch_fetches_the_descriptor_again(torlab: TorLab, tor_service: TorService) -> None:
    line = torlab.obfs4_bridge_line()
    first = await probe_bridge(tor_service, "obfs4", line)
    second = await probe_bridge(tor_service, "obfs4", line)
    assert first.success and second.success, (first, second)
    assert tor_service.tester.batches == 2
    assert tor_service.supervisor.restarts == 0  # a fresh tor was started on purpose, not after a crash


async def test_bridge_line_without_fingerprint_works_when_its_descriptor_arrives(
    torlab: TorLab, tor_service: TorService
) -> None:
    address = torlab.vanilla_bridge_line().split()[0]
    result = await probe_bridge(tor_service, "no-fp", address)
    assert result.success, result


async def test_supervisor_restarts_tor_after_it_dies(torlab: TorLab, tor_service: TorService) -> None:
    tor = await tor_service.supervisor.get()
    tor.proc.kill()
    await tor.proc.wait()
    result = await probe_bridge(tor_service, "vanilla", torlab.vanilla_bridge_line())
    assert result.success, result
    assert tor_service.supervisor.restarts == 1


async def test_missing_transport_plugin_fails_only_that_transport(torlab: TorLab) -> None:
    config = TorConfig(transports={"obfs4": "/nonexistent/lyrebird"}, batch_timeout=30.0)
    service = TorService.from_config(config, torlab.client_options())
    service.tester.gather_window = 0.3
    try:
        obfs4, vanilla = await asyncio.gather(
            probe_bridge(service, "obfs4", torlab.obfs4_bridge_line()),
            probe_bridge(service, "vanilla", torlab.vanilla_bridge_line()),
        )
    finally:
        await service.close()
    assert (obfs4.failure, obfs4.stage) == (Failure.TOR_PT_MISSING, Stage.CONNECT)
    assert vanilla.success, vanilla


async def test_missing_tor_binary_is_tor_unavailable(torlab: TorLab) -> None:
    service = TorService.from_config(TorConfig(binary="/nonexistent/tor"), torlab.client_options())
    try:
        result = await probe_bridge(service, "vanilla", torlab.vanilla_bridge_line())
    finally:
        await service.close()
    assert result.failure == Failure.TOR_UNAVAILABLE
    no_service = await probe_bridge(None, "vanilla", torlab.vanilla_bridge_line())
    assert no_service.failure == Failure.TOR_UNAVAILABLE


async def test_private_bridges_leave_no_address_fingerprint_or_cert_in_results_or_logs(
    torlab: TorLab, tor_service: TorService
) -> None:
    names = lines(torlab)
    with structlog.testing.capture_logs() as logs:
        results = await asyncio.gather(
            *(probe_bridge(tor_service, n, line, private=True) for n, line in names.items())
        )
    assert results[1].success  # the obfs4 bridge really was tested
    published: list[Any] = [r.to_dict() for r in results] + logs
    text = json.dumps(published, default=str)
    for line in names.values():
        for secret in parse_bridge_line(line).sensitive_values():
            if secret != "127.0.0.1":  # the lab's shared address also appears as a scrubbed "[addr]" form
                assert secret not in text, secret
    assert "127.0.0.1" not in text
    assert all(r.facts["bridge_id"] for r in results)


# -- the data stage: a circuit through each bridge, to the canary --------------------------------------


@pytest.fixture
async def canary_service(torlab: TorLab) -> AsyncIterator[TorService]:
    """A tester whose bridges carry data to an echo canary (on the lab's loopback, reached by its exits)."""
    async with echo_canary() as port:
        config = TorConfig(batch_timeout=30.0, canary=CanaryConfig(host="127.0.0.1", port=port))
        service = TorService.from_config(config, torlab.client_options())
        service.tester.gather_window = 0.3
        try:
            yield service
        finally:
            await service.close()


STAGE = {"volume": "64KiB", "min_lifetime": "2s", "stall_timeout": "3s"}


async def test_each_working_bridge_carries_the_data_stage_over_a_circuit_through_itself(
    torlab: TorLab, canary_service: TorService
) -> None:
    names = {k: v for k, v in lines(torlab).items() if k in ("vanilla", "obfs4", "dead")}
    outcomes = await asyncio.gather(
        *(probe_bridge(canary_service, n, line, data_stage=STAGE) for n, line in names.items())
    )
    results = dict(zip(names, outcomes, strict=True))
    assert canary_service.tester.batches == 1  # data stages included, still one batch
    for name in ("vanilla", "obfs4"):
        result = results[name]
        assert result.success, result
        facts = result.facts
        assert facts["data_stage"] == "canary" and facts["descriptor"] is True
        assert facts["bytes_moved"] == 64 * 1024 + 2 * 256, facts
        assert isinstance(facts["flow_alive_s"], float) and facts["flow_alive_s"] >= 2.0
        assert {"connect", "tunnel", "transfer"} <= set(result.stage_durations), result.stage_durations
    dead = results["dead"]
    assert (dead.failure, dead.stage) == (Failure.CONNECTION_REFUSED, Stage.CONNECT)
    assert "bytes_moved" not in dead.facts  # no descriptor, no data stage


async def test_without_a_tor_canary_a_bridge_is_tested_by_its_descriptor_alone(
    torlab: TorLab, tor_service: TorService
) -> None:
    result = await probe_bridge(tor_service, "vanilla", torlab.vanilla_bridge_line(), data_stage=STAGE)
    assert result.success, result
    assert result.facts["data_stage"] == "descriptor_only" and "bytes_moved" not in result.facts


async def test_a_recycled_tester_keeps_the_public_directory_so_bridges_carry_less_of_it(
    torlab: TorLab, canary_service: TorService
) -> None:
    """Every batch after the first runs in a fresh tor (no bridge descriptor, no guard state); it starts
    from the consensus and microdescriptors its predecessor fetched, so a bridge does not carry the whole
    directory again at every batch (what tor read by the time the data stage starts)."""
    reads: list[int] = []

    async def hook(paths: BatchPaths, fingerprint: str) -> None:
        reads.append(int(await paths.tor.call(paths.tor.controller.get_info, "traffic/read")))

    line = parse_bridge_line(torlab.vanilla_bridge_line())
    for _ in range(2):
        outcome = await canary_service.tester.test(line, hook)
        assert outcome.working and outcome.data_ran and outcome.data_error is None, outcome
    assert canary_service.tester.batches == 2
    # measured: 16.2 kB without the inherited cache both times, 7.9 kB with it (this network's directory
    # is four relays; the public one is megabytes)
    assert reads[1] < reads[0] * 0.75, reads


async def test_closing_the_service_mid_batch_is_a_stop_not_a_tor_failure(torlab: TorLab) -> None:
    service = TorService.from_config(TorConfig(batch_timeout=30.0), torlab.client_options())
    service.tester.gather_window = 0.1
    tarpit = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)  # accepts, never answers
    port = tarpit.sockets[0].getsockname()[1]
    try:
        attempt = asyncio.create_task(service.tester.test(parse_bridge_line(f"127.0.0.1:{port} {'D' * 40}")))
        while service.tester._runner is None or not service.tester._tested:  # the batch is under way
            await asyncio.sleep(0.05)
        with structlog.testing.capture_logs() as logs:
            await service.close()
        with pytest.raises(TorUnavailable) as stopped:
            await asyncio.wait_for(attempt, 5)
        assert "stopping" in str(stopped.value)
        assert not [e for e in logs if e["event"] == "bridge_batch_failed"]
    finally:
        tarpit.close()
        await service.close()
