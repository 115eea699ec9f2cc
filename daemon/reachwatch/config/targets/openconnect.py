"""The ``openconnect`` target: an OpenConnect/AnyConnect server, its camouflage secret and an optional probe
account (probe: ``probes/openconnect.py``)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from reachwatch.config.secrets import SecretEnv, SecretFile
from reachwatch.config.targets.datastage import DataStageConfig
from reachwatch.config.targets.tls import TlsOptions
from reachwatch.config.types import Duration, Host, InsideIPv4, TargetBase, host_port, is_ip_literal


class OpenConnectTarget(TargetBase, TlsOptions):
    """An OpenConnect/AnyConnect server (HTTPS), optionally with a probe account to log in with."""

    kind: Literal["openconnect"]
    host: Host = Field(
        min_length=1, description="the OpenConnect/AnyConnect server's host name or IP address"
    )
    port: int = Field(default=443, ge=1, le=65535, description="its HTTPS port")
    server_name: str | None = Field(
        default=None, description="SNI and the name verified; defaults to `host` (none for an IP)"
    )
    path: str = Field(
        default="/", pattern=r"^/[A-Za-z0-9_./-]*$", description="the group URL to log in at, such as /staff"
    )
    camouflage_secret_file: SecretFile | None = Field(
        default=None, description="ocserv camouflage: the secret that goes in the URL"
    )
    camouflage_secret_env: SecretEnv | None = Field(
        default=None, description="environment variable holding the camouflage secret"
    )
    handshake_timeout: Duration | None = Field(default=None, description="bound on the TLS handshake alone")
    username: str | None = Field(
        default=None,
        description=(
            "optional login of a dedicated probe account: proves the credentials, not only the server"
        ),
    )
    password_file: SecretFile | None = Field(default=None, description="the probe account's password")
    password_env: SecretEnv | None = Field(
        default=None, description="environment variable holding the probe account's password"
    )
    ping_address: InsideIPv4 | None = Field(
        default=None,
        description=(
            "an IPv4 address inside the tunnel that answers ICMP echo (the server's tunnel address): with "
            "a login, the probe opens the CSTP tunnel and the data stage's echoes go there"
        ),
    )
    data_stage: DataStageConfig = Field(
        default_factory=DataStageConfig,
        description="what goes through the CSTP tunnel before it counts as usable (login + ping_address)",
    )

    @model_validator(mode="after")
    def _login_for_data(self) -> OpenConnectTarget:
        if self.ping_address is not None and self.username is None:
            raise ValueError("ping_address needs a login (username and password_file or password_env)")
        return self

    def data_stage_on(self) -> bool:
        """Whether the probe opens the tunnel and carries data (a login and an address to echo with)."""
        return self.username is not None and self.ping_address is not None

    def destination(self) -> str:
        return host_port(self.host, self.port)

    def sni(self) -> str | None:
        return self.server_name or (None if is_ip_literal(self.host) else self.host)

    def sensitive_values(self) -> list[str]:
        values = [self.host, self.server_name, *self.spki_sha256, *self.cert_sha256]
        return [v for v in values if v]
