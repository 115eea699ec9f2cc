"""The ``shadowsocks`` target: a server, its cipher and where its key is (probe: ``probes/shadowsocks.py``).

The cipher names are listed here because the config accepts exactly these; the ciphers themselves live with
the stream code (``vpn/shadowsocks.py``, ``vpn/ss2022.py``), and a test keeps the two lists equal.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator

from reachwatch.config.secrets import SecretEnv, SecretFile, read_secret
from reachwatch.config.ssuri import key_from_uri_file
from reachwatch.config.targets.canary import CanaryConfig
from reachwatch.config.targets.datastage import DataStageConfig
from reachwatch.config.types import Duration, Host, TargetBase, host_port
from reachwatch.errors import ConfigError

CIPHERS_2017 = ("aes-128-gcm", "aes-256-gcm", "chacha20-ietf-poly1305")  # AEAD 2017: the key is a password
CIPHERS_2022 = ("2022-blake3-aes-128-gcm", "2022-blake3-aes-256-gcm")  # SIP022: the key is a base64 PSK
SUPPORTED = (*CIPHERS_2017, *CIPHERS_2022)


class ShadowsocksTarget(TargetBase):
    """A Shadowsocks server, AEAD 2017 or 2022 edition. The key comes from a file, an environment
    variable or the user's ``ss://`` URI file, never from the YAML."""

    kind: Literal["shadowsocks"]
    host: Host = Field(min_length=1, description="the Shadowsocks server's host name or IP address")
    port: int = Field(ge=1, le=65535, description="its TCP port")
    method: str = Field(
        default="chacha20-ietf-poly1305",
        description=(
            "the cipher: AEAD 2017 (aes-128-gcm, aes-256-gcm, chacha20-ietf-poly1305; the key is a "
            "password) or 2022 edition (2022-blake3-aes-128-gcm, 2022-blake3-aes-256-gcm; the key is a "
            "base64 PSK of 16/32 bytes); with uri_file, the URI's own method is used"
        ),
    )
    password_file: SecretFile | None = Field(
        default=None, description="the key: a password, or for 2022 methods the base64 PSK"
    )
    password_env: SecretEnv | None = Field(default=None, description="environment variable holding the key")
    uri_file: SecretFile | None = Field(
        default=None, description="the user's file of `ss://` URIs, instead of a password"
    )
    uri_line: int = Field(default=1, ge=1, description="which line of uri_file (1 is the first)")
    canary: CanaryConfig = Field(
        description="the echo service abroad the server relays to (the proof that it carries data)"
    )
    data_stage: DataStageConfig = Field(
        default_factory=DataStageConfig,
        description="what goes through the server to the canary before it counts as usable",
    )
    response_timeout: Duration = Field(
        default=5.0,
        description="how long the server's first answer may take before the attempt is protocol_no_response",
    )

    @field_validator("method")
    @classmethod
    def _known_method(cls, method: str) -> str:
        if method not in SUPPORTED:
            raise ValueError(f"unsupported cipher {method!r}; supported: {', '.join(SUPPORTED)}")
        return method

    def destination(self) -> str:
        return host_port(self.host, self.port)

    def sensitive_values(self) -> list[str]:
        return [*super().sensitive_values(), self.canary.host]  # the operator's canary identifies too

    def key(self, base_dir: Path) -> tuple[str, str]:
        """(method, password) from the ``ss://`` file or the password secret; blocking file I/O."""
        if self.uri_file:
            return key_from_uri_file(self.uri_file, self.uri_line, base_dir)
        password = read_secret(self.password_file, self.password_env, base_dir, "password_file")
        if password is None:
            raise ConfigError(self.name, "shadowsocks needs password_file, password_env or uri_file")
        return self.method, password
