"""The ``tls`` target, and ``TlsOptions``: how any TLS step judges a server's certificate (probe:
``probes/tls.py``; the options are shared by ``https``, ``dns`` (DoH), ``throughput`` and ``openconnect``)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from reachwatch.config.secrets import PublicFile
from reachwatch.config.types import Duration, Host, StrictModel, TargetBase, host_port


class TlsOptions(StrictModel):
    """How to judge a server's certificate: the system roots or a private CA, and optional pins. Shared
    by ``tls``, ``https``, ``throughput``, ``openconnect`` targets and DoH resolvers."""

    ca_file: PublicFile | None = Field(
        default=None, description="PEM bundle of a private CA, replacing the system roots"
    )
    verify: bool = Field(
        default=True,
        description="false skips chain validation (self-signed private endpoints); then set a pin",
    )
    spki_sha256: list[str] = Field(
        default_factory=list,
        description=(
            "pins on the SubjectPublicKeyInfo of any certificate of the chain (base64, `sha256/...` or hex)"
        ),
    )
    cert_sha256: list[str] = Field(
        default_factory=list, description="SHA-256 fingerprints of the leaf certificate (hex, colons allowed)"
    )

    def pinned(self) -> bool:
        """Whether any SPKI or certificate pin is configured."""
        return bool(self.spki_sha256 or self.cert_sha256)


class TlsTarget(TargetBase, TlsOptions):
    """A TLS server, the name it must prove, and how to judge its certificate."""

    kind: Literal["tls"]
    host: Host = Field(min_length=1, description="host name or IP address of the TLS server")
    port: int = Field(default=443, ge=1, le=65535, description="TCP port")
    server_name: str | None = Field(
        default=None,
        description=(
            "SNI and the name verified; defaults to `host` (an IP host is verified against the "
            "certificate's IP addresses and sends no SNI)"
        ),
    )
    neutral_sni: str | None = Field(
        default=None, description="a harmless name for the SNI-blocking diagnostic (e.g. `www.example.com`)"
    )
    handshake_timeout: Duration | None = Field(
        default=None,
        description=(
            "bound on the handshake alone; defaults to half the remaining deadline when `neutral_sni` is "
            "set (the diagnostic needs the other half), else the attempt's deadline"
        ),
    )

    def destination(self) -> str:
        return host_port(self.host, self.port)

    def sni(self) -> str | None:
        # an IP literal is passed too: Python then verifies the IP SAN and sends no SNI (RFC 6066)
        return self.server_name or self.host

    def sensitive_values(self) -> list[str]:
        values = [self.host, self.server_name, *self.spki_sha256, *self.cert_sha256]
        return [v for v in values if v]
