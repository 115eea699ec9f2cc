"""The ``openconnect`` target: an OpenConnect/AnyConnect server, its camouflage secret and an optional probe
account (probe: ``probes/openconnect.py``)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from reachwatch.config.secrets import SecretEnv, SecretFile
from reachwatch.config.targets.tls import TlsOptions
from reachwatch.config.types import Duration, Host, TargetBase, host_port, is_ip_literal


class OpenConnectTarget(TargetBase, TlsOptions):
    """An OpenConnect/AnyConnect server (HTTPS). ``server_name`` defaults to ``host`` (none for an IP)."""

    kind: Literal["openconnect"]
    host: Host = Field(min_length=1)
    port: int = Field(default=443, ge=1, le=65535)
    server_name: str | None = None
    path: str = Field(default="/", pattern=r"^/[A-Za-z0-9_./-]*$")  # a group URL such as /staff
    camouflage_secret_file: SecretFile | None = None
    camouflage_secret_env: SecretEnv | None = None  # environment variable holding the camouflage secret
    handshake_timeout: Duration | None = None  # bound on the TLS handshake alone
    # optional login (a dedicated probe account): proves the credentials, not only the server
    username: str | None = None
    password_file: SecretFile | None = None  # the probe account's password (mode 0600)
    password_env: SecretEnv | None = None  # or an environment variable holding it

    def destination(self) -> str:
        return host_port(self.host, self.port)

    def sni(self) -> str | None:
        return self.server_name or (None if is_ip_literal(self.host) else self.host)

    def sensitive_values(self) -> list[str]:
        values = [self.host, self.server_name, *self.spki_sha256, *self.cert_sha256]
        return [v for v in values if v]
