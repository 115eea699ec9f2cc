"""``throughput``: is a reachable target throttled? A timed download compared with a control download.

One HTTP(S) GET of ``url``, reading ``size`` body bytes (then we stop), and the same for ``control_url``
(a host with no reason to be throttled, ideally on a similar path out of the country), one after the
other so they do not compete for the link. Throughput is body bytes over the time from the request to
the last byte counted (bytes per second, facts ``throughput_bps`` / ``control_throughput_bps``). The
target transfer records the data stage facts of CONTRACTS.md (``bytes_moved``, ``transfer_goal_bytes``,
``transfer_seconds``, and ``cut_after_bytes``/``cut_after_s`` when it died): a cut with a reference
that downloaded the whole volume is ``flow_cut`` (``verdict.flow_cut``).

A throttled target may never finish ``size`` bytes, so each transfer has a time budget (the target
``transfer_timeout``, default 45% of the remaining deadline); when it runs out mid-body the bytes so far
are the measurement (fact ``transfer_timed_out``). That is what throttling looks like, not a failure.

Failures: the target/control ratio below ``max_ratio`` (default 0.25) is ``throughput_below_threshold``
at ``transfer`` with local evidence ``throttled``; a connection cut or reset mid-body is
``transfer_incomplete`` at ``transfer`` (the Russian 2023 VPN cut-off pattern); a body that never
starts within the budget is ``generic_timeout_error`` at ``transfer``. A failing control transfer fails
the attempt with its own failure (fact ``failed_transfer: control``): without a control there is no
comparison, and the verdict engine's vantage controls decide what that means.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass

from reachwatch.config.targets.throughput import ThroughputTarget
from reachwatch.config.targets.tls import TlsOptions
from reachwatch.config.types import Url
from reachwatch.failures import Failure, Stage, Technique
from reachwatch.model import ProbeResult
from reachwatch.net.dial import connect_tcp, pin_address
from reachwatch.net.errors import NetFailure
from reachwatch.net.http import HttpExchange
from reachwatch.net.tls import discard
from reachwatch.probes.base import ProbeContext, ProbeSpec
from reachwatch.probes.tls import handshake_with_evidence

TARGET_SHARE = 0.45  # of the remaining deadline, when no transfer_timeout is set
CONTROL_SHARE = 0.9  # of what is left after the target transfer


@dataclass
class Transfer:
    """One timed download: body bytes counted, seconds from request to last byte, budget ran out."""

    received: int
    seconds: float
    timed_out: bool

    @property
    def bps(self) -> float:
        return self.received / self.seconds if self.seconds > 0 else 0.0


async def _transfer(
    ctx: ProbeContext,
    url: Url,
    *,
    address: str | None,
    opts: TlsOptions,
    size: int,
    budget: float,
    data_facts: bool = False,
    stall: float | None = None,
) -> Transfer:
    """One timed download; setup failures raise, a budget expiry mid-body is a partial measurement."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + budget
    try:
        async with asyncio.timeout_at(deadline):
            with ctx.stage(Stage.RESOLVE):
                ip = address or await pin_address(url.host)
            with ctx.stage(Stage.CONNECT):
                reader, writer = await connect_tcp(ip, url.port)
    except TimeoutError as exc:
        raise NetFailure(Failure.GENERIC_TIMEOUT_ERROR, ctx.current_stage or Stage.CONNECT) from exc
    try:
        exchange = HttpExchange(reader, writer)
        try:
            async with asyncio.timeout_at(deadline):
                if url.scheme == "https":
                    with ctx.stage(Stage.TLS_HANDSHAKE):
                        sni = url.host  # an IP: verified against IP SANs, no SNI sent
                        await handshake_with_evidence(
                            ctx, reader, writer, ip=ip, port=url.port, server_name=sni, opts=opts
                        )
                with ctx.stage(Stage.HTTP):
                    await exchange.send_request("GET", url)
                    started = time.monotonic()
                    status = (await exchange.read_head()).status
                if not 200 <= status < 300:
                    ctx.fact("status", status)
                    raise NetFailure(Failure.HTTP_UNEXPECTED_STATUS_CODE, Stage.HTTP, f"status {status}")
        except TimeoutError as exc:
            raise NetFailure(Failure.GENERIC_TIMEOUT_ERROR, ctx.current_stage or Stage.HTTP) from exc
        timed_out = False
        if data_facts:
            ctx.fact("transfer_goal_bytes", size)
        with ctx.stage(Stage.TRANSFER):
            try:
                async with asyncio.timeout_at(deadline):
                    await _read_watched(exchange, size, stall or budget / 3)
            except TimeoutError:
                timed_out = True
            except NetFailure as exc:
                if data_facts:  # the flow died after it carried data: where (CONTRACTS.md, "Flow cut")
                    _data_facts(ctx, exchange.body_received, time.monotonic() - started, cut=True)
                raise NetFailure(Failure.TRANSFER_INCOMPLETE, Stage.TRANSFER, exc.detail) from exc
        if exchange.body_received == 0:
            if data_facts:
                _data_facts(ctx, 0, time.monotonic() - started, cut=True)
            raise NetFailure(Failure.GENERIC_TIMEOUT_ERROR, Stage.TRANSFER, "no body within the budget")
        if data_facts:
            _data_facts(ctx, exchange.body_received, time.monotonic() - started, cut=False)
        return Transfer(exchange.body_received, time.monotonic() - started, timed_out)
    finally:
        discard(writer)


async def _read_watched(exchange: HttpExchange, size: int, stall: float) -> None:
    """Read the body, and call a pause of ``stall`` seconds after some body bytes a cut.

    A throttled link trickles (bytes keep coming, slowly: a measurement); a censor that freezes the flow
    after some kilobytes (Russia's TSPU, 2022-) sends nothing more at all: that is ``transfer_incomplete``
    with its cut point, not a low throughput. Before the first body byte the budget decides (a body that
    never starts is ``generic_timeout_error``).
    """
    loop = asyncio.get_running_loop()
    reading = asyncio.ensure_future(exchange.read_body(size, keep=False))
    try:
        seen, since = exchange.body_received, loop.time()
        while not reading.done():
            await asyncio.wait({reading}, timeout=min(0.1, stall))
            if exchange.body_received != seen:
                seen, since = exchange.body_received, loop.time()
            elif seen > 0 and loop.time() - since >= stall:
                raise NetFailure(Failure.TRANSFER_INCOMPLETE, Stage.TRANSFER, f"no data for {stall:.1f} s")
        reading.result()
    finally:
        if not reading.done():
            reading.cancel()
            with contextlib.suppress(asyncio.CancelledError, NetFailure):
                await reading


def _data_facts(ctx: ProbeContext, moved: int, seconds: float, *, cut: bool) -> None:
    """The data stage facts every kind records (CONTRACTS.md): bytes, seconds, and the cut point."""
    ctx.fact("bytes_moved", moved)
    ctx.fact("transfer_seconds", round(seconds, 6))
    if cut:
        ctx.fact("cut_after_bytes", moved)
        ctx.fact("cut_after_s", round(seconds, 6))


async def probe(target: ThroughputTarget, ctx: ProbeContext) -> ProbeResult:
    budget = target.transfer_timeout or ctx.remaining() * TARGET_SHARE
    measured = await _transfer(
        ctx,
        Url.parse(target.url),
        address=target.address,
        opts=target.tls,
        size=target.size,
        budget=budget,
        data_facts=True,
        stall=target.stall_timeout,
    )
    ctx.fact("throughput_bps", round(measured.bps, 1))
    ctx.fact("transfer_bytes", measured.received)
    ctx.fact("transfer_timed_out", measured.timed_out)
    try:
        control = await _transfer(
            ctx,
            Url.parse(target.control_url),
            address=target.control_address,
            opts=target.control_tls,
            size=target.size,
            budget=ctx.remaining() * CONTROL_SHARE,
        )
    except NetFailure:
        ctx.fact("failed_transfer", "control")
        raise
    ctx.fact("control_throughput_bps", round(control.bps, 1))
    ratio = measured.bps / control.bps if control.bps > 0 else 1.0
    ctx.fact("throughput_ratio", round(ratio, 4))
    if ratio < target.max_ratio:
        return ctx.fail(Failure.THROUGHPUT_BELOW_THRESHOLD, Stage.TRANSFER, evidence=Technique.THROTTLED)
    return ctx.succeed()


SPEC = ProbeSpec(
    kind="throughput",
    target_model=ThroughputTarget,
    probe=probe,
    description="timed download compared with a control download (throttling)",
)
