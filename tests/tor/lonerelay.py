"""A real, lone Debian ``tor`` relay on 127.0.0.1, for tests and benchmarks (``lone_relay()``).

The relay starts in about a second (key generation plus listener setup) and serves its ORPort and
DirPort on free loopback ports. Nothing leaves 127.0.0.1: tor's default directory authorities and
fallback directories are replaced by one unreachable authority on 127.0.0.1:9 (``DirAuthority`` +
``UseDefaultFallbackDirs 0``), so the relay's own client side only ever tries loopback;
``PublishServerDescriptor 0`` and ``AssumeReachable 1`` keep it from publishing or self-testing.
``TestingTorNetwork`` is not needed for a lone relay.
"""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

TOR = shutil.which("tor") or "/usr/sbin/tor"
_UNREACHABLE_AUTHORITY = "nowhere orport=9 no-v2 v3ident=" + "0" * 40 + " 127.0.0.1:9 " + "0" * 39 + "1"


def _free_ports(n: int) -> list[int]:
    """``n`` distinct loopback ports that were free a moment ago (held together, so never the same)."""
    socks = [socket.socket() for _ in range(n)]
    try:
        for sock in socks:
            sock.bind(("127.0.0.1", 0))
        return [int(sock.getsockname()[1]) for sock in socks]
    finally:
        for sock in socks:
            sock.close()


@dataclass(frozen=True)
class TorRelayProcess:
    """A running lone relay: where it listens and who it is."""

    or_port: int
    dir_port: int
    fingerprint: str  # 40 upper-case hex, from DataDirectory/fingerprint
    ed25519_identity: str | None  # base64, from DataDirectory/fingerprint-ed25519
    data_dir: Path
    log_path: Path


def _wait_listening(port: int, proc: subprocess.Popen[bytes], log_path: Path, deadline: float) -> None:
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"tor exited ({proc.returncode}): {log_path.read_text()[-2000:]}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"tor did not listen on {port}: {log_path.read_text()[-2000:]}")


def _wait_descriptor(port: int, proc: subprocess.Popen[bytes], log_path: Path, deadline: float) -> None:
    """Keys are generated after the listeners open: wait until the DirPort serves our own descriptor."""
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"tor exited ({proc.returncode}): {log_path.read_text()[-2000:]}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=2) as sock:
                sock.sendall(b"GET /tor/server/authority HTTP/1.0\r\n\r\n")
                head = sock.recv(32)
        except OSError:
            head = b""
        if head.startswith(b"HTTP/1.0 200"):
            return
        time.sleep(0.1)
    raise RuntimeError(f"tor did not serve its descriptor: {log_path.read_text()[-2000:]}")


@contextlib.contextmanager
def lone_relay() -> Iterator[TorRelayProcess]:
    """Start a lone relay; stop it and remove its DataDirectory on exit.

    Retried with fresh ports when tor exits at start: on a busy machine another process may take a
    port between our check and tor's bind.
    """
    for attempt in range(3):
        try:
            with _lone_relay_once() as relay:
                yield relay
                return
        except _StartFailed:
            if attempt == 2:
                raise


class _StartFailed(RuntimeError):
    pass


@contextlib.contextmanager
def _lone_relay_once() -> Iterator[TorRelayProcess]:
    root = Path(tempfile.mkdtemp(prefix="rw-tor-relay-"))
    data = root / "data"
    data.mkdir(mode=0o700)
    or_port, dir_port = _free_ports(2)
    log_path = root / "tor.log"
    torrc = root / "torrc"
    torrc.write_text(
        "\n".join(
            [
                f"DataDirectory {data}",
                f"ORPort 127.0.0.1:{or_port}",
                f"DirPort 127.0.0.1:{dir_port}",
                "Address 127.0.0.1",
                "Nickname reachwatchtest",
                "ContactInfo reachwatch-test",
                "PublishServerDescriptor 0",
                "AssumeReachable 1",
                "ExitRelay 0",
                "SocksPort 0",
                f"DirAuthority {_UNREACHABLE_AUTHORITY}",
                "UseDefaultFallbackDirs 0",
                f"Log notice file {log_path}",
                "",
            ]
        )
    )
    proc = subprocess.Popen(
        [TOR, "-f", str(torrc), "--ignore-missing-torrc"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        try:
            _wait_listening(or_port, proc, log_path, deadline)
            _wait_listening(dir_port, proc, log_path, deadline)
            _wait_descriptor(dir_port, proc, log_path, deadline)
        except RuntimeError as exc:
            raise _StartFailed(str(exc)) from exc
        fingerprint = (data / "fingerprint").read_text().split()[1]
        ed_file = data / "fingerprint-ed25519"
        ed = ed_file.read_text().split()[1] if ed_file.exists() else None
        yield TorRelayProcess(or_port, dir_port, fingerprint, ed, data, log_path)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        shutil.rmtree(root, ignore_errors=True)
