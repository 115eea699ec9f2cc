"""The canary of the kinds that reach it through their tunnel (``socks5``, ``http_proxy``, ``shadowsocks``,
``openvpn_tunnel``, and Tor's circuits): an echo service the operator runs outside the country (runtime:
``vpn/canary.py``). How much goes through it, and for how long, is the target's ``data_stage``."""

from __future__ import annotations

from typing import Any

from pydantic import Field, model_validator

from reachwatch.config.types import Host, StrictModel

# keys of the canary before the data stage was shared by every kind; named in the error so an operator
# knows where the setting went
_MOVED = {"push_bytes": "data_stage.volume", "stall_timeout": "data_stage.stall_timeout"}


class CanaryConfig(StrictModel):
    """Where the canary (an echo service abroad, e.g. ``socat TCP-LISTEN:7007,fork EXEC:cat``) is."""

    host: Host = Field(min_length=1, description="the echo service's host (the operator's own server abroad)")
    port: int = Field(ge=1, le=65535, description="the echo service's TCP port")

    @model_validator(mode="before")
    @classmethod
    def _moved_keys(cls, data: Any) -> Any:
        if isinstance(data, dict):
            for old, new in _MOVED.items():
                if old in data:
                    raise ValueError(f"canary.{old} moved to the target's {new}")
        return data
