"""The canary of the kinds that reach it through their tunnel (``socks5``, ``http_proxy``, ``shadowsocks``),
and the shared secret of ``reachwatch canary`` (used by these, by ``port_survey`` and by the canary
itself). Runtime: ``vpn/canary.py``; wire format: ``formats/canary.py``. How much goes through the
canary, and for how long, is the target's ``data_stage``."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import Field, model_validator

from reachwatch.config.secrets import SecretEnv, SecretFile, read_secret
from reachwatch.config.types import Host, StrictModel
from reachwatch.errors import ConfigError

# keys of the canary before the data stage was shared by every kind; named in the error so an operator
# knows where the setting went
_MOVED = {"push_bytes": "data_stage.volume", "stall_timeout": "data_stage.stall_timeout"}
MIN_SECRET_CHARS = 16  # formats.canary.MIN_SECRET_BYTES, spelt here: config does not import formats


class CanarySecret(StrictModel):
    """The secret shared by ``reachwatch canary`` and the targets that talk to it: a file (mode 0600) or
    an environment variable, never the YAML. ``openssl rand -hex 32 > canary.secret`` makes a good one.
    """

    secret_file: SecretFile | None = Field(
        default=None,
        description="file holding the secret shared with `reachwatch canary` (mode 0600, 16+ characters)",
    )
    secret_env: SecretEnv | None = Field(
        default=None, description="environment variable holding the secret (instead of secret_file)"
    )

    def has_secret(self) -> bool:
        return bool(self.secret_file or self.secret_env)

    def canary_secret(self, base_dir: Path, field: str) -> bytes:
        """The secret's bytes; ``ConfigError`` naming ``field`` when unset, unreadable or too short.

        Blocking file I/O: probes call it in a worker thread (a rotated secret is picked up at the next
        attempt without a reload)."""
        text = read_secret(self.secret_file, self.secret_env, base_dir, field)
        if text is None:
            raise ConfigError(field, "no secret_file or secret_env for the canary")
        secret = text.encode("utf-8")
        if len(secret) < MIN_SECRET_CHARS:
            raise ConfigError(field, f"the canary secret must be at least {MIN_SECRET_CHARS} characters")
        return secret


def one_secret(model: CanarySecret, what: str) -> None:
    """``ValueError`` unless exactly one of ``secret_file``/``secret_env`` is set."""
    if model.secret_file and model.secret_env:
        raise ValueError(f"{what}: set secret_file or secret_env, not both")
    if not model.has_secret():
        raise ValueError(f"{what} needs secret_file or secret_env (the secret shared with the canary)")


class CanaryConfig(CanarySecret):
    """Where the canary is: ``reachwatch canary`` (``mode: reachwatch`` with its secret: it answers only
    keyed requests, and its keyed reply proves the tunnel reached it) or any echo service
    (``mode: echo``, e.g. ``socat TCP-LISTEN:7007,fork EXEC:cat``)."""

    host: Host = Field(min_length=1, description="the canary's host (the operator's own server abroad)")
    port: int = Field(ge=1, le=65535, description="the canary's TCP port")
    mode: Literal["echo", "reachwatch"] = Field(
        default="echo",
        description=(
            "echo: a plain echo service; reachwatch: `reachwatch canary`, greeted with a keyed request "
            "carrying the nonce (needs secret_file or secret_env), then used as an echo"
        ),
    )

    @model_validator(mode="before")
    @classmethod
    def _moved_keys(cls, data: Any) -> Any:
        if isinstance(data, dict):
            for old, new in _MOVED.items():
                if old in data:
                    raise ValueError(f"canary.{old} moved to the target's {new}")
        return data

    @model_validator(mode="after")
    def _secret_for_mode(self) -> CanaryConfig:
        if self.mode == "reachwatch":
            one_secret(self, "canary mode reachwatch")
        elif self.has_secret():
            raise ValueError("canary: a secret is only used with mode: reachwatch")
        return self
