"""The ``tls`` target, and ``TlsOptions``: how any TLS step judges a server's certificate (probe:
``probes/tls.py``; the options are shared by ``https``, ``dns`` (DoH), ``throughput`` and ``openconnect``)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from reachwatch.config.secrets import PublicFile
from reachwatch.config.types import Duration, Host, StrictModel, TargetBase, host_port


class TlsOptions(StrictModel):
    """How to judge a server's certificate; shared by ``tls``, ``https`` and ``throughput`` targets.

    - ``ca_file``: PEM bundle for a private CA (replaces the system roots); relative to the config file.
    - ``verify``: ``false`` skips chain validation (self-signed private endpoints); then set a pin.
    - ``spki_sha256``: pins on the SubjectPublicKeyInfo of any chain certificate (base64, ``sha256/...``
      or hex). ``cert_sha256``: SHA-256 fingerprints of the leaf certificate (hex, colons allowed).
    """

    ca_file: PublicFile | None = None
    verify: bool = True
    spki_sha256: list[str] = Field(default_factory=list)
    cert_sha256: list[str] = Field(default_factory=list)

    def pinned(self) -> bool:
        """Whether any SPKI or certificate pin is configured."""
        return bool(self.spki_sha256 or self.cert_sha256)


class TlsTarget(TargetBase, TlsOptions):
    """A TLS server: ``host`` (name or IP) and ``port``.

    - ``server_name``: SNI and the name verified; defaults to ``host`` (an IP host is verified against the
      certificate's IP addresses and sends no SNI).
    - ``neutral_sni``: a harmless name for the SNI-blocking diagnostic (e.g. ``www.example.com``).
    - ``handshake_timeout``: bound on the handshake alone; defaults to half the remaining deadline when
      ``neutral_sni`` is set (the diagnostic needs the other half), else the probe deadline.
    """

    kind: Literal["tls"]
    host: Host = Field(min_length=1)
    port: int = Field(default=443, ge=1, le=65535)
    server_name: str | None = None
    neutral_sni: str | None = None
    handshake_timeout: Duration | None = None

    def destination(self) -> str:
        return host_port(self.host, self.port)

    def sni(self) -> str | None:
        # an IP literal is passed too: Python then verifies the IP SAN and sends no SNI (RFC 6066)
        return self.server_name or self.host

    def sensitive_values(self) -> list[str]:
        values = [self.host, self.server_name, *self.spki_sha256, *self.cert_sha256]
        return [v for v in values if v]
