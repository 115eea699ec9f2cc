"""A bridge whose descriptor comes back but whose data is cut is not reachable, and says where it stopped.

The supervised tor, its SocksPort and the probe run in a client network namespace (``tests.vpn.nsprobe``
as the worker); the vanilla bridge of the private Tor network (on the host's loopback) is reached
through a forwarder whose listening socket lives in the namespace, and the censor is an nftables rule on
that path: it drops the bridge's side of the flow once it carried N bytes (``ct reply bytes``).
"""

from __future__ import annotations

import asyncio
import subprocess
from pathlib import Path
from typing import Any

import pytest

from reachwatch.failures import Failure, Stage, Technique, VantageState, Verdict
from reachwatch.model import Observation, ProbeResult
from reachwatch.verdict import judge
from tests.proxy.conftest import echo_canary
from tests.tor.test_bootstrap import client_netns, forwarder, moved
from tests.tor.torlab import TorLab
from tests.vpn.conftest import NsProber

pytestmark = [pytest.mark.root, pytest.mark.slow]


class _Netns:
    """What ``NsProber`` needs of a namespace: ``popen`` inside it."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.procs: list[subprocess.Popen[bytes]] = []

    def popen(self, argv: list[str], **kwargs: Any) -> subprocess.Popen[bytes]:
        proc = subprocess.Popen(["ip", "netns", "exec", self.name, *argv], **kwargs)
        self.procs.append(proc)
        return proc


def censor(netns: str, rules: str) -> None:
    ruleset = (
        "table inet rwcut\ndelete table inet rwcut\n"
        f"table inet rwcut {{\n  chain out {{\n    type filter hook output priority 0;\n{rules}\n  }}\n}}\n"
    )
    subprocess.run(["ip", "netns", "exec", netns, "nft", "-f", "-"], input=ruleset, text=True, check=True)


def reply_bytes(netns: str) -> int:
    listed = subprocess.run(
        ["ip", "netns", "exec", netns, "nft", "list", "table", "inet", "rwcut"],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    return int(listed.split("bytes ")[1].split()[0])


async def test_descriptor_through_but_data_cut_after_n_bytes_is_a_flow_cut_with_a_reference(
    torlab: TorLab, tmp_path: Path
) -> None:
    async with echo_canary() as canary:
        with client_netns() as netns:
            async with forwarder(netns, torlab.bridge.or_port) as port:
                line = moved(torlab.vanilla_bridge_line(), port)
                tor = {
                    "config": {"batch_timeout": "30s", "canary": {"host": "127.0.0.1", "port": canary}},
                    "client_options": torlab.client_options(),
                }
                prober = NsProber(_Netns(netns), tmp_path)

                def probe(volume: str) -> ProbeResult:
                    stage = {"volume": volume, "min_lifetime": "0s", "stall_timeout": "3s"}
                    target = {"kind": "tor_bridge", "name": "bridge", "bridge": line, "data_stage": stage}
                    request = {"kind": "tor_bridge", "target": target, "timeout": 50, "tor": tor}
                    return prober.probe_request(request, 50)

                try:
                    # what the descriptor, the directory documents and a circuit cost on this path
                    censor(netns, f"    tcp sport {port} counter")
                    clean = await asyncio.to_thread(probe, "0")
                    assert clean.success, (clean.failure, clean.stage, clean.facts)
                    handshake = reply_bytes(netns)
                    limit = handshake + 30_000
                    censor(netns, f"    tcp sport {port} ct reply bytes > {limit} drop")
                    cut = await asyncio.to_thread(probe, "128KiB")
                finally:
                    prober.close()
    assert cut.facts["descriptor"] is True, cut  # the censor let the descriptor through
    assert (cut.failure, cut.stage) == (Failure.TRANSFER_INCOMPLETE, Stage.TRANSFER), cut
    moved_bytes = cut.facts["cut_after_bytes"]
    # the data stage never got more than the censor let through in all; how much less this test cannot
    # know: the stream shares the bridge's connection with tor's own traffic, which varies from one fresh
    # tor to the next (a later tor starts from the directory its predecessor left, so it can fetch less
    # than the clean run measured; this network's consensus is renewed every 10 s; channel padding while
    # idle), and Tor cells carry 498 of 514 bytes as data
    assert isinstance(moved_bytes, int) and 0 < moved_bytes < limit, (moved_bytes, limit)
    # the verdict: unreachable alone; with a reference that moved the volume through this bridge, flow_cut
    alone = judge(cut, role=None, vantage=VantageState.ONLINE, reference=None)
    assert alone.verdict == Verdict.UNREACHABLE
    reference = Observation(
        reference="abroad", target="bridge", observed_at=cut.started_at, success=True,
        facts={"bytes_moved": 128 * 1024, "throughput_bps": 1e6},
    )  # fmt: skip
    outcome = judge(cut, role=None, vantage=VantageState.ONLINE, reference=reference)
    assert (outcome.verdict, outcome.technique) == (Verdict.BLOCKED, Technique.FLOW_CUT)
