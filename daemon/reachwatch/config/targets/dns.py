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
    """One resolver to ask. Exactly one of ``udp`` (``ip``, ``ip:port``, ``[v6]:port``) or ``doh`` (an
    https URL). For DoH, ``address`` pins the IP to connect to (recommended: resolving the DoH host with
    the system resolver trusts the resolver under test); ``ca_file``/pins as for ``tls`` targets.
    ``trusted`` defaults to true for DoH and false for UDP."""

    name: str = Field(pattern=NAME_PATTERN)  # how this resolver is named in facts
    udp: str | None = None
    doh: str | None = None
    address: str | None = None
    trusted: bool | None = None
    tls: TlsOptions = Field(default_factory=TlsOptions)

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
    """A name to resolve. ``destination()`` is the name itself (``<query>:53``): the thing measured.

    - ``query``, ``record_type`` (A or AAAA), ``system`` (also ask getaddrinfo; default true);
    - ``resolvers``: see ``DnsResolver``; ``bogon_exempt``: networks not counted as bogons;
    - ``compare_answers``: flag disjoint trusted/untrusted answers (rule 3 of the ``dns`` probe).
    """

    kind: Literal["dns"]
    query: str = Field(min_length=1, max_length=253)  # the name to resolve
    record_type: Literal["A", "AAAA"] = "A"
    system: bool = True
    resolvers: list[DnsResolver] = Field(default_factory=list)
    bogon_exempt: list[str] = Field(default_factory=list)
    compare_answers: bool = True

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
