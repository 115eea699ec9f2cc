"""Proxies behind the test censor (tests.netlab): a censor that drops only the SOCKS5 greeting is told from a
dead proxy by the same-port/other-payload control, and only for a proxy that worked before."""

from __future__ import annotations

import pytest

from reachwatch.failures import Failure, Stage, Technique
from tests.netlab import SERVER_IP, Lab
from tests.proxy.conftest import CANARY_PORT, SOCKS_PORT, ClientProber

pytestmark = [pytest.mark.root, pytest.mark.slow]

TARGET = {
    "name": "socks-abroad",
    "host": SERVER_IP,
    "port": SOCKS_PORT,
    "canary": {"host": SERVER_IP, "port": CANARY_PORT},
    "data_stage": {"volume": "16KiB", "min_lifetime": "0s"},
}
# the first payload byte of every SOCKS5 greeting is the version, 0x05; nothing else is touched
DROP_SOCKS5_GREETING = f"ip daddr {SERVER_IP} tcp dport {SOCKS_PORT} @ih,0,8 0x05 drop"


def test_dropped_socks5_greeting_is_protocol_blocking_when_other_payload_gets_through(
    proxy_lab: Lab, prober: ClientProber
) -> None:
    before = prober.probe("socks5", TARGET, 4)
    assert before.success, before
    proxy_lab.censor(DROP_SOCKS5_GREETING)
    result = prober.probe("socks5", TARGET, 4)
    assert (result.failure, result.stage) == (Failure.GENERIC_TIMEOUT_ERROR, Stage.PROTOCOL_HANDSHAKE)
    assert result.facts["other_payload_reaction"] is True
    assert result.evidence == Technique.PROTOCOL_BLOCKING


def test_dead_proxy_address_gives_no_blocking_evidence(proxy_lab: Lab, prober: ClientProber) -> None:
    assert prober.probe("socks5", TARGET, 4).success
    # everything to the proxy port dropped after the handshake packets: the control fails too
    proxy_lab.censor(f"ip daddr {SERVER_IP} tcp dport {SOCKS_PORT} ct state established @ih,0,8 != 0 drop")
    result = prober.probe("socks5", TARGET, 4)
    assert (result.failure, result.stage) == (Failure.GENERIC_TIMEOUT_ERROR, Stage.PROTOCOL_HANDSHAKE)
    assert result.facts["other_payload_reaction"] is False
    assert result.evidence is None


def test_silence_without_an_earlier_success_attributes_nothing(proxy_lab: Lab, prober: ClientProber) -> None:
    proxy_lab.censor(DROP_SOCKS5_GREETING)
    result = prober.probe("socks5", TARGET, 4)
    assert (result.failure, result.stage) == (Failure.GENERIC_TIMEOUT_ERROR, Stage.PROTOCOL_HANDSHAKE)
    assert result.facts["other_payload_reaction"] is True  # the path is fine, but was it ever SOCKS5?
    assert result.evidence is None
