"""The exporter-toolkit ``web-config.yml``: TLS and basic auth for the HTTP endpoint.

Same file format as every Prometheus exporter (``--web.config.file``), so operators reuse what they know
and ``promtool check web-config`` validates ours too. Supported subset::

    tls_server_config:
      cert_file: server.crt          # relative paths: relative to the web config file
      key_file: server.key
      client_ca_file: ca.crt         # optional mTLS
      client_auth_type: RequireAndVerifyClientCert   # or NoClientCert (default), VerifyClientCertIfGiven
      min_version: TLS12             # TLS12 (default) or TLS13
    http_server_config:
      headers: {X-Frame-Options: deny}
    basic_auth_users:
      prometheus: $2y$10$...         # bcrypt hash (htpasswd -nBC 10 "" | tr -d ':\\n')

Unknown keys are errors, as in the config. The key file must not be readable by group or others.
"""

from __future__ import annotations

import re
import ssl
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import yaml
from pydantic import Field, ValidationError, field_validator, model_validator

from reachwatch.config import yamlsafe
from reachwatch.config.messages import format_validation_error
from reachwatch.config.secrets import PublicFile, SecretFile, check_private_file, resolve_path
from reachwatch.config.types import StrictModel
from reachwatch.errors import ConfigError

_BCRYPT = re.compile(r"^\$2[abxy]?\$\d{2}\$[./A-Za-z0-9]{53}$")


class TLSServerConfig(StrictModel):
    cert_file: PublicFile = Field(description="the server certificate (PEM)")
    key_file: SecretFile = Field(description="its private key (PEM)")
    client_ca_file: PublicFile | None = Field(
        default=None, description="CA bundle for client certificates (mTLS)"
    )
    client_auth_type: Literal[
        "NoClientCert", "RequestClientCert", "VerifyClientCertIfGiven", "RequireAndVerifyClientCert"
    ] = Field(default="NoClientCert", description="whether and how clients must present a certificate")
    min_version: Literal["TLS12", "TLS13"] = Field(default="TLS12", description="lowest TLS version accepted")
    max_version: Literal["TLS12", "TLS13"] = Field(
        default="TLS13", description="highest TLS version accepted"
    )

    @model_validator(mode="after")
    def _versions_in_order(self) -> TLSServerConfig:
        if self.min_version == "TLS13" and self.max_version == "TLS12":
            raise ValueError("min_version TLS13 is above max_version TLS12: no handshake could succeed")
        return self


class HTTPServerConfig(StrictModel):
    headers: dict[str, str] = Field(default_factory=dict, description="extra headers on every response")
    http2: bool = Field(default=True, description="accepted for compatibility; aiohttp serves HTTP/1.1")


class WebConfigFile(StrictModel):
    tls_server_config: TLSServerConfig | None = Field(
        default=None, description="serve HTTPS with this certificate"
    )
    http_server_config: HTTPServerConfig = Field(
        default_factory=HTTPServerConfig, description="HTTP response settings"
    )
    basic_auth_users: dict[str, str] = Field(
        default_factory=dict, description="user -> bcrypt hash of the password"
    )

    @field_validator("basic_auth_users")
    @classmethod
    def _bcrypt_only(cls, users: dict[str, str]) -> dict[str, str]:
        for user, hashed in users.items():
            if not _BCRYPT.match(hashed or ""):
                raise ValueError(
                    f"user {user!r}: password must be a bcrypt hash ($2y$10$...), not plain text"
                )
        return users


@dataclass
class WebSecurity:
    """What the web server needs from a web config: an SSL context, users, extra headers."""

    ssl_context: ssl.SSLContext | None = None
    users: dict[str, bytes] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)
    source: str | None = None
    tls: TLSServerConfig | None = None
    base_dir: Path | None = None


_VERSIONS = {"TLS12": ssl.TLSVersion.TLSv1_2, "TLS13": ssl.TLSVersion.TLSv1_3}


def parse_web_config(path: str | Path) -> WebConfigFile:
    p = Path(path)
    try:
        text = yamlsafe.read_text(p)  # bounded like the config: a FIFO or /dev/zero cannot hang a reload
    except OSError as exc:
        raise ConfigError(str(p), f"cannot read web config: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise ConfigError(str(p), "web config is not UTF-8 text") from None
    except yamlsafe.YamlLimitError as exc:
        raise ConfigError(str(p), f"cannot read web config: {exc}") from None
    try:
        data = yamlsafe.load(text) or {}
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{p}:{mark.line + 1}:{mark.column + 1}" if mark else str(p)
        problem = getattr(exc, "problem", None) or " ".join(str(exc).split())
        raise ConfigError(where, f"invalid YAML: {problem}") from None
    except yamlsafe.YamlLimitError as exc:
        raise ConfigError(str(p), f"invalid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(str(p), "top level must be a mapping")
    try:
        return WebConfigFile.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(str(p), format_validation_error(exc, data)) from None


def load_web_security(path: str | Path | None) -> WebSecurity:
    """Parse a web config into a ready ``WebSecurity``; ``None`` means plain HTTP, no auth."""
    if path is None:
        return WebSecurity()
    p = Path(path)
    cfg = parse_web_config(p)
    base = p.resolve().parent
    sec = WebSecurity(
        users={u: h.encode() for u, h in cfg.basic_auth_users.items()},
        headers=dict(cfg.http_server_config.headers),
        source=str(p),
        tls=cfg.tls_server_config,
        base_dir=base,
    )
    if cfg.tls_server_config is not None:
        sec.ssl_context = build_ssl_context(cfg.tls_server_config, base, str(p))
    return sec


def build_ssl_context(tls: TLSServerConfig, base: Path, source: str) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = _VERSIONS[tls.min_version]
    ctx.maximum_version = _VERSIONS[tls.max_version]
    load_cert_chain(ctx, tls, base, source)
    if tls.client_auth_type != "NoClientCert":
        if not tls.client_ca_file and tls.client_auth_type != "RequestClientCert":
            raise ConfigError(source, f"client_auth_type {tls.client_auth_type} needs client_ca_file")
        if tls.client_ca_file:
            ca = resolve_path(tls.client_ca_file, base)
            try:
                ctx.load_verify_locations(cafile=str(ca))
            except ssl.SSLError as exc:
                reason = f"{ca} holds no PEM certificate ({exc.reason})"
                raise ConfigError(source, f"tls_server_config.client_ca_file: {reason}") from None
            except OSError as exc:  # a FileNotFoundError traceback, before
                reason = f"cannot read {ca}: {exc.strerror or type(exc).__name__}"
                raise ConfigError(source, f"tls_server_config.client_ca_file: {reason}") from None
        ctx.verify_mode = (
            ssl.CERT_REQUIRED if tls.client_auth_type == "RequireAndVerifyClientCert" else ssl.CERT_OPTIONAL
        )
    return ctx


def load_cert_chain(ctx: ssl.SSLContext, tls: TLSServerConfig, base: Path, source: str) -> None:
    """(Re)load the certificate and key into ``ctx``; new handshakes use them (reload without restart)."""
    key = resolve_path(tls.key_file, base)
    check_private_file(key, f"{source}: tls_server_config.key_file")
    try:
        ctx.load_cert_chain(str(resolve_path(tls.cert_file, base)), str(key))
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(source, f"cannot load TLS certificate/key: {exc}") from None
