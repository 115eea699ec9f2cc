"""CPU and wall per attempt with the data stage on, per kind: the cost of "reachable means usable".

Runs the real probes against real servers: microsocks, tinyproxy, ss-server and an echo canary on
loopback; wireguard-go, openvpn (``--server``, tun) and ocserv in a network namespace lab
(``tests/netlab.py``, root), the probes in the lab's client namespace (this process enters it). Each kind:
``--n`` attempts one after the other, with the default data stage's 64 KiB volume and ``--lifetime``
seconds of minimum lifetime (default 0: the volume's own cost; the default 10 s lifetime adds 10 s of
wall and one 256-byte echo a second, measured by ``--lifetime 10``).

CPU is this process's plus its waited-for children's (the openvpn client and its namespace helper), from
getrusage; the servers are not counted.

    sudo .venv/bin/python bench/data_stage.py [--n 20] [--lifetime 0] [--kinds socks5,wireguard,...]
"""

from __future__ import annotations

import argparse
import asyncio
import atexit
import ctypes
import os
import resource
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import trustme
from tests.netlab import SERVER_IP, Lab
from tests.proxy.conftest import echo_canary, microsocks, ss_server, tinyproxy
from tests.servers import LOOPBACK
from tests.vpn.conftest import (
    TCP_ECHO,
    WG_PEER_INSIDE,
    WG_SERVER_INSIDE,
    make_pki,
    start_openvpn_server,
    start_wireguard,
    wait_tcp_listen,
)

from reachwatch.probes import PROBES
from reachwatch.probes.base import ProbeContext, run_probe

CLONE_NEWNET = 0x40000000
LOOPBACK_KINDS = ("socks5", "http_proxy", "shadowsocks")
LAB_KINDS = ("wireguard", "openvpn_tunnel", "openconnect")


def cpu_seconds() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


async def measure(kind: str, target: dict[str, Any], n: int, base_dir: Path) -> None:
    spec = PROBES[kind]
    model = spec.target_model.model_validate({"name": "bench", "kind": kind, **target})
    failures, moved = 0, 0
    first = await run_probe(spec, model, ProbeContext("bench", kind, 60.0, base_dir=base_dir))  # warm-up
    if not first.success:
        print(f"| {kind} | warm-up failed: {first.failure} at {first.stage} {first.facts} |")
        return
    cpu0, wall0 = cpu_seconds(), time.perf_counter()
    for _ in range(n):
        result = await run_probe(spec, model, ProbeContext("bench", kind, 60.0, base_dir=base_dir))
        failures += not result.success
        moved += int(result.facts.get("bytes_moved", 0) or 0)
    cpu, wall = cpu_seconds() - cpu0, time.perf_counter() - wall0
    per = f"{wall / n * 1000:.0f} | {cpu / n * 1000:.1f} | {moved / n / 1024:.1f}"
    print(f"| {kind} | {n} | {per} | {failures} |")


def stage(lifetime: float) -> dict[str, Any]:
    return {"volume": "64KiB", "min_lifetime": lifetime, "stall_timeout": "5s"}


async def loopback_kinds(args: argparse.Namespace, tmp: Path) -> None:
    key = tmp / "ss.key"
    key.write_text("bench key")
    key.chmod(0o600)
    with ExitStack() as stack:
        async with echo_canary() as canary_port:
            canary = {"host": LOOPBACK, "port": canary_port}
            ss_port = stack.enter_context(ss_server("chacha20-ietf-poly1305", "bench key"))
            targets: dict[str, dict[str, Any]] = {
                "socks5": {"host": LOOPBACK, "port": stack.enter_context(microsocks())},
                "http_proxy": {"host": LOOPBACK, "port": stack.enter_context(tinyproxy(tmp, canary_port))},
                "shadowsocks": {
                    "host": LOOPBACK,
                    "port": ss_port,
                    "method": "chacha20-ietf-poly1305",
                    "password_file": str(key),
                },
            }
            for kind in args.kinds:
                if kind in targets:
                    target = {**targets[kind], "canary": canary, "data_stage": stage(args.lifetime)}
                    await measure(kind, target, args.n, tmp)


def enter_netns(name: str) -> None:
    """Make this (still single-threaded) process live in the lab's client namespace."""
    libc = ctypes.CDLL(None, use_errno=True)
    fd = os.open(f"/var/run/netns/{name}", os.O_RDONLY)
    try:
        if libc.setns(fd, CLONE_NEWNET) != 0:
            raise OSError(ctypes.get_errno(), "setns")
    finally:
        os.close(fd)


def lab_servers(lab: Lab, tmp: Path) -> dict[str, dict[str, Any]]:
    """wireguard-go, openvpn --server and ocserv in the server namespace, and an echo canary."""
    lab.server.popen(["python3", "-c", TCP_ECHO, "0.0.0.0", "7007"])
    wait_tcp_listen(lab.server, 7007)
    wg = start_wireguard(lab, tmp)
    (tmp / "pki").mkdir()
    pki = make_pki(tmp / "pki")
    server = start_openvpn_server(
        pki, tmp, "udp", [], netns=lab.server.name, local=SERVER_IP, port=1194, multi=True
    )
    atexit.register(server.stop)
    ovpn = tmp / "user.ovpn"
    ovpn.write_text(
        f"client\ndev tun\n<ca>\n{pki.ca_crt.read_text()}</ca>\n<cert>\n{pki.client_crt.read_text()}</cert>\n"
        f"<key>\n{pki.client_key.read_text()}</key>\n"
    )
    ovpn.chmod(0o600)
    ca = trustme.CA()
    issued = ca.issue_cert(SERVER_IP)
    cert, key, ca_file = tmp / "oc-cert.pem", tmp / "oc-key.pem", tmp / "oc-ca.pem"
    issued.cert_chain_pems[0].write_to_path(str(cert))
    issued.private_key_pem.write_to_path(str(key))
    ca.cert_pem.write_to_path(str(ca_file))
    passwd = tmp / "ocpasswd"
    account = ["ocpasswd", "-c", str(passwd), "probe"]
    subprocess.run(account, input=b"pw\npw\n", check=True, capture_output=True)
    conf = tmp / "ocserv.conf"
    conf.write_text(
        f'auth = "plain[passwd={passwd}]"\ntcp-port = 443\nlisten-host = {SERVER_IP}\n'
        f"socket-file = {tmp / 'ocserv.sock'}\nserver-cert = {cert}\nserver-key = {key}\n"
        f"pid-file = {tmp / 'ocserv.pid'}\nisolate-workers = false\nuse-occtl = false\nmax-clients = 64\n"
        "max-same-clients = 0\nmax-ban-score = 0\ndevice = vpns\nipv4-network = 192.168.99.0/24\n"
    )
    lab.server.popen(["ocserv", "-f", "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_tcp_listen(lab.server, 443)
    password = tmp / "probe.pass"
    password.write_text("pw\n")
    password.chmod(0o600)
    return {
        "wireguard": {
            "host": SERVER_IP, "port": wg.port, "public_key": wg.public_key,
            "private_key_file": str(wg.client_key_file), "tunnel_address": WG_PEER_INSIDE,
            "ping_address": WG_SERVER_INSIDE,
        },
        "openvpn_tunnel": {
            "host": SERVER_IP, "port": 1194, "config_file": str(ovpn),
            "canary": {"host": "10.231.0.1", "port": 7007},
        },
        "openconnect": {
            "host": SERVER_IP, "ca_file": str(ca_file), "username": "probe", "password_file": str(password),
            "ping_address": "192.168.99.1",
        },
    }  # fmt: skip


async def lab_kinds(args: argparse.Namespace, targets: dict[str, dict[str, Any]], tmp: Path) -> None:
    for kind in args.kinds:
        if kind in targets:
            await measure(kind, {**targets[kind], "data_stage": stage(args.lifetime)}, args.n, tmp)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=20)
    parser.add_argument("--lifetime", type=float, default=0.0)
    parser.add_argument("--kinds", default=",".join((*LOOPBACK_KINDS, *LAB_KINDS)))
    args = parser.parse_args()
    args.kinds = args.kinds.split(",")
    os.umask(0o077)
    print(f"n={args.n} volume=64KiB min_lifetime={args.lifetime:g}s\n")
    print("| kind | attempts | wall ms/attempt | CPU ms/attempt | KiB moved/attempt | failures |")
    print("|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory(prefix="rw-bench-data-") as name:
        tmp = Path(name)
        asyncio.run(loopback_kinds(args, tmp))
        if not any(k in LAB_KINDS for k in args.kinds):
            return
        with Lab("bdat") as lab:
            targets = lab_servers(lab, tmp)
            enter_netns(lab.client.name)
            asyncio.run(lab_kinds(args, targets, tmp))


if __name__ == "__main__":
    main()
