"""The ``tor_bootstrap`` target: bridges a fresh tor bootstraps through, or none for tor's defaults (probe:
``probes/tor_bootstrap.py``)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from reachwatch.config.bridgeline import BridgeLine, parse_bridge_line
from reachwatch.config.targets.datastage import DataStageConfig
from reachwatch.config.types import TargetBase


class TorBootstrapTarget(TargetBase):
    """Bridges to bootstrap through (all of one transport, as Tor Browser does); none = tor's defaults."""

    kind: Literal["tor_bootstrap"]
    bridges: list[str] = Field(
        default_factory=list,
        max_length=16,
        description=(
            "bridge lines to bootstrap through (all of one transport, as Tor Browser does); none: tor's "
            "own defaults"
        ),
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

    def lines(self) -> list[BridgeLine]:
        return [parse_bridge_line(line) for line in self.bridges]

    def destination(self) -> str:
        lines = self.lines()
        return lines[0].address if lines else "tor-network:0"

    def sensitive_values(self) -> list[str]:
        return [value for line in self.lines() for value in line.sensitive_values()]
