"""``reachwatch canary``: the far end of port surveys and tunnel canaries, run on a host abroad.

It listens on the ``canary:`` section's TCP and UDP ports and speaks ``formats.canary``: a request whose
MAC verifies gets the keyed reply naming the port and transport it arrived on; then a TCP ``PROBE``
connection is closed and a TCP ``ECHO`` connection becomes an echo of everything that follows (the data
stage of a proxy probe), within ``echo_max_bytes`` and ``echo_max_seconds``. Anything else (garbage, a
wrong secret, an unknown version, a source over its rate) meets silence: a TCP connection is closed
without one byte, a datagram is dropped. So the canary is no reflector (a reply is never larger than its
request, and replies are rate-limited per source and in total: ``canary_limits``) and a censor's active
prober finds nothing that answers.

UDP replies leave from the address the request was sent to (``IP_PKTINFO``/``IPV6_PKTINFO``): on a host
with several addresses a reply from another one would be dropped by the prober's connected socket, and
every UDP port would look filtered.

Its own metrics (``/metrics`` on ``metrics_listen_address``, loopback by default) count requests by
transport and result, echo sessions and bytes, connections, and which ports it listens on.
SIGHUP reloads the config (ports, limits, secret); a port that cannot be bound (in use, or below 1024
without ``CAP_NET_BIND_SERVICE``) is logged and shown as not listening, and the rest keep running.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import signal
import socket
import struct
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import structlog
from aiohttp import web
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector, CollectorRegistry

from reachwatch import __version__
from reachwatch.canary_limits import ReplyLimiter
from reachwatch.config.canary_service import CanaryServiceConfig
from reachwatch.config.load import LoadedConfig, load_full_config
from reachwatch.errors import ConfigError, ReachwatchError
from reachwatch.exposition import encode
from reachwatch.formats import canary as wire
from reachwatch.web import parse_listen_address
from reachwatch.weblisten import Listener, ListenerLimits, ServedApp, connection_cap, raise_nofile_limit

log = structlog.get_logger(__name__)

IP_PKTINFO = getattr(socket, "IP_PKTINFO", 8)  # linux/in.h; the socket module lacks it on some builds
_IN_PKTINFO = struct.Struct("i4s4s")  # ifindex, spec_dst, addr
_IN6_PKTINFO = struct.Struct("16sI")  # addr, ifindex
_CMSG_SPACE = socket.CMSG_SPACE(max(_IN_PKTINFO.size, _IN6_PKTINFO.size))
ECHO_IDLE = 60.0  # an echo session that carried nothing for this long is over
CHUNK = 64 * 1024
RESULTS = ("answered", "rate_limited", "timeout", *wire.REJECT_REASONS)


@dataclass
class CanaryCounters:
    """What the canary did, for ``/metrics``."""

    requests: Counter[tuple[str, str]] = field(default_factory=Counter)  # (proto, result)
    echo_sessions: int = 0
    echo_bytes: int = 0
    connections: int = 0
    connections_refused: int = 0
    send_errors: int = 0


def key_for(config: CanaryServiceConfig, loaded: LoadedConfig) -> bytes:
    """The MAC key from the section's secret; ``ConfigError`` naming the field when it is unusable."""
    secret = config.canary_secret(loaded.base_dir, f"{loaded.source}: canary")
    return wire.derive_key(secret)


class _UdpPort:
    """One UDP socket (one address, one port), read with ``recvmsg`` to learn each request's destination."""

    def __init__(self, canary: Canary, sock: socket.socket, port: int) -> None:
        self.canary = canary
        self.sock = sock
        self.port = port
        self.v6 = sock.family == socket.AF_INET6

    def readable(self) -> None:
        for _ in range(64):  # a burst is drained in one wake-up, a flood cannot starve the loop
            try:
                data, ancdata, flags, addr = self.sock.recvmsg(wire.REQUEST_SIZE + 1, _CMSG_SPACE)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                continue  # an ICMP error queued for an earlier reply: nothing to do
            if flags & socket.MSG_TRUNC:
                data = data + b"\0"  # longer than any request: rejected as such below
            self.canary.datagram(self, data, ancdata, addr)

    def reply(self, data: bytes, ancdata: list[tuple[int, int, bytes]], addr: tuple[str, int]) -> None:
        """Send ``data`` to ``addr`` from the address the request arrived at."""
        control = []
        for level, kind, value in ancdata:
            if not self.v6 and level == socket.IPPROTO_IP and kind == IP_PKTINFO:
                ifindex, local, _ = _IN_PKTINFO.unpack_from(value)
                control = [(level, IP_PKTINFO, _IN_PKTINFO.pack(0, local, b"\0" * 4))]
            elif self.v6 and level == socket.IPPROTO_IPV6 and kind == socket.IPV6_PKTINFO:
                local6, ifindex = _IN6_PKTINFO.unpack_from(value)
                control = [(level, socket.IPV6_PKTINFO, _IN6_PKTINFO.pack(local6, ifindex))]
        try:
            self.sock.sendmsg([data], control, 0, addr)
        except OSError:
            self.canary.counters.send_errors += 1


class Canary:
    """The listening sockets, the limits and the counters; ``start``, ``apply`` (reload), ``close``."""

    def __init__(self, config: CanaryServiceConfig, key: bytes) -> None:
        self.config = config
        self.key = key
        self.limiter = ReplyLimiter(config.per_source_rate, config.per_source_burst, config.global_rate)
        self.counters = CanaryCounters()
        self.listening: dict[tuple[str, int], bool] = {}  # (proto, port) -> bound on every address
        self._tcp: dict[tuple[str, int], asyncio.Server] = {}  # (address, port)
        self._udp: dict[tuple[str, int], _UdpPort] = {}
        self._per_source: Counter[str] = Counter()
        self._sessions: set[asyncio.Task[None]] = set()

    # --- lifecycle ---------------------------------------------------------------------------------
    async def start(self) -> None:
        """Bind every configured port; ``ConfigError`` when not one could be bound."""
        await self._bind(self.config)
        if not any(self.listening.values()):
            raise ConfigError("canary", "could not listen on any port (see the log lines above)")

    async def apply(self, config: CanaryServiceConfig, key: bytes) -> None:
        """A reloaded config: new limits and secret at once, ports opened and closed as the lists say."""
        wanted_tcp = {(a, p) for a in config.listen_addresses for p in config.tcp_ports}
        wanted_udp = {(a, p) for a in config.listen_addresses for p in config.udp_ports}
        for where in [w for w in self._tcp if w not in wanted_tcp]:
            self._tcp.pop(where).close()
        for where in [w for w in self._udp if w not in wanted_udp]:
            self._close_udp(self._udp.pop(where))
        self.config, self.key = config, key
        self.limiter = ReplyLimiter(config.per_source_rate, config.per_source_burst, config.global_rate)
        self.listening = {}
        await self._bind(config)

    async def close(self) -> None:
        for server in self._tcp.values():
            server.close()
        for udp in self._udp.values():
            self._close_udp(udp)
        self._tcp, self._udp = {}, {}
        for task in list(self._sessions):
            task.cancel()
        if self._sessions:
            await asyncio.gather(*self._sessions, return_exceptions=True)

    async def _bind(self, config: CanaryServiceConfig) -> None:
        for proto, ports in (("tcp", config.tcp_ports), ("udp", config.udp_ports)):
            for port in ports:
                ok = True
                for address in config.listen_addresses:
                    bound = self._tcp if proto == "tcp" else self._udp
                    if (address, port) in bound:
                        continue
                    try:
                        if proto == "tcp":
                            await self._bind_tcp(address, port)
                        else:
                            self._bind_udp(address, port)
                    except OSError as exc:
                        ok = False
                        hint = " (below 1024 needs CAP_NET_BIND_SERVICE)" if exc.errno == errno.EACCES else ""
                        log.error(
                            "canary_port_unavailable",
                            proto=proto,
                            port=port,
                            address=address,
                            error=f"{exc.strerror or exc}{hint}",
                        )
                self.listening[(proto, port)] = ok

    async def _bind_tcp(self, address: str, port: int) -> None:
        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await self._connection(reader, writer, port)

        server = await asyncio.start_server(
            handle, host=address, port=port, reuse_address=True, limit=CHUNK, backlog=128
        )
        self._tcp[(address, port)] = server

    def _bind_udp(self, address: str, port: int) -> None:
        v6 = ":" in address
        sock = socket.socket(socket.AF_INET6 if v6 else socket.AF_INET, socket.SOCK_DGRAM)
        try:
            if v6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_RECVPKTINFO, 1)
            else:
                sock.setsockopt(socket.IPPROTO_IP, IP_PKTINFO, 1)
            sock.bind((address, port))
            sock.setblocking(False)
        except OSError:
            sock.close()
            raise
        udp = _UdpPort(self, sock, port)
        asyncio.get_running_loop().add_reader(sock.fileno(), udp.readable)
        self._udp[(address, port)] = udp

    @staticmethod
    def _close_udp(udp: _UdpPort) -> None:
        with contextlib.suppress(Exception):
            asyncio.get_running_loop().remove_reader(udp.sock.fileno())
        udp.sock.close()

    # --- requests ----------------------------------------------------------------------------------
    def _accept(self, proto: str, data: bytes, source: str) -> wire.Request | None:
        """The request if it verifies and the source is within its rate; counts the result either way."""
        try:
            request = wire.decode_request(data, self.key)
        except wire.FrameError as exc:
            self.counters.requests[(proto, exc.reason)] += 1
            return None
        if proto == "udp" and request.type is not wire.FrameType.PROBE:
            self.counters.requests[(proto, "type")] += 1  # an echo session needs a stream
            return None
        if not self.limiter.allow(source):
            self.counters.requests[(proto, "rate_limited")] += 1
            return None
        self.counters.requests[(proto, "answered")] += 1
        return request

    def datagram(
        self, udp: _UdpPort, data: bytes, ancdata: list[tuple[int, int, bytes]], addr: tuple[str, int]
    ) -> None:
        request = self._accept("udp", data, str(addr[0]))
        if request is not None:
            udp.reply(
                wire.encode_reply(request, self.key, proto=wire.Proto.UDP, port=udp.port), ancdata, addr
            )

    async def _connection(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, port: int
    ) -> None:
        peer = writer.get_extra_info("peername")
        source = str(peer[0]) if isinstance(peer, tuple) else "?"
        if (
            self.counters.connections >= self.config.max_connections
            or self._per_source[source] >= self.config.max_connections_per_source
        ):
            self.counters.connections_refused += 1
            writer.transport.abort()
            return
        task = asyncio.current_task()
        assert task is not None
        self._sessions.add(task)
        self.counters.connections += 1
        self._per_source[source] += 1
        try:
            await self._serve(reader, writer, port, source)
        except (OSError, asyncio.IncompleteReadError, TimeoutError):
            pass  # a client that left or went quiet: nothing to report
        finally:
            self.counters.connections -= 1
            self._per_source[source] -= 1
            if self._per_source[source] <= 0:
                del self._per_source[source]
            self._sessions.discard(task)
            writer.transport.abort()

    async def _serve(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, port: int, source: str
    ) -> None:
        try:
            async with asyncio.timeout(self.config.request_timeout):
                data = await reader.readexactly(wire.REQUEST_SIZE)
        except TimeoutError:
            self.counters.requests[("tcp", "timeout")] += 1
            return
        except asyncio.IncompleteReadError:
            self.counters.requests[("tcp", "short")] += 1
            return
        request = self._accept("tcp", data, source)
        if request is None:
            return
        writer.write(wire.encode_reply(request, self.key, proto=wire.Proto.TCP, port=port))
        await writer.drain()
        if request.type is wire.FrameType.ECHO:
            self.counters.echo_sessions += 1
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.config.echo_max_seconds):
                    await self._echo(reader, writer)

    async def _echo(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        left = self.config.echo_max_bytes
        while left > 0:
            async with asyncio.timeout(ECHO_IDLE):
                data = await reader.read(min(CHUNK, left))
            if not data:
                return
            left -= len(data)
            self.counters.echo_bytes += len(data)
            writer.write(data)
            await writer.drain()


class CanaryCollector(Collector):
    """Renders the canary's counters at scrape time (names: ``reachwatch_canary_*``)."""

    def __init__(self, canary: Canary) -> None:
        self.canary = canary

    def describe(self) -> Iterable[Metric]:
        return []

    def collect(self) -> Iterator[Metric]:
        c = self.canary.counters
        info = GaugeMetricFamily(
            "reachwatch_canary_build_info", "1; the reachwatch version.", labels=["version"]
        )
        info.add_metric([__version__], 1)
        yield info
        requests = CounterMetricFamily(
            "reachwatch_canary_requests",
            "Requests (TCP connections' first frame, UDP datagrams) by transport and what became of them: "
            "answered, rate_limited, timeout (TCP: nothing in time) or why they were refused.",
            labels=["proto", "result"],
        )
        for proto in ("tcp", "udp"):
            for result in RESULTS:
                if proto == "udp" and result == "timeout":
                    continue
                requests.add_metric([proto, result], c.requests[(proto, result)])
        yield requests
        yield CounterMetricFamily(
            "reachwatch_canary_echo_sessions",
            "TCP echo sessions begun (tunnel canaries).",
            value=c.echo_sessions,
        )
        yield CounterMetricFamily(
            "reachwatch_canary_echo_bytes", "Bytes echoed back in echo sessions.", value=c.echo_bytes
        )
        yield GaugeMetricFamily(
            "reachwatch_canary_connections", "TCP connections held now.", value=c.connections
        )
        yield CounterMetricFamily(
            "reachwatch_canary_connections_refused",
            "TCP connections closed at once: over max_connections or max_connections_per_source.",
            value=c.connections_refused,
        )
        yield CounterMetricFamily(
            "reachwatch_canary_send_errors", "UDP replies the kernel refused to send.", value=c.send_errors
        )
        yield GaugeMetricFamily(
            "reachwatch_canary_sources",
            "Source addresses in the rate limiter's table.",
            value=self.canary.limiter.sources,
        )
        listening = GaugeMetricFamily(
            "reachwatch_canary_port_listening",
            "1 when the canary listens on this port on every configured address, 0 when it could not bind.",
            labels=["proto", "port"],
        )
        for (proto, port), ok in sorted(self.canary.listening.items()):
            listening.add_metric([proto, str(port)], 1 if ok else 0)
        yield listening


class MetricsServer:
    """``/metrics`` and ``/-/healthy`` behind the daemon's hardened listener (``weblisten``)."""

    def __init__(self, canary: Canary, address: str) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(CanaryCollector(canary))
        self.address = address
        self.app = web.Application()
        self.app.router.add_get("/metrics", self._metrics)
        self.app.router.add_get("/-/healthy", self._healthy)
        self._served: ServedApp | None = None
        self.listener: Listener | None = None

    async def start(self) -> None:
        host, port = parse_listen_address(self.address)
        limits = ListenerLimits(max_connections=16)
        self._served = await ServedApp.start(
            self.app,
            host,
            port,
            ssl_context=None,
            limits=limits,
            cap=connection_cap(limits, raise_nofile_limit(), 64),
            field="canary.metrics_listen_address",
            address=self.address,
        )
        self.listener = self._served.listener

    async def stop(self) -> None:
        if self._served is not None:
            await self._served.close()

    async def _metrics(self, request: web.Request) -> web.Response:
        body, content_type = encode(self.registry, request.headers.get("Accept", ""))
        response = web.Response(body=body)
        response.headers["Content-Type"] = content_type
        return response

    async def _healthy(self, request: web.Request) -> web.Response:
        return web.Response(text="Healthy.\n")


def canary_section(loaded: LoadedConfig) -> CanaryServiceConfig:
    if loaded.config.canary is None:
        raise ConfigError(
            loaded.source, "no canary: section (reachwatch canary needs one; see docs/CANARY.md)"
        )
    return loaded.config.canary


async def run(path: Path | None) -> int:
    """Run the canary until SIGTERM/SIGINT; SIGHUP reloads. Raises ``ReachwatchError`` on bad input."""
    loaded = load_full_config(path)
    config = canary_section(loaded)
    canary = Canary(config, key_for(config, loaded))
    metrics = MetricsServer(canary, config.metrics_listen_address)
    try:
        await canary.start()
        await metrics.start()
    except BaseException:
        await canary.close()
        await metrics.stop()
        raise
    log.info(
        "canary_started",
        tcp_ports=len(config.tcp_ports),
        udp_ports=len(config.udp_ports),
        listening=sum(1 for ok in canary.listening.values() if ok),
        metrics=config.metrics_listen_address,
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()

    async def reload() -> None:
        try:
            new = await asyncio.to_thread(load_full_config, path)
            section = canary_section(new)
            await canary.apply(section, key_for(section, new))
        except ReachwatchError as exc:
            log.error("canary_reload_failed", error=str(exc))
            return
        log.info("canary_reloaded", listening=sum(1 for ok in canary.listening.values() if ok))

    tasks: set[asyncio.Task[None]] = set()

    def on_hup() -> None:
        task = loop.create_task(reload())
        tasks.add(task)
        task.add_done_callback(tasks.discard)

    loop.add_signal_handler(signal.SIGHUP, on_hup)
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGINT, stop.set)
    try:
        await stop.wait()
    finally:
        for sig in (signal.SIGHUP, signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)
        await metrics.stop()
        await canary.close()
    log.info("canary_stopped")
    return 0
