"""The data stage every circumvention kind shares: how much to move through the way out, and how long its
flow must stay alive (runtime: ``vpn/datastage.py``).

Why a data stage. Censors let handshakes through and kill what follows: Kazakhstan's DPI cut obfs4 flows
after about 50 KB, Russia froze TLS and tunnel flows after 15-20 KB in 2024, Iran and China throttle or kill
tunnels seconds after they start. So a way out is ``reachable`` only once it carried ``volume`` bytes of
real payload and its flow was still alive ``min_lifetime`` seconds after the data stage began; otherwise the
probe says after how many bytes and seconds it stopped (the ``cut_after_*`` facts). One model, used by the
target model of each kind that carries data, so the setting reads the same everywhere.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import BeforeValidator, Field

from reachwatch.config.types import Duration, StrictModel, parse_byte_count, parse_duration

MAX_VOLUME = 8 * 1024 * 1024


class DataStageConfig(StrictModel):
    """What "usable" means for this target: ``volume`` bytes through it, and a flow alive for
    ``min_lifetime``. Both are checked in one flow, so a censor cutting by volume *or* by time is seen."""

    volume: Annotated[int, BeforeValidator(parse_byte_count)] = Field(
        default=64 * 1024,
        ge=0,
        le=MAX_VOLUME,
        description=(
            "payload to move through the way out and get back (bytes, or 64KiB / 1MiB); 64 KiB sees cuts "
            "after a few to tens of KB, a few MiB sees throttling; 0 moves only the small keep-alive "
            "payloads of the lifetime check"
        ),
    )
    min_lifetime: Annotated[float, BeforeValidator(parse_duration)] = Field(
        default=10.0,
        ge=0.0,
        le=300.0,
        description=(
            "how long the flow must stay alive from the start of the data stage (a small echo every "
            "second after the volume); catches censors that kill flows by age. 0 = no lifetime check. "
            "Must fit in the target's timeout with the handshake"
        ),
    )
    stall_timeout: Duration = Field(
        default=5.0,
        description="no payload coming back for this long counts as a cut (the flow died silently)",
    )
