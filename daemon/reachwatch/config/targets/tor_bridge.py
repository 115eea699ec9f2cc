"""The ``tor_bridge`` target: one bridge line, tested through the daemon's tor (probe:
``probes/tor_bridge.py``)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator, model_validator

from reachwatch.config.bridgeline import BridgeLine, bridge_lines_from_text, parse_bridge_line
from reachwatch.config.secrets import SecretEnv, SecretFile, read_secret
from reachwatch.config.targets.datastage import DataStageConfig
from reachwatch.config.types import TargetBase


class TorBridgeTarget(TargetBase):
    """One bridge line, in torrc ``Bridge`` syntax (the leading ``Bridge`` keyword is optional): inline in
    ``bridge`` (fine for a public bridge), or, for a private one, in ``bridge_file`` (mode 0600) or the
    variable ``bridge_env``, read at every load, so the config can be shared without the bridge."""

    kind: Literal["tor_bridge"]
    bridge: str | None = Field(
        default=None,
        min_length=1,
        max_length=4096,
        description=(
            "one bridge line as Tor Browser or bridges.torproject.org gives it (torrc `Bridge` syntax; "
            "the leading `Bridge` is optional); for a private bridge prefer `bridge_file`"
        ),
    )
    bridge_file: SecretFile | None = Field(
        default=None,
        description="a file (mode 0600) holding the bridge line; blank lines and `#` comments are skipped",
    )
    bridge_env: SecretEnv | None = Field(
        default=None, description="an environment variable holding the bridge line"
    )
    private: bool = Field(
        default=True,
        description=(
            "bridges are private unless the operator says otherwise: publishing one hands it to the censor"
        ),
    )

    data_stage: DataStageConfig = Field(
        default_factory=DataStageConfig,
        description=(
            "what goes through a circuit whose first hop is this bridge, to tor.canary, before the "
            "bridge counts as usable (needs tor.canary)"
        ),
    )

    @field_validator("bridge")
    @classmethod
    def _valid_line(cls, value: str | None) -> str | None:
        if value is not None:
            parse_bridge_line(value)  # BridgeLineError is a ValueError: pydantic reports it on this field
        return value

    @model_validator(mode="after")
    def _one_source(self) -> TorBridgeTarget:
        given = [name for name in ("bridge", "bridge_file", "bridge_env") if getattr(self, name) is not None]
        if len(given) != 1:
            raise ValueError("give the bridge line once: bridge, bridge_file or bridge_env")
        return self

    def with_secrets(self, base_dir: Path, where: str) -> TorBridgeTarget:
        if self.bridge is not None:
            return self
        field = f"{where}.{'bridge_file' if self.bridge_file else 'bridge_env'}"
        text = read_secret(self.bridge_file, self.bridge_env, base_dir, field) or ""
        (line,) = bridge_lines_from_text(text, field, at_most=1)
        return self.model_copy(update={"bridge": line})

    def line(self) -> BridgeLine:
        if self.bridge is None:  # only before the loader's with_secrets: a bug, not an input
            raise RuntimeError(f"target {self.name}: bridge line not read from its file yet")
        return parse_bridge_line(self.bridge)

    def destination(self) -> str:
        return self.line().address if self.bridge is not None else "tor-bridge:0"

    def transport_name(self) -> str | None:
        """``vanilla`` or the pluggable transport, from the line itself (known before any probe ran, so
        the status page groups bridges right offline); None before the secret is read."""
        return self.line().transport_name if self.bridge is not None else None

    def sensitive_values(self) -> list[str]:
        return self.line().sensitive_values() if self.bridge is not None else []
