"""``port_survey``: which TCP and UDP ports (and ICMP echo) still reach a ``reachwatch canary`` abroad.

Each port is a small attempt of its own, with its own deadline (``port_timeout``), against the canary's
keyed protocol (``formats/canary.py``): a keyed request with a fresh nonce, and the canary's keyed reply
naming the port and transport it arrived on. A port is

- ``open``: the canary's reply verified, on the port and transport we dialled;
- ``closed``: something said no or answered in the canary's place: a refused or reset connect, an ICMP
  port unreachable on UDP, an end of stream, a reply that does not verify (a middlebox, another service on
  that port, another secret: ``canary_mismatch``), or the canary's reply from another port than we
  dialled (a censor redirecting every port to one: ``ports_redirected``);
- ``filtered``: silence until the port's deadline, or an ICMP host/network unreachable (as nmap reads
  them);
- ``untested``: we could not try it (no ping socket allowed, the survey's deadline ran out first).

Stages per port: ``connect`` (TCP handshake; for UDP opening the socket; for ICMP the echo itself) and
``protocol_handshake`` (request and reply). TCP connects, UDP datagrams and ICMP echoes all go through one
pacer (``rate`` a second) and at most ``parallel`` ports run at once; a UDP port gets ``udp_sends``
datagrams with growing gaps within its deadline.

Facts (lists of port labels such as ``179/tcp``, ``3785/udp``, ``icmp``): ``ports_open``,
``ports_closed``, ``ports_filtered``, ``ports_untested``, ``ports_redirected``, and ``port_failures``
(``22/tcp:connect:connection_refused``: label, stage and failure of each port that is not open). The
attempt succeeds when at least one port is open; otherwise it fails with the most common failure among
the ports it tried, at that failure's stage.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections import Counter
from dataclasses import dataclass
from typing import Literal

from reachwatch.config.ports import Proto, port_label
from reachwatch.config.targets.port_survey import PortSurveyTarget
from reachwatch.failures import Failure, Stage
from reachwatch.formats import canary as wire
from reachwatch.model import ProbeResult
from reachwatch.net.dial import close_quietly, connect_tcp, pin_address
from reachwatch.net.errors import NetFailure, classified
from reachwatch.net.icmp import icmp_echo
from reachwatch.net.udp import open_udp
from reachwatch.probes.base import ProbeContext, ProbeSpec

PortState = Literal["open", "closed", "filtered", "untested"]
STATES: tuple[PortState, ...] = ("open", "closed", "filtered", "untested")
# the least time worth starting a port with; a port that would get less is untested
MIN_PORT_SECONDS = 0.2
DEADLINE_MARGIN = 0.3  # seconds of the attempt's deadline kept for building the result

_CLOSED = frozenset(
    {
        Failure.CONNECTION_REFUSED,
        Failure.CONNECTION_RESET,
        Failure.CONNECTION_ABORTED,
        Failure.EOF_ERROR,
        Failure.CANARY_MISMATCH,
        Failure.PROTOCOL_ERROR,
    }
)
_FILTERED = frozenset(
    {
        Failure.GENERIC_TIMEOUT_ERROR,
        Failure.HOST_UNREACHABLE,
        Failure.NETWORK_UNREACHABLE,
        Failure.NETWORK_DOWN,
        Failure.PERMISSION_DENIED,  # an ICMP administratively-prohibited, as a local nftables reject says
    }
)


def port_state(proto: Proto, failure: Failure | None) -> PortState:
    """The one rule from a port's failure to its state (see the module docstring)."""
    if failure is None:
        return "open"
    if proto == "icmp" and failure in (Failure.PERMISSION_DENIED, Failure.ADDRESS_FAMILY_NOT_SUPPORTED):
        return "untested"  # no ping socket for us: says nothing about the network
    if failure in _CLOSED:
        return "closed"
    if failure in _FILTERED:
        return "filtered"
    return "untested"


@dataclass(frozen=True)
class PortOutcome:
    """What one port of the survey gave."""

    proto: Proto
    port: int
    failure: Failure | None = None
    stage: Stage | None = None
    redirected: bool = False
    tried: bool = True  # False: the survey's deadline left no time to try it

    @property
    def label(self) -> str:
        return port_label(self.proto, self.port)

    @property
    def state(self) -> PortState:
        return port_state(self.proto, self.failure) if self.tried else "untested"


class Pacer:
    """Spaces packets ``1 / rate`` seconds apart across every port of one survey."""

    def __init__(self, rate: float) -> None:
        self.gap = 1.0 / rate
        self._next = 0.0
        self._lock = asyncio.Lock()

    async def wait(self) -> None:
        async with self._lock:
            now = time.monotonic()
            if self._next > now:
                await asyncio.sleep(self._next - now)
            self._next = max(now, self._next) + self.gap


@dataclass
class _Port:
    """A port's attempt in progress: which stage it is in (a deadline is charged to it)."""

    proto: Proto
    port: int
    stage: Stage = Stage.CONNECT
    redirected: bool = False


def _check_reply(data: bytes, key: bytes, request: bytes, attempt: _Port) -> None:
    """``canary_mismatch`` unless ``data`` is the canary's reply to ``request`` from where we sent it."""
    try:
        reply = wire.verify_reply(data, key, request)
    except wire.FrameError as exc:
        raise NetFailure(Failure.CANARY_MISMATCH, Stage.PROTOCOL_HANDSHAKE, str(exc)) from None
    if reply.port != attempt.port or reply.proto != _PROTO[attempt.proto]:
        attempt.redirected = True
        raise NetFailure(Failure.CANARY_MISMATCH, Stage.PROTOCOL_HANDSHAKE, "reply from another port")


_PROTO = {"tcp": wire.Proto.TCP, "udp": wire.Proto.UDP}


def _request(key: bytes, attempt: _Port) -> bytes:
    proto = _PROTO[attempt.proto]
    return wire.Request(wire.FrameType.PROBE, proto, attempt.port, os.urandom(wire.NONCE_SIZE)).encode(key)


class _Survey:
    """One survey's shared parts: the canary's address and key, the concurrency gate and the pacer."""

    def __init__(self, target: PortSurveyTarget, ctx: ProbeContext, ip: str, key: bytes) -> None:
        self.target = target
        self.ctx = ctx
        self.ip = ip
        self.key = key
        self.gate = asyncio.Semaphore(target.parallel)
        self.pacer = Pacer(target.rate)

    async def port(self, proto: Proto, port: int) -> PortOutcome:
        """One port, within its own deadline; never raises (the outcome carries the failure)."""
        attempt = _Port(proto, port)
        async with self.gate:
            budget = min(self.target.port_timeout, self.ctx.remaining() - DEADLINE_MARGIN)
            if budget < MIN_PORT_SECONDS:
                return PortOutcome(proto, port, Failure.GENERIC_TIMEOUT_ERROR, None, tried=False)
            try:
                async with asyncio.timeout(budget):
                    if proto == "tcp":
                        await self._tcp(attempt)
                    elif proto == "udp":
                        await self._udp(attempt, budget)
                    else:
                        await icmp_echo(
                            self.ip,
                            sends=self.target.udp_sends,
                            interval=budget / self.target.udp_sends,
                            before_send=self.pacer.wait,
                        )
            except NetFailure as exc:
                return PortOutcome(proto, port, exc.failure, exc.stage, attempt.redirected)
            except TimeoutError:
                return PortOutcome(proto, port, Failure.GENERIC_TIMEOUT_ERROR, attempt.stage)
        return PortOutcome(proto, port)

    async def _tcp(self, attempt: _Port) -> None:
        await self.pacer.wait()
        reader, writer = await connect_tcp(self.ip, attempt.port)
        try:
            attempt.stage = Stage.PROTOCOL_HANDSHAKE
            request = _request(self.key, attempt)
            with classified(Stage.PROTOCOL_HANDSHAKE):
                writer.write(request)
                await writer.drain()
                data = await reader.readexactly(wire.REPLY_SIZE)
            _check_reply(data, self.key, request, attempt)
        finally:
            await close_quietly(writer)

    async def _udp(self, attempt: _Port, budget: float) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + budget - DEADLINE_MARGIN / 2  # inside the caller's: the verdict is ours
        sends = self.target.udp_sends
        sock = await open_udp(self.ip, attempt.port, Stage.PROTOCOL_HANDSHAKE)
        attempt.stage = Stage.PROTOCOL_HANDSHAKE
        request = _request(self.key, attempt)
        # the gaps double (as RFC 5389 retransmits do) and together fill the port's budget
        gap = budget / (2**sends - 1)
        mismatch: NetFailure | None = None
        try:
            for number in range(sends):
                await self.pacer.wait()
                sock.send(request)
                until = deadline if number == sends - 1 else min(deadline, loop.time() + gap * 2**number)
                try:
                    async with asyncio.timeout_at(until):
                        while True:
                            try:
                                _check_reply(await sock.recv(), self.key, request, attempt)
                                return
                            except NetFailure as exc:
                                if attempt.redirected or exc.failure is not Failure.CANARY_MISMATCH:
                                    raise  # the canary says it got this elsewhere; or ICMP unreachable
                                mismatch = exc  # garbage or an impostor; the canary's reply may still come
                except TimeoutError:
                    continue
        finally:
            sock.close()
        if mismatch is not None:
            raise mismatch
        raise NetFailure(Failure.GENERIC_TIMEOUT_ERROR, Stage.PROTOCOL_HANDSHAKE, "no reply")


def record(ctx: ProbeContext, outcomes: list[PortOutcome]) -> ProbeResult:
    """The survey's facts and result from its ports' outcomes (see the module docstring)."""
    by_state: dict[PortState, list[str]] = {state: [] for state in STATES}
    for outcome in outcomes:
        by_state[outcome.state].append(outcome.label)
    for state in STATES:
        ctx.fact(f"ports_{state}", by_state[state])
    ctx.fact("ports_redirected", [o.label for o in outcomes if o.redirected])
    ctx.fact(
        "port_failures",
        [f"{o.label}:{o.stage.value if o.stage else '-'}:{o.failure.value}" for o in outcomes if o.failure],
    )
    if by_state["open"]:
        return ctx.succeed()
    tried = [o for o in outcomes if o.state != "untested"] or outcomes
    counts = Counter((o.failure, o.stage) for o in tried)
    (failure, stage), _ = counts.most_common(1)[0]
    return ctx.fail(failure or Failure.UNKNOWN_FAILURE, stage or Stage.CONNECT)


async def probe(target: PortSurveyTarget, ctx: ProbeContext) -> ProbeResult:
    # read on every attempt (a rotated secret needs no reload), so off the event loop
    key = wire.derive_key(await asyncio.to_thread(target.canary_secret, ctx.base_dir, target.name))
    with ctx.stage(Stage.RESOLVE):
        ip = await pin_address(target.host)
    ctx.public_fact("ip", ip)
    ports: list[tuple[Proto, int]] = [
        *(("tcp", p) for p in target.tcp_ports),
        *(("udp", p) for p in target.udp_ports),
        *((("icmp", 0),) if target.icmp else ()),
    ]
    survey = _Survey(target, ctx, ip, key)
    outcomes = await asyncio.gather(*(survey.port(proto, port) for proto, port in ports))
    return record(ctx, list(outcomes))


SPEC = ProbeSpec(
    kind="port_survey",
    target_model=PortSurveyTarget,
    probe=probe,
    description="which TCP/UDP ports and ICMP echo reach a reachwatch canary abroad",
)
