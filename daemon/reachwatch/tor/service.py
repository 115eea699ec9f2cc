"""``TorService``: what the Tor probes find in ``ctx.services.tor`` — built once by the daemon from ``tor:``.

It holds the binaries, the supervised tester tor with its batching ``BridgeTester``, the bootstrap
settings and the canary the Tor data stages reach (``tor.canary``). ``client_options`` are extra torrc
lines for every tor we start (used to point tor at a private test network; empty in production).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from reachwatch.config.targets.canary import CanaryConfig
from reachwatch.tor.bridges import BridgeTester
from reachwatch.tor.supervisor import TorBinaries, TorSupervisor

if TYPE_CHECKING:  # config.schema imports the probe registry, which imports the Tor probes
    from reachwatch.config.schema import TorConfig


@dataclass
class TorService:
    binaries: TorBinaries
    supervisor: TorSupervisor
    tester: BridgeTester
    bootstrap_timeout: float = 120.0
    client_options: Mapping[str, str | Sequence[str]] = field(default_factory=dict)
    canary: CanaryConfig | None = None  # tor.canary: where the Tor data stages go

    @classmethod
    def from_config(
        cls, config: TorConfig, client_options: Mapping[str, str | Sequence[str]] | None = None
    ) -> TorService:
        binaries = TorBinaries(tor=config.binary, transports=dict(config.transports))
        options: dict[str, str | Sequence[str]] = {**config.torrc, **(client_options or {})}
        supervisor = TorSupervisor(
            binaries, options, data_dir=Path(config.data_dir) if config.data_dir else None
        )
        tester = BridgeTester(supervisor, batch_size=config.batch_size, batch_timeout=config.batch_timeout)
        return cls(binaries, supervisor, tester, config.bootstrap_timeout, options, config.canary)

    async def close(self) -> None:
        await self.tester.close()
        await self.supervisor.close()
