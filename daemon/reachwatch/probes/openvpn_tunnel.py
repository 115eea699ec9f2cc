"""``openvpn_tunnel``: can the real OpenVPN client bring a tunnel up, and does the tunnel survive?

The deep stage behind ``openvpn``: it runs the ``openvpn`` binary with the user's own ``.ovpn`` (and
credentials from ``auth_user_pass_file``) until "Initialization Sequence Completed", then holds the tunnel
for ``hold`` seconds with fast keepalives (``--ping``/``--ping-restart``). Russia cut OpenVPN in 2023 *after*
the handshake, once a flow had carried some packets: the reset probe passes, this one reports the cut as a
failure at stage ``tunnel`` (with ``tunnel_survived_s``).

How it runs: ``--dev null`` (no tun device, no routes, no root needed), the remote forced to the target's
``host``/``port``/``proto`` (``remote``/``proto``/``port``/``<connection>`` lines of the file are dropped, so
the destination the scheduler limits and redacts is the one contacted), scripts disabled
(``--script-security 1``), pushed ``ping`` settings ignored so our keepalive holds. At the end the client
gets SIGTERM and a second to send its exit notification (so the server frees the session at once), then
SIGKILL; the deadline kills it too (the runner cancels us, ``finally`` stops the process). Leave the
deadline room: the SIGTERM grace is taken from it.

What it cannot do: push a 64-256 KB payload to a canary. With ``--dev null`` there is no interface to send
through (a tun device needs root and routes on the vantage). So this stage checks tunnel survival and
control-channel/keepalive traffic only; the bytes the client moved are read from its ``--status`` file and
reported as ``bytes_in``/``bytes_out``.
"""

from __future__ import annotations

import asyncio
import re
import tempfile
import time
from pathlib import Path

import structlog

from reachwatch.config.secrets import check_private_file, resolve_path
from reachwatch.config.targets.openvpn_tunnel import OpenVpnTunnelTarget
from reachwatch.errors import ConfigError
from reachwatch.failures import Failure, Stage, scrub
from reachwatch.model import ProbeResult
from reachwatch.probes.base import ProbeContext, ProbeSpec

log = structlog.get_logger(__name__)

MAX_LINE = 4096
EXIT_GRACE = 1.0  # seconds the client gets to send its exit notification before SIGKILL
MAX_LINES = 5000  # a chatty or looping client must not cost unbounded CPU; we stop reading after this
READY = "Initialization Sequence Completed"
# directives of the user's file that we replace or must not run; matched as whole words so that e.g.
# remote-cert-tls (server certificate checks) is kept while remote is dropped
_DROP = re.compile(
    r"^\s*(remote|remote-random|proto|port|rport|dev|dev-type|dev-node|management\S*|status|log|log-append"
    r"|daemon|up|down|route-up|ipchange|tls-verify|auth-user-pass-verify|script-security|user|group"
    r"|auth-user-pass|connect-retry-max|ping|ping-restart|keepalive|verb)(?=\s|$)",
    re.IGNORECASE,
)
# (pattern, failure, stage before the tunnel is up); after it is up every failure is at stage tunnel
_FAILURES: list[tuple[re.Pattern[str], Failure, Stage]] = [
    (re.compile(r"AUTH_FAILED"), Failure.AUTH_FAILED, Stage.PROTOCOL_HANDSHAKE),
    (
        re.compile(r"VERIFY ERROR|certificate verify failed"),
        Failure.SSL_UNKNOWN_AUTHORITY,
        Stage.TLS_HANDSHAKE,
    ),
    (re.compile(r"Connection refused|ECONNREFUSED"), Failure.CONNECTION_REFUSED, Stage.CONNECT),
    (re.compile(r"Connection reset|ECONNRESET"), Failure.CONNECTION_RESET, Stage.PROTOCOL_HANDSHAKE),
    (
        re.compile(r"TLS key negotiation failed|TLS handshake failed"),
        Failure.GENERIC_TIMEOUT_ERROR,
        Stage.PROTOCOL_HANDSHAKE,
    ),
    (re.compile(r"Inactivity timeout"), Failure.GENERIC_TIMEOUT_ERROR, Stage.PROTOCOL_HANDSHAKE),
    (
        re.compile(r"SIGUSR1\[|SIGTERM\[|Exiting due to fatal error"),
        Failure.EOF_ERROR,
        Stage.PROTOCOL_HANDSHAKE,
    ),
]


def filtered_config(text: str) -> str:
    """The user's config without the directives we set ourselves (and without ``<connection>`` blocks)."""
    out: list[str] = []
    in_connection = False
    inline: str | None = None
    for line in text.splitlines():
        stripped = line.strip()
        if inline is not None:  # inside <ca>...</ca> and friends: copy verbatim
            out.append(line)
            if stripped.lower() == f"</{inline}>":
                inline = None
            continue
        if stripped.lower() == "<connection>":
            in_connection = True
            continue
        if in_connection:
            in_connection = stripped.lower() != "</connection>"
            continue
        tag = re.match(r"^<([a-z0-9-]+)>$", stripped, re.IGNORECASE)
        if tag:
            inline = tag.group(1).lower()
            out.append(line)
            continue
        if not _DROP.match(stripped):
            out.append(line)
    return "\n".join(out) + "\n"


def _status_bytes(path: Path) -> tuple[int, int] | None:
    try:
        text = path.read_text(errors="replace")[:8192]
    except OSError:
        return None
    read = re.search(r"^TCP/UDP read bytes,(\d+)", text, re.M)
    write = re.search(r"^TCP/UDP write bytes,(\d+)", text, re.M)
    return (int(read.group(1)), int(write.group(1))) if read and write else None


def _classify(line: str, up: bool) -> tuple[Failure, Stage] | None:
    for pattern, failure, stage in _FAILURES:
        if pattern.search(line):
            log.debug("openvpn_client_failed", line=scrub(line.strip())[:300], up=up)
            if up:
                return (
                    Failure.GENERIC_TIMEOUT_ERROR if failure is Failure.EOF_ERROR else failure
                ), Stage.TUNNEL
            if stage is Stage.CONNECT and failure is Failure.CONNECTION_REFUSED:
                return failure, stage
            return failure, stage
    return None


async def _next_line(stream: asyncio.StreamReader) -> str | None:
    try:
        raw = await stream.readline()
    except ValueError:  # a line longer than the limit: skip the rest of it
        raw = await stream.read(MAX_LINE)
    return raw.decode(errors="replace") if raw else None


async def probe(target: OpenVpnTunnelTarget, ctx: ProbeContext) -> ProbeResult:
    config_path = resolve_path(target.config_file, ctx.base_dir)
    check_private_file(config_path, "config_file")  # .ovpn files embed keys
    try:
        config_text = config_path.read_text(errors="replace")
    except OSError as exc:
        raise ConfigError("config_file", f"cannot read {config_path}: {exc.strerror or exc}") from None
    with tempfile.TemporaryDirectory(prefix="rw-ovpn-") as tmp:
        work = Path(tmp)
        (work / "client.ovpn").write_text(filtered_config(config_text))
        status = work / "status.txt"
        argv = [
            target.openvpn_binary, "--cd", str(config_path.parent), "--config", str(work / "client.ovpn"),
            "--client", "--dev", "null", "--nobind", "--verb", "3", "--script-security", "1",
            "--remote", target.host, str(target.port), "udp" if target.proto == "udp" else "tcp-client",
            "--connect-retry-max", "1",
            "--ping", str(target.ping), "--ping-restart", str(target.ping_restart),
            "--pull-filter", "ignore", "ping", "--auth-nocache", "--status", str(status), "1",
            *(["--explicit-exit-notify", "1"] if target.proto == "udp" else []),
        ]  # fmt: skip
        if target.auth_user_pass_file:
            auth = resolve_path(target.auth_user_pass_file, ctx.base_dir)
            check_private_file(auth, "auth_user_pass_file")
            argv += ["--auth-user-pass", str(auth)]
        return await _run(target, ctx, argv, status)


async def _run(target: OpenVpnTunnelTarget, ctx: ProbeContext, argv: list[str], status: Path) -> ProbeResult:
    try:
        proc = await asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            limit=MAX_LINE,
        )
    except OSError as exc:
        raise ConfigError("openvpn_binary", f"cannot run {target.openvpn_binary}: {exc.strerror}") from None
    assert proc.stdout is not None
    up_at: float | None = None
    failure: tuple[Failure, Stage] | None = None
    try:
        with ctx.stage(Stage.PROTOCOL_HANDSHAKE):
            for _ in range(MAX_LINES):
                line = await _next_line(proc.stdout)
                if line is None or READY in line:
                    break
                if "Options error" in line:
                    raise ConfigError("config_file", "openvpn rejected the configuration (Options error)")
                failure = _classify(line, up=False)
                if failure is not None:
                    break
            else:
                failure = (Failure.PROTOCOL_ERROR, Stage.PROTOCOL_HANDSHAKE)
            if failure is None and (line is None or READY not in line):
                failure = (Failure.EOF_ERROR, Stage.PROTOCOL_HANDSHAKE)  # exited without a reason we know
        if failure is not None:
            return ctx.fail(*failure)
        up_at = time.monotonic()
        ctx.fact("tunnel_up", True)
        hold = max(0.0, min(target.hold, ctx.remaining() - EXIT_GRACE - 1.0))
        with ctx.stage(Stage.TUNNEL):
            try:
                async with asyncio.timeout(hold):
                    for _ in range(MAX_LINES):
                        line = await _next_line(proc.stdout)
                        failure = (
                            (Failure.EOF_ERROR, Stage.TUNNEL) if line is None else _classify(line, up=True)
                        )
                        if failure is not None:
                            break
            except TimeoutError:
                pass
        ctx.fact("tunnel_survived_s", round(time.monotonic() - up_at, 2))
        counted = _status_bytes(status)
        if counted is not None:
            ctx.fact("bytes_in", counted[0])
            ctx.fact("bytes_out", counted[1])
        if failure is not None:
            return ctx.fail(*failure)
        ctx.fact("hold_s", round(hold, 2))
        return ctx.succeed()
    finally:
        await _stop(proc)


async def _stop(proc: asyncio.subprocess.Process) -> None:
    """SIGTERM first so the client tells the server it leaves (explicit-exit-notify), then SIGKILL."""
    if proc.returncode is not None:
        return
    proc.terminate()
    try:
        async with asyncio.timeout(EXIT_GRACE):
            await proc.wait()
            return
    except TimeoutError:
        pass
    proc.kill()
    try:
        async with asyncio.timeout(2.0):
            await proc.wait()
    except TimeoutError:
        log.warning("openvpn_client_unkillable")


SPEC = ProbeSpec(
    kind="openvpn_tunnel",
    target_model=OpenVpnTunnelTarget,
    probe=probe,
    description="real openvpn client (--dev null) to Initialization Sequence Completed, tunnel held",
)
