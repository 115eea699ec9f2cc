"""The ``tor_bootstrap`` target: bridges a fresh tor bootstraps through, or none for tor's defaults (probe:
``probes/tor_bootstrap.py``)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator, model_validator

from reachwatch.config.bridgeline import BridgeLine, bridge_lines_from_text, parse_bridge_line
from reachwatch.config.secrets import SecretEnv, SecretFile, read_secret
from reachwatch.config.targets.datastage import DataStageConfig
from reachwatch.config.types import TargetBase

MAX_BRIDGES = 16


class TorBootstrapTarget(TargetBase):
    """Bridges to bootstrap through (all of one transport, as Tor Browser does); none = tor's defaults.
    Inline in ``bridges``, or one per line in ``bridges_file`` (mode 0600) or the variable
    ``bridges_env``, read at every load."""

    kind: Literal["tor_bootstrap"]
    bridges: list[str] = Field(
        default_factory=list,
        max_length=MAX_BRIDGES,
        description=(
            "bridge lines to bootstrap through (all of one transport, as Tor Browser does); none: tor's "
            "own defaults; for private bridges prefer `bridges_file`"
        ),
    )
    bridges_file: SecretFile | None = Field(
        default=None,
        description="a file (mode 0600) with one bridge line per line; blank lines and `#` comments skipped",
    )
    bridges_env: SecretEnv | None = Field(
        default=None, description="an environment variable holding the bridge lines, one per line"
    )
    private: bool = Field(
        default=True, description="private unless the operator says otherwise, as for `tor_bridge`"
    )

    data_stage: DataStageConfig = Field(
        default_factory=DataStageConfig,
        description=(
            "what goes through the bootstrapped client's circuit to tor.canary before it counts as "
            "usable (needs tor.canary)"
        ),
    )

    @field_validator("bridges")
    @classmethod
    def _valid_lines(cls, value: list[str]) -> list[str]:
        for line in value:
            parse_bridge_line(line)
        return value

    @model_validator(mode="after")
    def _one_source(self) -> TorBootstrapTarget:
        given = [n for n in ("bridges_file", "bridges_env") if getattr(self, n) is not None]
        if len(given) + bool(self.bridges) > 1:
            raise ValueError("give the bridge lines once: bridges, bridges_file or bridges_env")
        return self

    def with_secrets(self, base_dir: Path, where: str) -> TorBootstrapTarget:
        if self.bridges_file is None and self.bridges_env is None:
            return self
        field = f"{where}.{'bridges_file' if self.bridges_file else 'bridges_env'}"
        text = read_secret(self.bridges_file, self.bridges_env, base_dir, field) or ""
        return self.model_copy(update={"bridges": bridge_lines_from_text(text, field, at_most=MAX_BRIDGES)})

    def lines(self) -> list[BridgeLine]:
        return [parse_bridge_line(line) for line in self.bridges]

    def destination(self) -> str:
        lines = self.lines()
        return lines[0].address if lines else "tor-network:0"

    def transport_name(self) -> str:
        """The bridges' transport (``direct`` without bridges, as the probe's ``transport`` fact says);
        lines of several transports, against the advice above, are named together (``meek_lite+obfs4``)."""
        names = sorted({line.transport_name for line in self.lines()})
        return "+".join(names) if names else "direct"

    def sensitive_values(self) -> list[str]:
        return [value for line in self.lines() for value in line.sensitive_values()]
