"""A VPN client with a real tun device, in its own user and network namespace, from an unprivileged daemon.

``NamespacedClient`` starts ``unshare --user --map-root-user --net`` with ``vpn/netns_helper.py`` as the
namespace's first process, which starts the client (``openvpn --dev tun ...``) in there. The client is
root over that namespace only: its tun device, addresses and routes exist nowhere else, and the daemon
keeps its empty capability set (see ``docs/ARCHITECTURE.md``, "OpenVPN data stage: why a namespace").

The namespace has no way out, so the daemon carries the client's link traffic itself: the helper passes
back the client-side link socket (made inside), the probe relays it to the server over a socket it made
outside with the usual pinned address and classified failures (``net/relay.py``). For the data stage the
helper connects to the canary *inside* (through the tunnel) and passes that socket back too: the daemon
runs the same data stage on it as on any proxy's stream.

Needs: unprivileged user namespaces (Linux default; Debian and Raspberry Pi OS allow them), ``unshare``
(util-linux), a usable ``/dev/net/tun`` (0666 on Debian), and for the systemd unit the drop-in
``deploy/systemd/reachwatch.service.d/openvpn-tunnel.conf``. When the namespace cannot be made, ``start``
raises ``ConfigError`` naming what is missing: the operator's setup, not the network.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import socket
import sys
from collections.abc import Sequence

import structlog

from reachwatch.errors import ConfigError
from reachwatch.failures import Failure, Stage
from reachwatch.net import fdpass
from reachwatch.net.errors import NetFailure, classify

log = structlog.get_logger(__name__)

LINE_LIMIT = 4096
START_TIMEOUT = 10.0  # the helper's first message: a fresh interpreter, namespace set-up
CLOSE_GRACE = 3.0  # the helper's own grace for the client (1 s) plus its exit
# errors of unshare/the helper that mean "this host does not allow it", in the words of the fix
_SETUP_HINTS = (
    ("Operation not permitted", "unprivileged user namespaces are not allowed here"),
    ("No space left on device", "user.max_user_namespaces is exhausted or 0"),
    ("Permission denied", "permission denied (a sandbox forbidding namespaces, or /dev/net/tun)"),
)


class NamespacedClient:
    """One client process in its own namespace, for one attempt. ``start`` -> ``connect``* -> ``close``."""

    def __init__(self, client_argv: Sequence[str], proto: str) -> None:
        self.client_argv = list(client_argv)
        self.proto = proto
        self.proc: asyncio.subprocess.Process | None = None
        self._ctl: socket.socket | None = None

    @property
    def output(self) -> asyncio.StreamReader:
        """The client's output lines (its stdout and stderr)."""
        assert self.proc is not None and self.proc.stdout is not None
        return self.proc.stdout

    async def start(self) -> socket.socket:
        """Start helper and client; the link socket (inside the namespace) the client sends to."""
        unshare = shutil.which("unshare")
        if unshare is None:
            raise ConfigError("openvpn_tunnel", "the data stage needs unshare (util-linux) on PATH")
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        argv = [
            unshare, "--user", "--map-root-user", "--net", "--",
            sys.executable, "-m", "reachwatch.vpn.netns_helper", str(theirs.fileno()), self.proto, "--",
            *self.client_argv,
        ]  # fmt: skip
        try:
            self.proc = await asyncio.create_subprocess_exec(
                *argv,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.STDOUT,
                pass_fds=(theirs.fileno(),),
                limit=LINE_LIMIT,
            )
        finally:
            theirs.close()
        ours.setblocking(False)
        self._ctl = ours
        try:
            async with asyncio.timeout(START_TIMEOUT):
                message, fds = await fdpass.receive(ours)
        except (EOFError, ValueError, TimeoutError):
            raise ConfigError("openvpn_tunnel", await self._setup_failure()) from None
        if not fds or "link_port" not in message:
            for fd in fds:
                os.close(fd)
            raise ConfigError("openvpn_tunnel", "the namespace helper sent no link socket")
        kind = socket.SOCK_DGRAM if self.proto == "udp" else socket.SOCK_STREAM
        link = socket.socket(socket.AF_INET, kind, fileno=fds[0])
        link.setblocking(False)
        return link

    async def _setup_failure(self) -> str:
        """Why the namespace could not be made, from what unshare or the helper said."""
        text = ""
        if self.proc is not None and self.proc.stdout is not None:
            with contextlib.suppress(TimeoutError, OSError):
                async with asyncio.timeout(1.0):
                    text = (await self.proc.stdout.read(LINE_LIMIT)).decode(errors="replace")
        log.warning("netns_setup_failed", output=text.strip()[-300:])
        for needle, hint in _SETUP_HINTS:
            if needle in text:
                return f"the data stage cannot make its network namespace: {hint}; see docs/ARCHITECTURE.md"
        return "the data stage cannot make its network namespace (unshare failed); see docs/ARCHITECTURE.md"

    async def connect(self, ip: str, port: int, *, within: float) -> socket.socket:
        """A TCP connection to ``ip:port`` made inside the namespace, i.e. through the tunnel.

        Failures are classified at stage ``tunnel`` (refused, timed out, unreachable inside the tunnel).
        """
        assert self._ctl is not None
        request: dict[str, object] = {"op": "connect", "host": ip, "port": port, "timeout": within}
        fdpass.send(self._ctl, request)
        try:
            message, fds = await fdpass.receive(self._ctl)
        except (EOFError, ValueError) as exc:
            raise NetFailure(Failure.EOF_ERROR, Stage.TUNNEL, f"namespace helper: {exc}") from exc
        if message.get("ok") is not True or not fds:
            for fd in fds:
                os.close(fd)
            code = int(str(message.get("errno") or 0))
            failure = classify(OSError(code, os.strerror(code))) if code else Failure.UNKNOWN_FAILURE
            raise NetFailure(failure, Stage.TUNNEL, f"connect inside the tunnel: errno {code}")
        return socket.socket(socket.AF_INET, socket.SOCK_STREAM, fileno=fds[0])

    async def close(self) -> None:
        """Closing the control socket tells the helper to stop the client (SIGTERM, then SIGKILL)."""
        if self._ctl is not None:
            self._ctl.close()
            self._ctl = None
        proc = self.proc
        if proc is None or proc.returncode is not None:
            return
        try:
            async with asyncio.timeout(CLOSE_GRACE):
                await proc.wait()
                return
        except TimeoutError:
            pass
        proc.kill()  # the client has PDEATHSIG: it goes with the helper
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(2.0):
                await proc.wait()
