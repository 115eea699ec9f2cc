"""meek end to end: obfs4proxy's real meek_lite client, our spec-derived meek server
(``tests/tor/meek_server.py``) in front of the private Tor network's vanilla bridge, and the tor_bridge
probe with its data stage; then a censor that cuts the fronted HTTPS flow after N bytes.

The meek client verifies the server's certificate against the system roots; ``SSL_CERT_FILE`` (honoured by
Go on Linux, inherited by tor and the transport it starts) makes it trust the test CA instead.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import trustme

from reachwatch.config.schema import TorConfig
from reachwatch.config.targets.canary import CanaryConfig
from reachwatch.failures import Failure, Stage, Technique, VantageState, Verdict
from reachwatch.model import Observation, ProbeResult
from reachwatch.tor.service import TorService
from reachwatch.verdict import judge
from tests.proxy.conftest import echo_canary
from tests.tor.meek_server import MeekServer
from tests.tor.test_bootstrap import client_netns, forwarder
from tests.tor.test_bridge_data_cut import _Netns, censor, reply_bytes
from tests.tor.test_bridges import probe_bridge
from tests.tor.torlab import TorLab
from tests.vpn.conftest import NsProber

pytestmark = pytest.mark.slow

STAGE = {"volume": "64KiB", "min_lifetime": "1s", "stall_timeout": "3s"}


@pytest.fixture(scope="module")
def meek_ca(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, Path]]:
    """(the server's certificate chain with key, the CA file the client trusts) for 127.0.0.1."""
    directory = tmp_path_factory.mktemp("meek-ca")
    ca = trustme.CA()
    server_pem, ca_file = directory / "server.pem", directory / "ca.pem"
    ca.issue_cert("127.0.0.1").private_key_and_cert_chain_pem.write_to_path(str(server_pem))
    ca.cert_pem.write_to_path(str(ca_file))
    yield server_pem, ca_file


@pytest.fixture
async def meek(
    torlab: TorLab, meek_ca: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[MeekServer]:
    server_pem, ca_file = meek_ca
    monkeypatch.setenv("SSL_CERT_FILE", str(ca_file))  # tor and obfs4proxy inherit it
    server = MeekServer(("127.0.0.1", torlab.bridge.or_port), server_pem)
    await server.start()
    try:
        yield server
    finally:
        await server.close()


def meek_line(torlab: TorLab, port: int) -> str:
    # the address is a placeholder meek never dials (the url is where it goes); the fingerprint is the
    # bridge behind the meek server
    return f"meek_lite 192.0.2.3:80 {torlab.bridge.fingerprint} url=https://127.0.0.1:{port}/"


async def test_meek_lite_reaches_the_bridge_through_the_meek_server_and_carries_the_data_stage(
    torlab: TorLab, meek: MeekServer
) -> None:
    async with echo_canary() as port:
        config = TorConfig(batch_timeout=40.0, canary=CanaryConfig(host="127.0.0.1", port=port))
        service = TorService.from_config(config, torlab.client_options())
        service.tester.gather_window = 0.2
        try:
            result = await probe_bridge(service, "meek", meek_line(torlab, meek.port), data_stage=STAGE)
        finally:
            await service.close()
    assert result.success, result
    assert result.facts["transport"] == "meek_lite" and result.facts["descriptor"] is True
    assert result.facts["bytes_moved"] == 64 * 1024 + 256
    assert meek.requests > 10 and meek.sessions  # it really went through meek's request/response cycle


@pytest.mark.root
async def test_a_censor_cutting_the_fronted_https_flow_after_n_bytes_is_a_cut_in_the_data_stage(
    torlab: TorLab, meek: MeekServer, tmp_path: Path
) -> None:
    async with echo_canary() as canary:
        with client_netns() as netns:
            async with forwarder(netns, meek.port) as port:
                line = meek_line(torlab, port)
                tor = {
                    "config": {"batch_timeout": "40s", "canary": {"host": "127.0.0.1", "port": canary}},
                    "client_options": torlab.client_options(),
                }
                prober = NsProber(_Netns(netns), tmp_path)

                def probe(volume: str) -> ProbeResult:
                    stage = {**STAGE, "volume": volume, "min_lifetime": "0s"}
                    target = {"kind": "tor_bridge", "name": "meek", "bridge": line, "data_stage": stage}
                    request = {"kind": "tor_bridge", "target": target, "timeout": 60, "tor": tor}
                    return prober.probe_request(request, 60)

                try:
                    censor(netns, f"    tcp sport {port} counter")
                    clean = await asyncio.to_thread(probe, "0")
                    assert clean.success, (clean.failure, clean.stage, clean.facts)
                    limit = reply_bytes(netns) + 40_000  # the meek server's HTTPS bytes, headers and all
                    censor(netns, f"    tcp sport {port} ct reply bytes > {limit} drop")
                    cut = await asyncio.to_thread(probe, "256KiB")
                finally:
                    prober.close()
    assert cut.facts["descriptor"] is True, cut
    assert (cut.failure, cut.stage) == (Failure.TRANSFER_INCOMPLETE, Stage.TRANSFER), cut
    moved = cut.facts["cut_after_bytes"]
    # the data stage never got more than the censor let through after the measured start; how much less
    # this test cannot know: HTTP responses, TLS records and Tor cells wrap the payload, and tor's own
    # directory traffic shares the flow and varies from one fresh tor to the next (this network's
    # consensus is renewed every 10 s)
    assert isinstance(moved, int) and 0 < moved < 40_000, moved
    reference = Observation(
        reference="abroad", target="meek", observed_at=cut.started_at, success=True,
        facts={"bytes_moved": 256 * 1024, "throughput_bps": 1e6},
    )  # fmt: skip
    outcome = judge(cut, role=None, vantage=VantageState.ONLINE, reference=reference)
    assert (outcome.verdict, outcome.technique) == (Verdict.BLOCKED, Technique.FLOW_CUT)
