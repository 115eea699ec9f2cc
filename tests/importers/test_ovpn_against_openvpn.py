"""An imported ``.ovpn`` with inline keys probes a real openvpn server: the generated entry references the
``.ovpn`` itself and the openvpn probe reads the inline block out of it."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

import pytest

from reachwatch.config.load import parse_config
from reachwatch.importers import import_files
from reachwatch.probes import PROBES
from reachwatch.probes.base import ProbeContext, run_probe
from tests.servers import hold_open, tcp_server
from tests.vpn.conftest import Pki, ovpn_pki, start_openvpn_server

__all__ = ["ovpn_pki"]  # the session fixture, shared with tests/vpn

pytestmark = pytest.mark.slow


@pytest.mark.parametrize(
    ("proto", "server_args", "block", "key"),
    [
        ("udp", ["--tls-auth", "{ta}", "0"], "tls-auth", "ta.key"),
        ("tcp", ["--tls-crypt-v2", "{v2s}"], "tls-crypt-v2", "v2c.key"),
    ],
)
async def test_imported_ovpn_with_inline_key_reaches_real_server(
    ovpn_pki: Pki, tmp_path: Path, proto: str, server_args: list[str], block: str, key: str
) -> None:
    args = [a.format(ta=ovpn_pki.dir / "ta.key", v2s=ovpn_pki.dir / "v2s.key") for a in server_args]
    server = start_openvpn_server(ovpn_pki, tmp_path, proto, args)
    try:
        ovpn = tmp_path / "client.ovpn"
        ovpn.write_text(
            f"client\ndev tun\nproto {proto}\nremote 127.0.0.1 {server.port}\nkey-direction 1\n"
            f"<{block}>\n{(ovpn_pki.dir / key).read_text()}</{block}>\n"
        )
        ovpn.chmod(0o600)
        text = import_files([str(ovpn)])
        (target,) = parse_config(text, "imported.yaml", tmp_path).config.targets
        ctx = ProbeContext(target=target.name, kind=target.kind, timeout=5.0, base_dir=tmp_path)
        result = await run_probe(PROBES["openvpn"], target, ctx)
    finally:
        server.stop()
    assert result.success, result


async def test_one_off_check_of_a_downloaded_ovpn_reaches_the_real_server(
    ovpn_pki: Pki, tmp_path: Path
) -> None:
    """`reachwatch check client.ovpn`: no config entry, a group-readable file as a browser saves it."""
    server = start_openvpn_server(
        ovpn_pki, tmp_path, "udp", ["--tls-auth", str(ovpn_pki.dir / "ta.key"), "0"]
    )
    try:
        ovpn = tmp_path / "client.ovpn"
        ovpn.write_text(
            f"client\ndev tun\nproto udp\nremote 127.0.0.1 {server.port}\nkey-direction 1\n"
            f"<tls-auth>\n{(ovpn_pki.dir / 'ta.key').read_text()}</tls-auth>\n"
        )
        ovpn.chmod(0o644)
        async with tcp_server(hold_open) as control:
            cfg = tmp_path / "c.yaml"
            cfg.write_text(
                "scheduler: {min_destination_spacing: 1ms}\n"
                "controls: {international: [{name: abroad, kind: tcp, host: 127.0.0.1,"
                f" port: {control}}}]}}\n"
            )
            proc = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "reachwatch",
                "check",
                "--config",
                str(cfg),
                "--json",
                str(ovpn),
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
            )
            out, err = await asyncio.wait_for(proc.communicate(), 120)
    finally:
        server.stop()
    assert proc.returncode == 0, err.decode()
    rows = json.loads(out)["targets"]
    assert [(r["name"], r["kind"], r["verdict"]) for r in rows] == [
        ("abroad", "tcp", "reachable"),
        ("client", "openvpn", "reachable"),
    ]
