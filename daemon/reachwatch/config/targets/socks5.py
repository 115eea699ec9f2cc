"""The ``socks5`` target, and the fields every proxy kind shares (probe: ``probes/socks5.py``)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field

from reachwatch.config.proxyurl import proxy_credentials
from reachwatch.config.secrets import SecretEnv, SecretFile
from reachwatch.config.targets.canary import CanaryConfig
from reachwatch.config.targets.datastage import DataStageConfig
from reachwatch.config.types import Host, TargetBase, host_port


class ProxyTargetBase(TargetBase):
    """Fields shared by the proxy kinds. Credentials come from a file or an environment variable, never
    from the YAML: a password with ``username``, or the proxy URL the user already has (``url_file``)."""

    host: Host = Field(min_length=1, description="the proxy's host name or IP address")
    port: int = Field(ge=1, le=65535, description="the proxy's TCP port")
    username: str | None = Field(default=None, description="login, with password_file or password_env")
    password_file: SecretFile | None = Field(default=None, description="the login's password")
    password_env: SecretEnv | None = Field(
        default=None, description="environment variable holding the login's password"
    )
    url_file: SecretFile | None = Field(
        default=None,
        description=(
            "the user's file of proxy URLs (`socks5://user:pass@host:port`), instead of username and password"
        ),
    )
    url_line: int = Field(default=1, ge=1, description="which line of url_file (1 is the first)")
    canary: CanaryConfig | None = Field(
        default=None,
        description=(
            "an echo service abroad to connect to through the proxy; without one the attempt stops after "
            "the handshake"
        ),
    )
    data_stage: DataStageConfig = Field(
        default_factory=DataStageConfig,
        description="what goes through the tunnel to the canary before the proxy counts as usable",
    )

    def destination(self) -> str:
        return host_port(self.host, self.port)

    def data_stage_on(self) -> bool:
        """Whether the probe carries data after the handshake (a canary to reach is configured)."""
        return self.canary is not None

    def sensitive_values(self) -> list[str]:
        # the canary is the operator's own server abroad: as identifying as the proxy itself
        return [*super().sensitive_values(), *([self.canary.host] if self.canary else [])]

    def credentials(self, base_dir: Path) -> tuple[str | None, str | None]:
        """(username, password) from the secret file or env; blocking file I/O (read in a worker thread)."""
        return proxy_credentials(
            username=self.username,
            password_file=self.password_file,
            password_env=self.password_env,
            url_file=self.url_file,
            url_line=self.url_line,
            base_dir=base_dir,
        )


class Socks5Target(ProxyTargetBase):
    """A SOCKS5 proxy (RFC 1928), optionally with username/password auth (RFC 1929)."""

    kind: Literal["socks5"]
