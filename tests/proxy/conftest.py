"""Real proxy servers for the proxy tests (microsocks, dante, tinyproxy, ss-server) and echo canaries.

Each daemon runs on 127.0.0.1 with a free port, in the foreground, and is killed (by its own pid) at
teardown. The canary is an asyncio echo server: it stands in for the operator's echo service abroad.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path

import pytest

from reachwatch.model import ProbeResult
from tests.netlab import SERVER_IP, Lab
from tests.servers import LOOPBACK, free_port, tcp_server
from tests.vpn.conftest import ocserv_config


def wait_listening(port: int, proc: subprocess.Popen[bytes], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{proc.args!r} exited with {proc.returncode}")
        with socket.socket() as s:
            if s.connect_ex((LOOPBACK, port)) == 0:
                return
        time.sleep(0.02)
    raise RuntimeError(f"{proc.args!r} did not listen on {port}")


@contextmanager
def daemon(argv: list[str], port: int) -> Iterator[subprocess.Popen[bytes]]:
    """Run one server process until the block ends; kill it by pid."""
    if shutil.which(argv[0]) is None:
        pytest.skip(f"{argv[0]} not installed")
    # output goes to a file, never a pipe: nobody reads a pipe during the test, and a verbose server
    # (ss-server -v logs every connection) blocks for good once 64 KiB are buffered
    log = tempfile.TemporaryFile()  # noqa: SIM115 - closed in the finally below, after the process
    proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)
    try:
        try:
            wait_listening(port, proc)
        except RuntimeError as exc:
            log.seek(0)
            raise RuntimeError(f"{exc}: {log.read()[-2000:].decode(errors='replace')}") from None
        yield proc
    finally:
        # SIGTERM first: ocserv forks a sec-mod that outlives a SIGKILLed parent
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
        log.close()


@contextmanager
def microsocks(user: str | None = None, password: str | None = None) -> Iterator[int]:
    port = free_port()
    argv = ["microsocks", "-i", LOOPBACK, "-p", str(port)]
    if user is not None:
        argv += ["-u", user, "-P", password or ""]
    with daemon(argv, port):
        yield port


@contextmanager
def danted(tmp: Path, blocked_port: int) -> Iterator[int]:
    """dante with a ruleset that refuses one destination port (reply 02, "not allowed by ruleset")."""
    port = free_port()
    conf = tmp / "danted.conf"
    conf.write_text(
        f"""logoutput: stderr
internal: {LOOPBACK} port = {port}
external: {LOOPBACK}
clientmethod: none
socksmethod: none
user.privileged: root
user.unprivileged: nobody
client pass {{ from: 127.0.0.0/8 to: 0.0.0.0/0 }}
socks block {{ from: 0.0.0.0/0 to: 0.0.0.0/0 port = {blocked_port} }}
socks pass {{ from: 127.0.0.0/8 to: 127.0.0.0/8 }}
"""
    )
    with daemon(["danted", "-f", str(conf), "-N", "1"], port):
        yield port


@contextmanager
def tinyproxy(tmp: Path, connect_port: int, basic_auth: tuple[str, str] | None = None) -> Iterator[int]:
    """tinyproxy allowing CONNECT only to ``connect_port`` (ConnectPort), optionally with BasicAuth."""
    port = free_port()
    conf = tmp / f"tinyproxy-{port}.conf"
    lines = [
        f"Port {port}",
        f"Listen {LOOPBACK}",
        "Timeout 30",
        "MaxClients 32",
        "Allow 127.0.0.1",
        f"ConnectPort {connect_port}",
        "LogLevel Warning",
        f'PidFile "{tmp / f"tinyproxy-{port}.pid"}"',
    ]
    if os.geteuid() == 0:
        lines += ["User nobody", "Group nogroup"]
    if basic_auth:
        lines.append(f"BasicAuth {basic_auth[0]} {basic_auth[1]}")
    conf.write_text("\n".join(lines) + "\n")
    with daemon(["tinyproxy", "-d", "-c", str(conf)], port):
        yield port


async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    while data := await reader.read(65536):
        writer.write(data)
        await writer.drain()


@asynccontextmanager
async def echo_canary() -> AsyncIterator[int]:
    async with tcp_server(echo) as port:
        yield port


def cut_after(limit: int):  # type: ignore[no-untyped-def]
    """An echo canary that goes silent after echoing ``limit`` bytes (a post-handshake cut)."""

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        seen = 0
        while data := await reader.read(65536):
            room = max(0, limit - seen)
            if room:
                writer.write(data[:room])
                await writer.drain()
            seen += len(data)
        # keep reading (and dropping) until the client leaves: silence, not a close

    return handler


async def liar(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Something that is not the canary: answers every line with a block-page-ish text."""
    await reader.read(4096)
    writer.write(b"HTTP/1.1 403 Forbidden\r\n\r\nblocked\n" + b"x" * 64)
    await writer.drain()
    await asyncio.sleep(10)


@pytest.fixture
async def canary() -> AsyncIterator[int]:
    async with echo_canary() as port:
        yield port


def secret_file(tmp: Path, name: str, content: str) -> Path:
    path = tmp / name
    path.write_text(content)
    path.chmod(0o600)
    return path


@contextmanager
def ss_server(method: str, password: str) -> Iterator[int]:
    """shadowsocks-libev's ss-server (TCP only) with one AEAD method and password."""
    port = free_port()
    argv = ["ss-server", "-s", LOOPBACK, "-p", str(port), "-k", password, "-m", method, "-t", "5", "-v"]
    with daemon(argv, port):
        yield port


@contextmanager
def ocserv(tmp: Path, cert_pem: Path, key_pem: Path) -> Iterator[int]:
    """ocserv in the foreground on 127.0.0.1 with plain password auth; no tun device is needed until a
    client authenticates, which these tests never do, but ocserv insists on running as root. Bans are
    off so repeated probes stay welcome."""
    port = free_port()
    conf = ocserv_config(tmp, LOOPBACK, port, cert_pem, key_pem)
    with daemon(["ocserv", "-f", "-d", "1", "-c", str(conf)], port):
        yield port


# -- a censored network (tests.netlab): microsocks and an echo canary "abroad", probes run "inside" -------

TCP_ECHO = """
import socket, sys, threading
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((sys.argv[1], int(sys.argv[2]))); s.listen(16)
def serve(c):
    while data := c.recv(65536):
        c.sendall(data)
    c.close()
while True:
    c, _ = s.accept()
    threading.Thread(target=serve, args=(c,), daemon=True).start()
"""

# a probe worker in the client namespace: one JSON request per stdin line, one result per stdout line; one
# Services for every probe, so the "answered before" memory carries over as in the daemon.
# Logs go to stderr so stdout carries only results.
PROBE_WORKER = """
import asyncio, json, sys
import structlog
structlog.configure(logger_factory=structlog.PrintLoggerFactory(sys.stderr))
from reachwatch.probes import PROBES
from reachwatch.probes.base import ProbeContext, Services, run_probe
services = Services()
for line in sys.stdin:
    req = json.loads(line)
    spec = PROBES[req["kind"]]
    target = spec.target_model.model_validate(req["target"])
    ctx = ProbeContext(target=target.name, kind=spec.kind, timeout=req["timeout"], services=services)
    print(json.dumps(asyncio.run(run_probe(spec, target, ctx)).to_dict()), flush=True)
"""
REPO = Path(__file__).resolve().parents[2]
SOCKS_PORT = 1080
CANARY_PORT = 7007


def wait_tcp_listen(lab: Lab, port: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if lab.server.run(["ss", "-Htln", f"sport = :{port}"], check=False).stdout.strip():
            return
        time.sleep(0.05)
    raise RuntimeError(f"nothing listens on tcp port {port} in the server namespace")


@pytest.fixture
def proxy_lab() -> Iterator[Lab]:
    if os.geteuid() != 0:
        pytest.skip("needs root")
    with Lab("cnry") as lab:
        lab.server.popen(["microsocks", "-i", SERVER_IP, "-p", str(SOCKS_PORT)])
        lab.server.popen(["python3", "-c", TCP_ECHO, SERVER_IP, str(CANARY_PORT)])
        wait_tcp_listen(lab, SOCKS_PORT)
        wait_tcp_listen(lab, CANARY_PORT)
        # conntrack byte counters are off by default; `ct bytes` needs them (per namespace)
        lab.router.run("sysctl -qw net.netfilter.nf_conntrack_acct=1")
        yield lab


class ClientProber:
    """``PROBE_WORKER`` running in the lab's client namespace ("inside the country")."""

    def __init__(self, lab: Lab) -> None:
        python = sys.executable
        self.proc = lab.client.popen(
            [python, "-c", PROBE_WORKER],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            cwd=str(REPO),
        )

    def probe(self, kind: str, target: dict[str, object], timeout: float) -> ProbeResult:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        req = {"kind": kind, "target": {"kind": kind, **target}, "timeout": timeout}
        self.proc.stdin.write((json.dumps(req) + "\n").encode())
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        assert line, "probe worker died"
        return ProbeResult.from_dict(json.loads(line))

    def close(self) -> None:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.close()  # the worker's loop ends at EOF
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.proc.stdout.close()


@pytest.fixture
def prober(proxy_lab: Lab) -> Iterator[ClientProber]:
    worker = ClientProber(proxy_lab)
    yield worker
    worker.close()
