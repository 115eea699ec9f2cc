"""The ``tor_bridge`` target: one bridge line, tested through the daemon's tor (probe:
``probes/tor_bridge.py``)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from reachwatch.config.bridgeline import BridgeLine, parse_bridge_line
from reachwatch.config.targets.datastage import DataStageConfig
from reachwatch.config.types import TargetBase


class TorBridgeTarget(TargetBase):
    """One bridge line, in torrc ``Bridge`` syntax (the leading ``Bridge`` keyword is optional)."""

    kind: Literal["tor_bridge"]
    bridge: str = Field(
        min_length=1,
        max_length=4096,
        description=(
            "one bridge line as Tor Browser or bridges.torproject.org gives it (torrc `Bridge` syntax; "
            "the leading `Bridge` is optional)"
        ),
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
    def _valid_line(cls, value: str) -> str:
        parse_bridge_line(value)  # BridgeLineError is a ValueError: pydantic reports it on this field
        return value

    def line(self) -> BridgeLine:
        return parse_bridge_line(self.bridge)

    def destination(self) -> str:
        return self.line().address

    def sensitive_values(self) -> list[str]:
        return self.line().sensitive_values()
