"""The ``port_survey`` target: which ports and protocols still reach a ``reachwatch canary`` abroad
(probe: ``probes/port_survey.py``; canary: ``canaryd.py``; wire format: ``formats/canary.py``).

A whole-country shutdown is rarely total: in Kazakhstan in January 2022 a few ports kept leaving the
country for days (an obfs4 bridge on 179/tcp, Lantern on 3785 and 5060). The survey finds them live, so
operators know where to put their bridges: each port of ``tcp_ports`` and ``udp_ports`` (and an ICMP
echo) is tried against the canary and is ``open`` (the canary's keyed reply came back), ``closed``
(refused, reset, or something other than the canary answered) or ``filtered`` (silence).

Gentle: a baseline every ``interval`` (an hour) while the vantage is online, every ``shutdown_interval``
(five minutes) during an ``international_shutdown``; within an attempt at most ``parallel`` ports at once
and ``rate`` packets a second.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Literal

from pydantic import Field, model_validator

from reachwatch.config.ports import SURVIVOR_PORTS, PortList
from reachwatch.config.targets.canary import CanarySecret, one_secret
from reachwatch.config.types import Duration, Host, TargetBase, host_port

SHUTDOWN_STATE = "international_shutdown"  # failures.VantageState.INTERNATIONAL_SHUTDOWN's value


class PortSurveyTarget(TargetBase, CanarySecret):
    """A ``reachwatch canary`` abroad, and the ports to try it on."""

    kind: Literal["port_survey"]
    host: Host = Field(min_length=1, description="the host running `reachwatch canary`")
    tcp_ports: PortList = Field(
        default=SURVIVOR_PORTS,
        description=(
            'TCP ports to try (ranges allowed: [22, 443, "8000-8010"]); the default is the ports that '
            "survived past shutdowns and the tunnels' own: 22, 53, 80, 123, 179, 443, 500, 993, 1194, "
            "3478, 3785, 4500, 5060, 8080, 8443, 51820. The canary must listen on them"
        ),
    )
    udp_ports: PortList = Field(default=SURVIVOR_PORTS, description="UDP ports to try (as tcp_ports)")
    icmp: bool = Field(
        default=True,
        description=(
            "also send an ICMP echo to the host (an unprivileged ping socket: needs the daemon's group in "
            "net.ipv4.ping_group_range, systemd's default; reported untested otherwise)"
        ),
    )
    interval: Duration | None = Field(
        default=3600.0, description="between surveys while the vantage is not in a shutdown (a baseline)"
    )
    shutdown_interval: Duration = Field(
        default=300.0, description="between surveys while the vantage is in an international_shutdown"
    )
    timeout: Duration | None = Field(default=60.0, description="hard deadline of one whole survey")
    port_timeout: Duration = Field(
        default=3.0, description="how long one port may take (connect and reply; UDP retransmits within)"
    )
    parallel: int = Field(default=4, ge=1, le=32, description="ports tried at once")
    rate: float = Field(
        default=10.0,
        gt=0.0,
        le=1000.0,
        description="packets (connects, datagrams, echoes) per second at most",
    )
    udp_sends: int = Field(
        default=3, ge=1, le=5, description="datagrams per UDP port (and ICMP) before it counts as filtered"
    )

    @model_validator(mode="after")
    def _survey_fits(self) -> PortSurveyTarget:
        one_secret(self, "port_survey")
        count = len(self.tcp_ports) + len(self.udp_ports) + (1 if self.icmp else 0)
        if count == 0:
            raise ValueError("no ports to survey")
        worst = self.worst_case_seconds()
        timeout = self.timeout or 0.0
        if worst >= timeout:
            raise ValueError(
                f"{count} ports with port_timeout {self.port_timeout:g}s, "
                f"parallel {self.parallel} and rate {self.rate:g}/s may take {worst:.0f}s, not within its "
                f"timeout ({timeout:g}s): raise timeout or parallel, or survey fewer ports"
            )
        return self

    def packets(self) -> int:
        """The most packets one survey sends the canary: a request per TCP port, ``udp_sends`` per UDP
        port and for the echo. What the canary counts against the survey's budget."""
        return len(self.tcp_ports) + self.udp_sends * (len(self.udp_ports) + (1 if self.icmp else 0))

    def worst_case_seconds(self) -> float:
        """How long a survey of silent ports takes at most: every port waits ``port_timeout`` (but no
        more than ``parallel`` at once), and the packets go out no faster than ``rate``."""
        count = len(self.tcp_ports) + len(self.udp_ports) + (1 if self.icmp else 0)
        rounds = math.ceil(count / self.parallel) * self.port_timeout
        return max(rounds, self.packets() / self.rate) + 1.0

    def vantage_intervals(self) -> Mapping[str, float]:
        return {SHUTDOWN_STATE: self.shutdown_interval}

    def destination(self) -> str:
        # the survey loads the whole host, not one port: port 0 keeps it apart from targets on one port
        return host_port(self.host, 0)
