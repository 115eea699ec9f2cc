"""The ``openvpn`` target: a server to send a client hard reset to, with its tls-auth/tls-crypt key if any
(probe: ``probes/openvpn.py``)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from reachwatch.config.secrets import SecretFile
from reachwatch.config.targets.udp_control import UdpControl
from reachwatch.config.types import Duration, Host, TargetBase, host_port


class OpenVpnTarget(TargetBase):
    """An OpenVPN server; key files only when the server uses tls-auth / tls-crypt / tls-crypt-v2."""

    kind: Literal["openvpn"]
    host: Host = Field(min_length=1, description="the OpenVPN server's host name or IP address")
    port: int = Field(default=1194, ge=1, le=65535, description="the server's port")
    proto: Literal["udp", "tcp"] = Field(
        default="udp", description="udp or tcp (over TCP every packet carries a 2-byte length prefix)"
    )
    tls_auth_file: SecretFile | None = Field(
        default=None, description="the .ovpn's tls-auth static key (HMAC firewall)"
    )
    key_direction: Literal[0, 1] | None = Field(
        default=None, description="as in the .ovpn's key-direction; unset: bidirectional"
    )
    auth: str = Field(default="SHA1", description="the .ovpn's `auth` digest (tls-auth only)")
    tls_crypt_file: SecretFile | None = Field(
        default=None, description="the tls-crypt static key (HMAC-SHA256 + AES-256-CTR)"
    )
    tls_crypt_v2_file: SecretFile | None = Field(
        default=None, description="this client's tls-crypt-v2 key (client key + wrapped key)"
    )
    retransmit: Duration = Field(
        default=2.0, description="UDP resend interval, like the real client's first retransmit"
    )
    control: UdpControl | None = Field(
        default=None,
        description=(
            "a UDP service on the same route: an answer to it while OpenVPN is silent is "
            "protocol_blocking evidence"
        ),
    )

    @model_validator(mode="after")
    def _one_wrapping(self) -> OpenVpnTarget:
        keys = [self.tls_auth_file, self.tls_crypt_file, self.tls_crypt_v2_file]
        if sum(k is not None for k in keys) > 1:
            raise ValueError("set at most one of tls_auth_file, tls_crypt_file, tls_crypt_v2_file")
        return self

    def destination(self) -> str:
        return host_port(self.host, self.port)

    def mode(self) -> str:
        if self.tls_auth_file:
            return "tls-auth"
        if self.tls_crypt_file:
            return "tls-crypt"
        if self.tls_crypt_v2_file:
            return "tls-crypt-v2"
        return "plain"
