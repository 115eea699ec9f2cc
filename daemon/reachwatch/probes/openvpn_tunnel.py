"""``openvpn_tunnel``: can the real OpenVPN client bring a tunnel up, and does the tunnel carry data?

The deep stage behind ``openvpn``: it runs the ``openvpn`` binary with the user's own ``.ovpn`` (and
credentials from ``auth_user_pass_file``) until "Initialization Sequence Completed". Russia cut OpenVPN in
2023 *after* the handshake, once a flow had carried some packets; so what follows is what makes it
``reachable``:

- with a ``canary`` (the data stage): the client runs with a real tun device in a user and network
  namespace of its own (``vpn/tunnel_netns.py``; the daemon keeps no capability), its link relayed to the
  server over the daemon's own socket (``net/relay.py``), and the data stage (``vpn/datastage.py``) goes
  through the tunnel to the canary: a nonce echo at stage ``tunnel``, then ``data_stage.volume`` bytes
  and ``data_stage.min_lifetime`` seconds at stage ``transfer``, with the cut point when it stops short.
  Why a namespace and not a data channel in user space: ``docs/ARCHITECTURE.md``.
- without one: ``--dev null`` (no tun, no namespace) and the tunnel is held for ``hold`` seconds with fast
  keepalives (``--ping``/``--ping-restart``); a cut is a failure at stage ``tunnel`` (with
  ``tunnel_survived_s``). That proves the session holds, not that it carries a user's data.

How it runs: the remote forced to the target's ``host``/``port``/``proto`` (``remote``/``proto``/``port``/
``<connection>`` lines of the file are dropped, so the destination the scheduler limits and redacts is the
one contacted), scripts disabled (``--script-security 1``), pushed ``ping`` settings ignored so our
keepalive holds. At the end the client gets SIGTERM and a second to send its exit notification (so the
server frees the session at once), then SIGKILL; the deadline stops it too. Leave the deadline room: the
SIGTERM grace is taken from it. The bytes the client moved are read from its ``--status`` file and
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
from reachwatch.config.targets.canary import CanaryConfig
from reachwatch.config.targets.openvpn_tunnel import OpenVpnTunnelTarget
from reachwatch.errors import ConfigError
from reachwatch.failures import Failure, Stage, scrub
from reachwatch.model import ProbeResult
from reachwatch.net.dial import STREAM_LIMIT, close_quietly, connect_tcp, pin_address
from reachwatch.net.relay import relay_tcp, relay_udp
from reachwatch.net.udp import UdpSocket, open_udp
from reachwatch.probes.base import ProbeContext, ProbeSpec
from reachwatch.vpn.canary import PlainStream, StreamEcho, greeting, verify_canary
from reachwatch.vpn.datastage import run_data_stage
from reachwatch.vpn.tunnel_netns import NamespacedClient

log = structlog.get_logger(__name__)

MAX_LINE = 4096
EXIT_GRACE = 1.0  # seconds the client gets to send its exit notification before SIGKILL
MAX_LINES = 5000  # a chatty or looping client must not cost unbounded CPU; we stop reading after this
READY = "Initialization Sequence Completed"
_CLEANUPS: set[asyncio.Future[None]] = set()  # namespaced clients still being stopped
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


async def _await_ready(output: asyncio.StreamReader) -> tuple[Failure, Stage] | None:
    """Read the client's output until "Initialization Sequence Completed": ``None``, or why not."""
    for _ in range(MAX_LINES):
        line = await _next_line(output)
        if line is None:
            return Failure.EOF_ERROR, Stage.PROTOCOL_HANDSHAKE  # exited without a reason we know
        if READY in line:
            return None
        if "Options error" in line:
            raise ConfigError("config_file", "openvpn rejected the configuration (Options error)")
        failure = _classify(line, up=False)
        if failure is not None:
            return failure
    return Failure.PROTOCOL_ERROR, Stage.PROTOCOL_HANDSHAKE


async def _drain(output: asyncio.StreamReader) -> None:
    """Keep reading the client's output while the data stage runs (a full pipe would stall the client)."""
    while (line := await _next_line(output)) is not None:
        if _classify(line, up=True) is not None:
            log.debug("openvpn_client_event_in_data_stage", line=scrub(line.strip())[:300])


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
        # with a canary the client has a real tun device in its own namespace and reaches the server
        # through the daemon's relay on 127.0.0.1 there ({link_port}: filled in by the helper)
        remote = ("127.0.0.1", "{link_port}") if target.canary else (target.host, str(target.port))
        device = ["--dev", "tun", "--disable-dco"] if target.canary else ["--dev", "null"]
        argv = [
            target.openvpn_binary, "--cd", str(config_path.parent), "--config", str(work / "client.ovpn"),
            "--client", *device, "--nobind", "--verb", "3", "--script-security", "1",
            "--remote", *remote, "udp" if target.proto == "udp" else "tcp-client",
            "--connect-retry-max", "1",
            "--ping", str(target.ping), "--ping-restart", str(target.ping_restart),
            "--pull-filter", "ignore", "ping", "--auth-nocache", "--status", str(status), "1",
            *(["--explicit-exit-notify", "1"] if target.proto == "udp" else []),
        ]  # fmt: skip
        if target.auth_user_pass_file:
            auth = resolve_path(target.auth_user_pass_file, ctx.base_dir)
            check_private_file(auth, "auth_user_pass_file")
            argv += ["--auth-user-pass", str(auth)]
        if target.canary is not None:
            return await _run_namespaced(target, target.canary, ctx, argv, status)
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
            failure = await _await_ready(proc.stdout)
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


async def _run_namespaced(
    target: OpenVpnTunnelTarget, canary: CanaryConfig, ctx: ProbeContext, argv: list[str], status: Path
) -> ProbeResult:
    """The client with a tun device in its own namespace; the data stage through the tunnel to the canary."""
    hello = await greeting(canary, ctx.base_dir)
    with ctx.stage(Stage.RESOLVE):
        ip = await pin_address(target.host)
        canary_ip = await pin_address(canary.host)
    ctx.public_fact("ip", ip)
    # the link is the daemon's own connection to the server (the flow a censor sees), relayed to the client
    outer: UdpSocket | None = None
    if target.proto == "tcp":
        with ctx.stage(Stage.CONNECT):
            reader, writer = await connect_tcp(ip, target.port)
    else:
        outer = await open_udp(ip, target.port, Stage.TUNNEL)
    client = NamespacedClient(argv, target.proto)
    tasks: list[asyncio.Task[None]] = []
    try:
        link = await client.start()
        relay = relay_udp(link, outer) if outer is not None else relay_tcp(link, reader, writer)
        tasks.append(asyncio.create_task(relay))
        with ctx.stage(Stage.PROTOCOL_HANDSHAKE):
            failure = await _await_ready(client.output)
        if failure is not None:
            return ctx.fail(*failure)
        ctx.fact("tunnel_up", True)
        tasks.append(asyncio.create_task(_drain(client.output)))
        with ctx.stage(Stage.TUNNEL):
            inside = await client.connect(canary_ip, canary.port, within=max(0.5, ctx.remaining() - 2.0))
            stream = PlainStream(*await asyncio.open_connection(sock=inside, limit=STREAM_LIMIT))
        try:
            with ctx.stage(Stage.TUNNEL):
                await verify_canary(stream, hello)
            await run_data_stage(StreamEcho(stream), target.data_stage, ctx, reserve=EXIT_GRACE + 1.0)
        finally:
            await stream.close()
        counted = _status_bytes(status)
        if counted is not None:
            ctx.fact("bytes_in", counted[0])
            ctx.fact("bytes_out", counted[1])
        return ctx.succeed()
    finally:

        async def clean_up() -> None:
            # the client says goodbye through the relay (explicit-exit-notify): stop it before the relay
            await client.close()
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            if outer is not None:
                outer.close()
            else:
                await close_quietly(writer)

        # shielded (and referenced until done): the attempt's deadline must not leave a client, a relay or
        # a socket behind
        cleanup = asyncio.ensure_future(clean_up())
        _CLEANUPS.add(cleanup)
        cleanup.add_done_callback(_CLEANUPS.discard)
        await asyncio.shield(cleanup)


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
    description="real openvpn client to Initialization Sequence Completed, data stage through the tunnel",
)
