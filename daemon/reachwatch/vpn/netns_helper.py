"""The helper that runs inside a VPN client's own user and network namespace (started by
``vpn/tunnel_netns.py`` as ``unshare --user --map-root-user --net -- python -m reachwatch.vpn.netns_helper``).

Why it exists: a real VPN client needs a tun device, and a tun device needs CAP_NET_ADMIN. The daemon has
no capability at all (the shipped unit's bounding set is empty); an unprivileged user namespace gives
the client that capability over a network namespace of its own and nothing else. That namespace starts
empty: no route out. So this helper, the namespace's first process, makes the sockets the daemon needs on
the inside and hands them out over a Unix socket pair (``SCM_RIGHTS``); a socket keeps the namespace it
was made in, so the daemon then uses them from its own event loop:

1. at start: ``lo`` up, and the *link* socket the client will talk to (UDP bound, or TCP listening, on
   127.0.0.1 inside): the daemon relays it to the server over a socket it made outside
   (``net/relay.py``); then the client is started with ``{link_port}`` in its argv replaced, its output on
   this process's stdout (the daemon reads it);
2. on request (``{"op": "connect", "host": ip, "port": n, "timeout": s}``): a TCP connection made inside,
   so it goes through the client's tunnel (the data stage's stream to the canary);
3. when the daemon closes its end: SIGTERM to the client (so it tells the server it leaves), a grace
   period, SIGKILL; then exit, and the namespace is gone with its last process.

Standard library only: it runs in a fresh interpreter for every attempt.
"""

from __future__ import annotations

import contextlib
import ctypes
import fcntl
import json
import os
import signal
import socket
import struct
import subprocess
import sys

SIOCGIFFLAGS, SIOCSIFFLAGS, IFF_UP = 0x8913, 0x8914, 0x1
PR_SET_PDEATHSIG = 1
EXIT_GRACE = 1.0
MAX_MESSAGE = 4096


def loopback_up() -> None:
    """``ip link set lo up`` without the ip binary: a fresh network namespace has ``lo`` down."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        request = struct.pack("16sH", b"lo", 0)
        flags = struct.unpack("16sH", fcntl.ioctl(sock, SIOCGIFFLAGS, request)[:18])[1]
        fcntl.ioctl(sock, SIOCSIFFLAGS, struct.pack("16sH", b"lo", flags | IFF_UP))


def link_socket(proto: str) -> socket.socket:
    """The socket the client reaches its server through: 127.0.0.1, an ephemeral port."""
    if proto == "udp":
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.bind(("127.0.0.1", 0))
        return sock
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(1)
    return sock


def _die_with_parent() -> None:
    """In the client, before exec: SIGKILL when this helper dies, so no client outlives an attempt."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(EXIT_GRACE)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def _connect(ctl: socket.socket, request: dict[str, object]) -> None:
    try:
        conn = socket.create_connection(
            (str(request["host"]), int(str(request["port"]))), timeout=float(str(request["timeout"]))
        )
    except OSError as exc:
        errno = exc.errno if exc.errno is not None else (110 if isinstance(exc, TimeoutError) else 0)
        ctl.send(json.dumps({"ok": False, "errno": errno}).encode())
        return
    with conn:
        conn.setblocking(False)
        socket.send_fds(ctl, [json.dumps({"ok": True}).encode()], [conn.fileno()])


def main(argv: list[str]) -> int:
    """``netns_helper CTL_FD udp|tcp -- CLIENT ARGV...``"""
    ctl = socket.socket(fileno=int(argv[0]))
    proto, client = argv[1], argv[3:]
    loopback_up()
    link = link_socket(proto)
    port = link.getsockname()[1]
    socket.send_fds(ctl, [json.dumps({"link_port": port}).encode()], [link.fileno()])
    link.close()
    proc = subprocess.Popen(
        [arg.replace("{link_port}", str(port)) for arg in client],
        stdin=subprocess.DEVNULL,
        stderr=subprocess.STDOUT,
        preexec_fn=_die_with_parent,  # noqa: PLW1509 - this helper is single-threaded
    )
    try:
        while message := ctl.recv(MAX_MESSAGE):
            request = json.loads(message)
            if request.get("op") == "connect":
                _connect(ctl, request)
    except (OSError, ValueError):
        pass  # the daemon went away or sent garbage: stop the client either way
    finally:
        _stop(proc)
        with contextlib.suppress(OSError):
            ctl.close()
    return 0


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, lambda *_: os._exit(0))  # the client dies with us (PDEATHSIG)
    sys.exit(main(sys.argv[1:]))
