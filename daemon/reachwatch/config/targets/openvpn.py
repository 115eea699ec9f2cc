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
    host: Host = Field(min_length=1)
    port: int = Field(default=1194, ge=1, le=65535)
    proto: Literal["udp", "tcp"] = "udp"  # over TCP every packet carries a 2-byte length prefix
    tls_auth_file: SecretFile | None = None  # the .ovpn's tls-auth static key (HMAC firewall)
    key_direction: Literal[0, 1] | None = None  # as in .ovpn; unset = bidirectional
    auth: str = "SHA1"
    tls_crypt_file: SecretFile | None = None  # the tls-crypt static key (HMAC-SHA256 + AES-256-CTR)
    tls_crypt_v2_file: SecretFile | None = None  # this client's tls-crypt-v2 key (client key + wrapped key)
    retransmit: Duration = 2.0  # UDP resend interval, like the client's first retransmit
    control: UdpControl | None = None

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
