"""``shadowsocks``: with the key, relay a nonce through the server to the canary and get it back.

Stages: ``connect`` (TCP to the server), ``protocol_handshake`` (our request - salt, target address and
the canary line in one write - until the server's first chunk decrypts: proof that it holds our key),
``tunnel`` (the decrypted answer is the canary's echo of our nonce), ``transfer`` (``vpn.canary`` push).

A Shadowsocks server answers nothing without the key, and also closes without a word when it cannot
reach the target; so no answer within ``response_timeout`` is ``protocol_no_response`` and a close is
``eof_error``, both at ``protocol_handshake``. Neither is blocking by itself: only a control (the same
server reached from abroad, or a TCP/protocol control on the same path) can make it so.
"""

from __future__ import annotations

import asyncio
from typing import Literal

from pydantic import Field, field_validator

from reachwatch.config.secrets import read_secret
from reachwatch.config.types import Duration, TargetBase, host_port
from reachwatch.errors import ConfigError
from reachwatch.failures import Failure, Stage
from reachwatch.importers.ssuri import key_from_uri_file
from reachwatch.model import ProbeResult
from reachwatch.net.errors import NetFailure
from reachwatch.probes.base import ProbeContext, ProbeSpec, open_tcp
from reachwatch.vpn.canary import CanaryConfig, canary_line, push_canary, recv_exactly, verify_canary
from reachwatch.vpn.shadowsocks import METHODS, ShadowsocksStream


class ShadowsocksTarget(TargetBase):
    """A Shadowsocks AEAD server. The key comes from ``password_file``/``password_env`` or from the
    user's ``ss://`` URI file (``uri_file``/``uri_line``), never from the YAML."""

    kind: Literal["shadowsocks"]
    host: str = Field(min_length=1)
    port: int = Field(ge=1, le=65535)
    method: str = "chacha20-ietf-poly1305"
    password_file: str | None = None
    password_env: str | None = None
    uri_file: str | None = None
    uri_line: int = Field(default=1, ge=1)
    canary: CanaryConfig
    response_timeout: Duration = 5.0

    @field_validator("method")
    @classmethod
    def _known_method(cls, method: str) -> str:
        if method not in METHODS:
            raise ValueError(f"unsupported cipher {method!r}; supported: {', '.join(METHODS)}")
        return method

    def destination(self) -> str:
        return host_port(self.host, self.port)

    def sensitive_values(self) -> list[str]:
        return [*super().sensitive_values(), self.canary.host]  # the operator's canary identifies too

    def key(self, ctx: ProbeContext) -> tuple[str, str]:
        """(method, password) from the ``ss://`` file or the password secret; blocking file I/O."""
        if self.uri_file:
            return key_from_uri_file(self.uri_file, self.uri_line, ctx.base_dir)
        password = read_secret(self.password_file, self.password_env, ctx.base_dir, "password_file")
        if password is None:
            raise ConfigError(self.name, "shadowsocks needs password_file, password_env or uri_file")
        return self.method, password


async def probe(target: ShadowsocksTarget, ctx: ProbeContext) -> ProbeResult:
    # read on every attempt (rotation without reload), so off the event loop
    method, password = await asyncio.to_thread(target.key, ctx)
    if method not in METHODS:
        raise ConfigError(target.name, f"unsupported cipher {method!r}")
    _, reader, writer = await open_tcp(ctx, target.host, target.port)
    stream = ShadowsocksStream(
        reader,
        writer,
        method=method,
        password=password,
        host=target.canary.host,
        port=target.canary.port,
    )
    try:
        line = canary_line()
        with ctx.stage(Stage.PROTOCOL_HANDSHAKE):
            await stream.send(line)
            try:
                async with asyncio.timeout(min(target.response_timeout, ctx.remaining())):
                    first = await recv_exactly(stream, 1, Stage.PROTOCOL_HANDSHAKE)
            except TimeoutError:
                raise NetFailure(
                    Failure.PROTOCOL_NO_RESPONSE, Stage.PROTOCOL_HANDSHAKE, "no answer from server"
                ) from None
        with ctx.stage(Stage.TUNNEL):
            rest = await recv_exactly(stream, len(line) - 1, Stage.TUNNEL)
            if first + rest != line:
                raise NetFailure(Failure.CANARY_MISMATCH, Stage.TUNNEL, "canary answered something else")
            await verify_canary(stream)  # a second round trip on the same stream
        await push_canary(stream, target.canary, ctx)
    finally:
        await stream.close()
    return ctx.succeed()


SPEC = ProbeSpec(
    kind="shadowsocks",
    target_model=ShadowsocksTarget,
    probe=probe,
    description="Shadowsocks AEAD: relay a nonce to the canary with the key, usability push",
)
