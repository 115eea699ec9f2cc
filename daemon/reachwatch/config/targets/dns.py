"""The ``dns`` target and its resolvers: a name, and whom to ask (probe: ``probes/dns.py``)."""

from __future__ import annotations

import ipaddress
from typing import Literal

from pydantic import Field, field_validator, model_validator

from reachwatch.config.targets.tls import TlsOptions
from reachwatch.config.types import NAME_PATTERN, StrictModel, TargetBase, Url, is_ip_literal


def split_resolver_address(value: str, default_port: int) -> tuple[str, int]:
    """A UDP resolver's ``ip``, ``ip:port`` or ``[v6]:port`` -> (ip, port)."""
    if value.startswith("["):
        host, _, rest = value[1:].partition("]")
        return host, int(rest[1:]) if rest.startswith(":") else default_port
    if value.count(":") == 1:
        host, port = value.split(":")
        return host, int(port)
    return value, default_port


class DnsResolver(StrictModel):
    """One resolver to ask: plain UDP or DNS-over-HTTPS. DoH answers are encrypted and authenticated, so
    an on-path censor cannot rewrite them: they are trusted by default, UDP answers are not."""

    name: str = Field(
        pattern=NAME_PATTERN, description="how this resolver is named in facts (`resolver_<name>`)"
    )
    udp: str | None = Field(
        default=None,
        description="a plain DNS resolver: `ip`, `ip:port` or `[v6]:port` (exactly one of udp and doh)",
    )
    doh: str | None = Field(
        default=None, description="a DNS-over-HTTPS resolver: its https:// URL (exactly one of udp and doh)"
    )
    address: str | None = Field(
        default=None,
        description=(
            "DoH: the IP to connect to (recommended: resolving the DoH host with the system resolver "
            "would trust the resolver under test)"
        ),
    )
    trusted: bool | None = Field(
        default=None,
        description=(
            "whether its answers are the reference for tampering; default true for DoH, false for UDP"
        ),
    )
    tls: TlsOptions = Field(
        default_factory=TlsOptions,
        description="DoH: how to judge the resolver's certificate (as for `tls` targets)",
    )

    @model_validator(mode="after")
    def _one_transport(self) -> DnsResolver:
        if (self.udp is None) == (self.doh is None):
            raise ValueError("a resolver needs exactly one of udp or doh")
        if self.udp is not None:
            host, port = split_resolver_address(self.udp, 53)
            if not is_ip_literal(host) or not 0 < port < 65536:
                raise ValueError(f"udp resolver {self.udp!r}: use ip, ip:port or [ipv6]:port")
        if self.doh is not None and Url.parse(self.doh).scheme != "https":
            raise ValueError("doh must be an https:// URL")
        return self

    def is_trusted(self) -> bool:
        return self.trusted if self.trusted is not None else self.doh is not None

    def hosts(self) -> list[str]:
        if self.udp is not None:
            return [split_resolver_address(self.udp, 53)[0]]
        assert self.doh is not None
        return [h for h in (Url.parse(self.doh).host, self.address, self.doh) if h]


class DnsTarget(TargetBase):
    """A name to resolve, and the resolvers whose answers are compared. The destination is the name
    itself (``<query>:53``): the thing measured."""

    kind: Literal["dns"]
    query: str = Field(min_length=1, max_length=253, description="the name to resolve")
    record_type: Literal["A", "AAAA"] = Field(default="A", description="A or AAAA")
    system: bool = Field(
        default=True, description="also ask the system resolver (getaddrinfo: what applications here use)"
    )
    resolvers: list[DnsResolver] = Field(
        default_factory=list, description="resolvers to ask besides the system's"
    )
    bogon_exempt: list[str] = Field(
        default_factory=list,
        description=(
            "networks (CIDR) that are legitimate answers here and not counted as bogons (e.g. "
            "split-horizon names)"
        ),
    )
    compare_answers: bool = Field(
        default=True,
        description=(
            "flag disjoint trusted and untrusted answers as tampering (turn off for CDN-hosted names)"
        ),
    )

    @field_validator("bogon_exempt")
    @classmethod
    def _networks(cls, values: list[str]) -> list[str]:
        for value in values:
            ipaddress.ip_network(value, strict=False)
        return values

    @model_validator(mode="after")
    def _someone_to_ask(self) -> DnsTarget:
        if not self.system and not self.resolvers:
            raise ValueError("nothing to ask: set system: true or list resolvers")
        labels = [r.name for r in self.resolvers]
        if "system" in labels or len(set(labels)) != len(labels):
            raise ValueError("resolver names must be unique and not 'system'")
        return self

    def destination(self) -> str:
        return f"{self.query}:53"

    def sensitive_values(self) -> list[str]:
        return [self.query, *(h for r in self.resolvers for h in r.hosts())]
