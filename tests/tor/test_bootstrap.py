"""Full bootstraps with a fresh DataDirectory through the private Tor network's bridges.

Proves: a client bootstraps to 100% through the obfs4 bridge (and the vanilla one); with the bridge
blackholed (an nftables drop rule in a network namespace where the client tor runs) the stall is
reported at the phase where it stopped — the pluggable transport's phase for obfs4, ``conn`` for a
vanilla bridge — as a ``connect`` timeout that the verdict engine calls ``unreachable`` on its own and
``blocked``/``tcp_blackhole`` with a reference vantage, with no bridge address in the facts.

The client namespace reaches the lab (on the host's loopback) through a small TCP forwarder whose
listening socket lives inside the namespace: the namespace's own 127.0.0.1:P stands for the bridge, and
the drop rule sits on the client's path exactly where a censor's would.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import dataclasses
import json
import os
import secrets
import socket
import subprocess
import threading
import time
from collections.abc import AsyncIterator, Iterator

import pytest

from reachwatch.config.bridgeline import parse_bridge_line
from reachwatch.config.schema import TorConfig
from reachwatch.config.targets.canary import CanaryConfig
from reachwatch.config.targets.tor_bootstrap import TorBootstrapTarget
from reachwatch.failures import Failure, Stage, Technique, VantageState, Verdict
from reachwatch.model import Observation, ProbeResult
from reachwatch.probes.base import ProbeContext, Services, run_probe
from reachwatch.probes.tor_bootstrap import SPEC
from reachwatch.tor.service import TorService
from reachwatch.verdict import judge
from tests.proxy.conftest import echo_canary
from tests.tor.torlab import TorLab, free_port

pytestmark = pytest.mark.slow

_CLONE_NEWNET = 0x40000000


async def bootstrap(service: TorService, name: str, line: str, timeout: float = 40.0) -> ProbeResult:
    target = TorBootstrapTarget(name=name, kind="tor_bootstrap", bridges=[line], private=True)
    ctx = ProbeContext(
        target=name, kind="tor_bootstrap", timeout=timeout, private=True, services=Services(tor=service)
    )
    return await run_probe(SPEC, target, ctx)


def lab_service(torlab: TorLab, **overrides: object) -> TorService:
    return TorService.from_config(TorConfig(bootstrap_timeout=60.0), torlab.client_options())


async def test_client_bootstraps_to_100_percent_through_the_obfs4_bridge(torlab: TorLab) -> None:
    service = lab_service(torlab)
    result = await bootstrap(service, "obfs4-boot", torlab.obfs4_bridge_line())
    assert result.success, result
    assert result.facts["bootstrap_progress"] == 100 and result.facts["bootstrap_tag"] == "done"
    assert 0 < float(result.facts["bootstrap_seconds"]) < 40  # type: ignore[arg-type]
    assert result.facts["transport"] == "obfs4"


async def test_bootstrapped_client_carries_the_data_stage_to_the_canary(torlab: TorLab) -> None:
    async with echo_canary() as port:
        config = TorConfig(bootstrap_timeout=60.0, canary=CanaryConfig(host="127.0.0.1", port=port))
        service = TorService.from_config(config, torlab.client_options())
        target = TorBootstrapTarget(
            name="obfs4-data", kind="tor_bootstrap", bridges=[torlab.obfs4_bridge_line()], private=True,
            data_stage={"volume": "64KiB", "min_lifetime": "2s", "stall_timeout": "3s"},
        )  # fmt: skip
        ctx = ProbeContext(
            target=target.name, kind="tor_bootstrap", timeout=60.0, private=True,
            services=Services(tor=service),
        )  # fmt: skip
        result = await run_probe(SPEC, target, ctx)
    assert result.success, result
    assert result.facts["bootstrap_progress"] == 100 and result.facts["data_stage"] == "canary"
    assert result.facts["bytes_moved"] == 64 * 1024 + 2 * 256


async def test_refused_bridge_stall_carries_tors_reason(torlab: TorLab) -> None:
    service = lab_service(torlab)
    result = await bootstrap(service, "refused", f"127.0.0.1:{free_port()} {'D' * 40}", timeout=12.0)
    assert (result.failure, result.stage) == (Failure.CONNECTION_REFUSED, Stage.CONNECT), result
    assert result.facts["bootstrap_reason"] == "connectrefused"
    assert (result.facts["bootstrap_tag"], result.facts["bootstrap_progress"]) == ("conn", 5)


async def test_missing_transport_plugin_is_tor_pt_missing(torlab: TorLab) -> None:
    service = TorService.from_config(TorConfig(transports={}), torlab.client_options())
    result = await bootstrap(service, "obfs4-boot", torlab.obfs4_bridge_line())
    assert (result.failure, result.stage) == (Failure.TOR_PT_MISSING, Stage.CONNECT)


# -- blackholed bridge, seen from a client network namespace ------------------------------------------


@contextlib.contextmanager
def client_netns() -> Iterator[str]:
    name = f"rwtor-{secrets.token_hex(4)}"
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        subprocess.run(["ip", "-n", name, "link", "set", "lo", "up"], check=True)
        yield name
    finally:
        subprocess.run(["ip", "netns", "del", name], check=False)


def listen_in_netns(netns: str) -> socket.socket:
    """A listening socket on 127.0.0.1 inside ``netns`` (setns is per thread; the socket keeps its netns)."""
    made: list[socket.socket] = []

    def work() -> None:
        libc = ctypes.CDLL(None, use_errno=True)
        fd = os.open(f"/var/run/netns/{netns}", os.O_RDONLY)
        try:
            if libc.setns(fd, _CLONE_NEWNET) != 0:
                raise OSError(ctypes.get_errno(), "setns")
        finally:
            os.close(fd)
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        sock.setblocking(False)
        made.append(sock)

    thread = threading.Thread(target=work)
    thread.start()
    thread.join()
    return made[0]


@contextlib.asynccontextmanager
async def forwarder(netns: str, port: int) -> AsyncIterator[int]:
    """Forward netns 127.0.0.1:<yielded port> to the host's 127.0.0.1:``port``."""

    async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(OSError):
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        writer.close()

    open_writers: set[asyncio.StreamWriter] = set()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        open_writers.add(writer)
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            writer.close()
            return
        open_writers.add(up_writer)
        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))

    sock = listen_in_netns(netns)
    server = await asyncio.start_server(handle, sock=sock)
    try:
        yield int(sock.getsockname()[1])
    finally:
        server.close()
        for writer in open_writers:  # Server.close_clients() is Python 3.13+
            writer.close()
        await server.wait_closed()


def blackhole(netns: str, ports: list[int]) -> None:
    rules = "".join(f"    tcp dport {p} drop\n" for p in ports)
    chain = f"  chain out {{\n    type filter hook output priority 0;\n{rules}  }}\n"
    ruleset = f"table inet rwblackhole {{\n{chain}}}\n"
    subprocess.run(["ip", "netns", "exec", netns, "nft", "-f", "-"], input=ruleset, text=True, check=True)


def moved(line: str, port: int) -> str:
    """The same bridge line with its address replaced by the namespace's forwarder."""
    parsed = parse_bridge_line(line)
    return line.replace(parsed.address, f"127.0.0.1:{port}", 1)


@pytest.mark.root
async def test_blackholed_bridge_stall_is_reported_at_the_phase_it_stopped(torlab: TorLab) -> None:
    with client_netns() as netns:
        service = lab_service(torlab)
        service.binaries = dataclasses.replace(service.binaries, wrapper=("ip", "netns", "exec", netns))
        async with (
            forwarder(netns, torlab.obfs4_bridge.obfs4_port) as obfs4_port,
            forwarder(netns, torlab.bridge.or_port) as vanilla_port,
        ):
            obfs4_line = moved(torlab.obfs4_bridge_line(), obfs4_port)
            vanilla_line = moved(torlab.vanilla_bridge_line(), vanilla_port)
            # control: through the namespace's path the bridge works
            control = await bootstrap(service, "obfs4-ns", obfs4_line)
            assert control.success, control
            blackhole(netns, [obfs4_port, vanilla_port])
            obfs4, vanilla = await asyncio.gather(
                bootstrap(service, "obfs4-ns", obfs4_line, timeout=25.0),
                bootstrap(service, "vanilla-ns", vanilla_line, timeout=25.0),
            )
    assert not obfs4.success and not vanilla.success
    # obfs4: tor reached its local transport; the transport never reached the bridge
    assert obfs4.facts["bootstrap_tag"] in ("conn_pt", "conn_done_pt"), obfs4.facts
    assert obfs4.stage == Stage.CONNECT
    # vanilla: the TCP handshake to the bridge never completed
    assert (vanilla.facts["bootstrap_tag"], vanilla.facts["bootstrap_progress"]) == ("conn", 5), vanilla.facts
    assert vanilla.stage == Stage.CONNECT
    for result in (obfs4, vanilla):
        # silence, no error from tor: a blackhole. With the controls online it is "unreachable" alone,
        # and "blocked" by tcp_blackhole once a reference vantage outside reached the same bridge.
        assert result.failure == Failure.GENERIC_TIMEOUT_ERROR, result
        alone = judge(result, role=None, vantage=VantageState.ONLINE, reference=None)
        assert alone.verdict == Verdict.UNREACHABLE
        reached = Observation(reference="abroad", target=result.target, observed_at=time.time(), success=True)
        referenced = judge(result, role=None, vantage=VantageState.ONLINE, reference=reached)
        assert (referenced.verdict, referenced.technique) == (Verdict.BLOCKED, Technique.TCP_BLACKHOLE)
    published = json.dumps([obfs4.to_dict(), vanilla.to_dict(), control.to_dict()])
    for line in (obfs4_line, vanilla_line):
        for secret in parse_bridge_line(line).sensitive_values():
            assert secret not in published
