"""The openvpn probe against real openvpn servers on 127.0.0.1: every wrapping, both transports."""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Any

import pytest

from reachwatch.failures import Failure, Stage, Technique
from reachwatch.formats.openvpn_packets import (
    P_CONTROL_HARD_RESET_SERVER_V2,
    KeyFormatError,
    PlainWrapper,
    TlsAuthWrapper,
    TlsCryptWrapper,
    control_body,
    opcode_byte,
    parse_static_key,
)
from reachwatch.probes import openvpn
from reachwatch.probes.base import run_probe
from tests.netlab import SERVER_IP, Lab
from tests.vpn.conftest import (
    NsProber,
    Pki,
    free_port,
    hostile_udp,
    make_ctx,
    start_openvpn_server,
    start_udp_echo,
    wait_tcp_listen,
)

pytestmark = pytest.mark.slow


def target(port: int, proto: str = "udp", **kw: Any) -> openvpn.OpenVpnTarget:
    return openvpn.OpenVpnTarget(kind="openvpn", name="ovpn", host="127.0.0.1", port=port, proto=proto, **kw)


async def probe(t: openvpn.OpenVpnTarget, timeout: float = 3.0, name: str = "ovpn") -> Any:
    return await run_probe(openvpn.SPEC, t, make_ctx(name, timeout))


MODES: dict[str, tuple[list[str], dict[str, Any]]] = {
    "plain": ([], {}),
    "tls-auth-dir": (["--tls-auth", "{d}/ta.key", "0"], {"tls_auth_file": "{d}/ta.key", "key_direction": 1}),
    "tls-auth-bidir-sha256": (
        ["--tls-auth", "{d}/ta.key", "--auth", "SHA256"],
        {"tls_auth_file": "{d}/ta.key", "auth": "SHA256"},
    ),
    "tls-crypt": (["--tls-crypt", "{d}/ta.key"], {"tls_crypt_file": "{d}/ta.key"}),
    "tls-crypt-v2": (["--tls-crypt-v2", "{d}/v2s.key"], {"tls_crypt_v2_file": "{d}/v2c.key"}),
}


def _fill(mode: str, d: Path) -> tuple[list[str], dict[str, Any]]:
    args, fields = MODES[mode]
    return [a.format(d=d) for a in args], {
        k: v.format(d=d) if isinstance(v, str) else v for k, v in fields.items()
    }


@pytest.mark.parametrize("proto", ["udp", "tcp"])
@pytest.mark.parametrize("mode", list(MODES))
async def test_real_server_answers_the_client_reset(
    openvpn_server: Any, ovpn_pki: Pki, mode: str, proto: str
) -> None:
    server_args, fields = _fill(mode, ovpn_pki.dir)
    server = openvpn_server(proto, server_args)
    result = await probe(target(server.port, proto, **fields))
    assert result.success, (result, server.log.read_text()[-1500:])
    assert result.facts["server_reset"] is True
    assert (
        result.facts["mode"]
        == openvpn.OpenVpnTarget.model_validate(
            {"kind": "openvpn", "name": "x", "host": "h", **fields}
        ).mode()
    )


WRONG_KEYS: dict[str, tuple[list[str], dict[str, Any]]] = {
    "tls-auth": (["--tls-auth", "{d}/ta.key", "0"], {"tls_auth_file": "{d}/other.key", "key_direction": 1}),
    "tls-auth-missing": (["--tls-auth", "{d}/ta.key", "0"], {}),
    "tls-crypt": (["--tls-crypt", "{d}/ta.key"], {"tls_crypt_file": "{d}/other.key"}),
    "tls-crypt-v2": (["--tls-crypt-v2", "{d}/v2s.key"], {"tls_crypt_v2_file": "{d}/v2c-other.key"}),
}


@pytest.mark.parametrize("mode", list(WRONG_KEYS))
async def test_wrong_key_is_silence_without_blocking_evidence(
    openvpn_server: Any, ovpn_pki: Pki, mode: str
) -> None:
    args, fields = WRONG_KEYS[mode]
    server = openvpn_server("udp", [a.format(d=ovpn_pki.dir) for a in args])
    fields = {k: v.format(d=ovpn_pki.dir) if isinstance(v, str) else v for k, v in fields.items()}
    result = await probe(target(server.port, **fields), timeout=1.5, name=f"wrong-{mode}")
    assert not result.success
    assert (result.failure, result.stage) == (Failure.GENERIC_TIMEOUT_ERROR, Stage.PROTOCOL_HANDSHAKE)
    assert result.evidence is None


async def test_wrong_key_over_tcp_fails_at_the_handshake_not_blocked(
    openvpn_server: Any, ovpn_pki: Pki
) -> None:
    server = openvpn_server("tcp", ["--tls-auth", str(ovpn_pki.ta_key), "0"])
    t = target(server.port, "tcp", tls_auth_file=str(ovpn_pki.dir / "other.key"), key_direction=1)
    result = await probe(t, timeout=1.5, name="wrong-tcp")
    assert not result.success
    assert result.stage == Stage.PROTOCOL_HANDSHAKE
    assert result.failure in (Failure.GENERIC_TIMEOUT_ERROR, Failure.EOF_ERROR, Failure.CONNECTION_RESET)
    assert result.evidence is None


async def test_closed_udp_port_is_refused_not_silence() -> None:
    result = await probe(target(free_port()), timeout=1.5)
    assert (result.failure, result.stage) == (Failure.CONNECTION_REFUSED, Stage.PROTOCOL_HANDSHAKE)


async def test_tls_auth_reply_signed_with_the_wrong_direction_is_rejected(
    openvpn_server: Any, ovpn_pki: Pki
) -> None:
    """The server signs with slot 0 (direction 0); a client configured bidirectional expects slot 0 too
    but signs with slot 0, which the server rejects: no answer, and nothing forged is accepted."""
    server = openvpn_server("udp", ["--tls-auth", str(ovpn_pki.ta_key), "0"])
    result = await probe(target(server.port, tls_auth_file=str(ovpn_pki.ta_key)), timeout=1.5, name="dir")
    assert not result.success
    assert result.evidence is None


async def test_key_file_is_read_off_the_event_loop(ovpn_pki: Pki, monkeypatch: pytest.MonkeyPatch) -> None:
    """Key files are read at every attempt; a slow disk must not stall every other probe's loop."""
    readers: list[int] = []
    real = openvpn.read_secret_file

    def recording(*args: Any, **kwargs: Any) -> bytes:
        readers.append(threading.get_ident())
        return real(*args, **kwargs)

    monkeypatch.setattr(openvpn, "read_secret_file", recording)
    t = target(free_port(), tls_auth_file=str(ovpn_pki.ta_key), key_direction=1)
    result = await probe(t, timeout=1.5, name="offloop")
    assert (result.failure, result.stage) == (Failure.CONNECTION_REFUSED, Stage.PROTOCOL_HANDSHAKE)
    assert readers and threading.get_ident() not in readers


def test_static_key_parse_rejects_garbage() -> None:
    with pytest.raises(KeyFormatError):
        parse_static_key("-----BEGIN OpenVPN Static key V1-----\nzz\n-----END OpenVPN Static key V1-----")


@pytest.mark.root
async def test_censor_dropping_0x38_is_protocol_blocking_while_control_works(
    lab: Lab, prober: NsProber, ovpn_pki: Pki, tmp_path: Path
) -> None:
    server = start_openvpn_server(
        ovpn_pki, tmp_path, "udp", ["--tls-auth", str(ovpn_pki.ta_key), "0"],
        netns=lab.server.name, local=SERVER_IP, port=1194,
    )  # fmt: skip
    try:
        start_udp_echo(lab, SERVER_IP, 7)
        t = {
            "name": "ovpn-censored", "host": SERVER_IP, "port": server.port,
            "tls_auth_file": str(ovpn_pki.ta_key), "key_direction": 1, "retransmit": "1s",
            "control": {"host": SERVER_IP, "port": 7},
        }  # fmt: skip
        before = prober.probe("openvpn", t)
        assert before.success, before
        # the first payload byte of a UDP datagram (after the 8-byte UDP header) is the opcode: 0x38
        lab.censor(f"udp dport {server.port} @th,64,8 0x38 drop")
        blocked = prober.probe("openvpn", t, timeout=2.0)
        assert (blocked.failure, blocked.stage) == (
            Failure.GENERIC_TIMEOUT_ERROR,
            Stage.PROTOCOL_HANDSHAKE,
        )
        assert blocked.facts["control_answered"] is True
        assert blocked.evidence == Technique.PROTOCOL_BLOCKING
        # the same censor, a target that never answered us (wrong key): silence, but no evidence
        stranger = {**t, "name": "ovpn-never", "tls_auth_file": str(ovpn_pki.dir / "other.key")}
        lab.uncensor()
        never = prober.probe("openvpn", stranger, timeout=2.0)
        assert never.failure == Failure.GENERIC_TIMEOUT_ERROR
        assert never.evidence is None
    finally:
        server.stop()


@pytest.mark.root
async def test_tcp_censor_dropping_the_reset_segment_is_protocol_blocking(
    lab: Lab, prober: NsProber, ovpn_pki: Pki, tmp_path: Path
) -> None:
    """Over TCP the connect itself is the same-path control: it works, the reset goes unanswered."""
    server = start_openvpn_server(
        ovpn_pki, tmp_path, "tcp", ["--tls-auth", str(ovpn_pki.ta_key), "0"],
        netns=lab.server.name, local=SERVER_IP, port=1194,
    )  # fmt: skip
    try:
        t = {
            "name": "ovpn-tcp", "host": SERVER_IP, "port": 1194, "proto": "tcp",
            "tls_auth_file": str(ovpn_pki.ta_key), "key_direction": 1,
        }  # fmt: skip
        before = prober.probe("openvpn", t)
        assert before.success, before
        wait_tcp_listen(lab.server, 1194)  # the p2p server re-listens after our connection closed
        # byte 2 of the TCP payload (after the 2-byte length) is the opcode
        lab.censor("tcp dport 1194 @ih,16,8 0x38 drop")
        blocked = prober.probe("openvpn", t, timeout=2.0)
        assert (blocked.failure, blocked.stage) == (
            Failure.GENERIC_TIMEOUT_ERROR,
            Stage.PROTOCOL_HANDSHAKE,
        ), blocked
        assert blocked.facts["tcp_connected"] is True
        assert blocked.evidence == Technique.PROTOCOL_BLOCKING
    finally:
        server.stop()


@pytest.mark.root
@pytest.mark.parametrize("proto", ["udp", "tcp"])
async def test_multi_client_server_mode_answers_every_wrapping(
    lab: Lab, prober: NsProber, ovpn_pki: Pki, tmp_path: Path, proto: str
) -> None:
    """``--server`` mode on a tun device (what providers run; OpenVPN 2.6 answers resets statelessly)."""
    for n, mode in enumerate(MODES):
        server_args, fields = _fill(mode, ovpn_pki.dir)
        server = start_openvpn_server(
            ovpn_pki, tmp_path, proto, server_args, netns=lab.server.name, local=SERVER_IP,
            port=2000 + n, multi=True,
        )  # fmt: skip
        try:
            t = {"name": f"m-{mode}", "host": SERVER_IP, "port": server.port, "proto": proto, **fields}
            result = prober.probe("openvpn", t)
            assert result.success, (mode, result)
        finally:
            server.stop()


def _forged_reset(wrapper: Any) -> Any:
    """A peer that answers every client reset with a well-formed server reset ACKing it, under ``wrapper``."""

    def reply(data: bytes) -> list[bytes]:
        sid = data[1:9]
        body = control_body([0], sid, 0)
        return [wrapper.wrap(opcode_byte(P_CONTROL_HARD_RESET_SERVER_V2), os.urandom(8), body, 1, 0)]

    return reply


async def test_plain_mode_accepts_a_well_formed_reset_reply() -> None:
    """The other side of the forgery tests: the same bytes are what a plain server sends."""
    async with hostile_udp(_forged_reset(PlainWrapper())) as port:
        result = await probe(target(port), timeout=1.5)
    assert result.success


@pytest.mark.parametrize("mode", ["tls-auth", "tls-crypt"])
async def test_reply_forged_without_the_key_never_counts(ovpn_pki: Pki, mode: str) -> None:
    """A peer (or a censor's decoy) answering with a reset signed by another key, or unsigned."""
    other = parse_static_key(ovpn_pki.other_key.read_text())
    forger = TlsAuthWrapper(other, 0) if mode == "tls-auth" else TlsCryptWrapper(other)
    fields: dict[str, Any] = (
        {"tls_auth_file": str(ovpn_pki.ta_key), "key_direction": 1}
        if mode == "tls-auth"
        else {"tls_crypt_file": str(ovpn_pki.ta_key)}
    )
    for reply in (_forged_reset(forger), _forged_reset(PlainWrapper())):
        async with hostile_udp(reply) as port:
            result = await probe(target(port, **fields), timeout=1.5)
        assert not result.success
        assert (result.failure, result.stage) == (Failure.PROTOCOL_ERROR, Stage.PROTOCOL_HANDSHAKE)
        assert result.facts["rejected_replies"] >= 1


async def test_garbage_flood_is_a_bounded_protocol_error() -> None:
    async with hostile_udp(lambda data: [os.urandom(200) for _ in range(100)]) as port:
        result = await probe(target(port), timeout=2.0)
    assert (result.failure, result.stage) == (Failure.PROTOCOL_ERROR, Stage.PROTOCOL_HANDSHAKE)
