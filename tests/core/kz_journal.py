"""A journal like one a vantage in Almaty could have written in early January 2022, for report tests.

Written through the real ``Journal`` (results and decision records), four days from 2022-01-02 00:00
Almaty time (UTC+6 then), targets every 10 minutes and controls every 2 minutes:

- ``social-a``/``social-b`` (group ``social``): TLS interference every evening 19:00-23:00 local on
  three days, a recurring pattern of group roll-ups;
- ``bank``: a national-root interception (``tls_interception``, issuer named) from 01-03 10:00 to
  01-03 16:00;
- ``news-dns``: DNS tampering (the ISP's bogon against DoH's answer) from 01-02 08:00, still open;
- ``vpn-cut``: a flow cut after 18 KB, called blocked through the reference vantage abroad, which moved
  the whole 64 KB (the observation and the compared figures are journaled with the verdict change);
- ``home-bridge``: a PRIVATE bridge, unreachable 01-04 02:00-05:00 (no evidence: an outage);
- the vantage: an international shutdown 01-05 17:00 to 01-05 20:00 local, offline 18:00-18:30 inside.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from reachwatch.failures import Failure, Stage, Technique
from reachwatch.journal import Journal, JournalRow
from reachwatch.journal_events import ControlReading, ReferenceObservation, VantageChange, VerdictChange
from reachwatch.model import ProbeResult

ALMATY = timezone(timedelta(hours=6))
START = datetime(2022, 1, 2, tzinfo=ALMATY).timestamp()
END = datetime(2022, 1, 6, tzinfo=ALMATY).timestamp()
STEP, CONTROL_STEP = 600.0, 120.0
KZ_ISSUER = "CN=Information Security Certification Authority,O=ISCA,C=KZ"

CONFIG = """
vantage:
  {name: kz-almaty-1, country: KZ, asn: AS9198, isp: Kazakhtelecom, city: Almaty, timezone: Asia/Almaty}
defaults: {interval: 10m}
scheduler: {controls_interval: 2m}
confirmation: {attempts: 3, required: 2}
controls:
  domestic: [{name: egov, kind: https, url: "https://egov.kz/"}]
  international: [{name: wiki, kind: https, url: "https://www.wikipedia.org/"}]
reference_vantages: [{name: abroad, url: "https://ref.example.org"}]
targets:
  - {name: social-a, kind: tls, host: social-a.example, group: social}
  - {name: social-b, kind: tls, host: social-b.example, group: social}
  - {name: bank, kind: tls, host: bank.example, group: web}
  - {name: news-dns, kind: dns, query: news.example, group: news}
  - {name: vpn-cut, kind: socks5, host: 203.0.113.9, port: 1080, group: vpn,
     canary: {host: 203.0.113.10, port: 7}}
  - {name: home-bridge, kind: tor_bridge, group: bridges, private: true,
     bridge: "192.0.2.77:443 0123456789ABCDEF0123456789ABCDEF01234567"}
"""


def local(day: int, hour: float) -> float:
    """Unix time of 2022-01-(day) at ``hour`` Almaty time."""
    return datetime(2022, 1, day, tzinfo=ALMATY).timestamp() + hour * 3600


@dataclass(frozen=True)
class Block:
    target: str
    start: float
    end: float
    technique: str | None  # None: an outage without evidence (unreachable)


BLOCKS = [
    *[
        Block(t, local(d, 19), local(d, 23), "tls_interference")
        for d in (2, 3, 4)
        for t in ("social-a", "social-b")
    ],
    Block("bank", local(3, 10), local(3, 16), "tls_interception"),
    Block("news-dns", local(2, 8), END + 1, "dns_tampering"),
    Block("vpn-cut", local(4, 12), local(4, 15), "flow_cut"),
    Block("home-bridge", local(4, 2), local(4, 5), None),
]
KINDS = {"social-a": "tls", "social-b": "tls", "bank": "tls", "news-dns": "dns", "vpn-cut": "socks5"}
KINDS["home-bridge"] = "tor_bridge"
GROUPS = {"social-a": "social", "social-b": "social", "bank": "web", "news-dns": "news", "vpn-cut": "vpn"}
GROUPS["home-bridge"] = "bridges"
SHUTDOWN = (local(5, 17), local(5, 20))
OFFLINE = (local(5, 18), local(5, 18.5))


def _failure(technique: str | None) -> tuple[Failure, Stage, Technique | None, dict[str, Any]]:
    if technique == "tls_interference":
        return (
            Failure.GENERIC_TIMEOUT_ERROR,
            Stage.TLS_HANDSHAKE,
            Technique.TLS_INTERFERENCE,
            {"neutral_sni_handshake": True},
        )
    if technique == "tls_interception":
        return (
            Failure.SSL_UNKNOWN_AUTHORITY,
            Stage.TLS_HANDSHAKE,
            Technique.TLS_INTERCEPTION,
            {
                "tls_issuer": KZ_ISSUER,
                "tls_spki_sha256": "9f" * 32,
            },
        )
    if technique == "dns_tampering":
        return (
            Failure.DNS_ANSWER_MISMATCH,
            Stage.RESOLVE,
            Technique.DNS_TAMPERING,
            {
                "answers_system": ["10.10.34.35"],
                "answers_doh_abroad": ["93.184.216.34"],
            },
        )
    if technique == "flow_cut":
        return (
            Failure.TRANSFER_INCOMPLETE,
            Stage.TRANSFER,
            None,
            {
                "bytes_moved": 18_432,
                "transfer_goal_bytes": 65_536,
                "cut_after_bytes": 18_432,
                "cut_after_s": 1.7,
            },
        )
    return Failure.GENERIC_TIMEOUT_ERROR, Stage.CONNECT, None, {}


def _in(block_list: list[Block], target: str, t: float) -> Block | None:
    return next((b for b in block_list if b.target == target and b.start <= t < b.end), None)


def write(state: Path) -> None:
    """Write the journal into ``state`` (retention: long enough for 2022)."""
    j = Journal(state, retention=1e10)
    t = START
    states = {"wiki": "online"}
    verdicts: dict[str, tuple[str, str | None]] = {}
    bad_runs: dict[str, int] = {}
    vantage = "unknown"
    while t < END:
        # controls every 2 minutes
        if int((t - START) % STEP) % int(CONTROL_STEP) == 0:
            shutdown = SHUTDOWN[0] <= t < SHUTDOWN[1]
            offline = OFFLINE[0] <= t < OFFLINE[1]
            for name, role, ok in (
                ("egov", "domestic", not offline),
                ("wiki", "international", not shutdown),
            ):
                result = ProbeResult(
                    name,
                    "https",
                    t,
                    0.3,
                    ok,
                    None if ok else Failure.GENERIC_TIMEOUT_ERROR,
                    None if ok else Stage.CONNECT,
                )
                j.append(
                    JournalRow(result, "controls", f"{role}_control", "reachable" if ok else "unknown", None)
                )
            now_state = "offline" if offline else ("international_shutdown" if shutdown else "online")
            if now_state != vantage:
                timeout = ("generic_timeout_error", "connect")
                controls = (
                    ControlReading(
                        "egov", "domestic", t, not offline, *(timeout if offline else (None, None))
                    ),
                    ControlReading(
                        "wiki", "international", t, not shutdown, *(timeout if shutdown else (None, None))
                    ),
                )
                reason = {
                    "online": "an international control is reachable",
                    "offline": "every control failed",
                }
                j.append(
                    VantageChange(
                        t + 0.5,
                        now_state,
                        vantage,
                        reason.get(now_state, "domestic ok, international failed"),
                        controls,
                    )
                )
                vantage = now_state
        if int(t - START) % int(STEP) == 0:
            for target in KINDS:
                _target_attempt(j, target, t + 20, vantage, verdicts, bad_runs)
        t += CONTROL_STEP
    j.close()
    del states


def _target_attempt(
    j: Journal,
    target: str,
    t: float,
    vantage: str,
    verdicts: dict[str, tuple[str, str | None]],
    bad_runs: dict[str, int],
) -> None:
    block = _in(BLOCKS, target, t)
    shutdown = vantage != "online"
    ok = block is None and not shutdown
    previous = verdicts.get(target, ("unknown", None))
    if ok:
        bad_runs[target] = 0
        result = ProbeResult(target, KINDS[target], t, 0.4, True, facts={"throughput_bps": 250_000.0})
        verdict: tuple[str, str | None] = ("reachable", None)
    else:
        technique = block.technique if block else None
        failure, stage, evidence, facts = _failure(technique if not shutdown else None)
        result = ProbeResult(target, KINDS[target], t, 2.0, False, failure, stage, evidence, facts=facts)
        bad_runs[target] = bad_runs.get(target, 0) + 1
        if shutdown:
            verdict = ("unknown", None) if bad_runs[target] >= 2 else previous
        elif bad_runs[target] >= 2:  # 2 of 3: confirmed at the second bad attempt
            verdict = ("blocked", technique) if technique else ("unreachable", None)
        else:
            verdict = previous
    if ok and previous[0] != "reachable" and bad_runs.get(target, 0) == 0:
        verdict = ("reachable", None)
    verdicts[target] = verdict
    j.append(JournalRow(result, GROUPS[target], "target", verdict[0], verdict[1]))
    if verdict != previous:
        reference = None
        compared: dict[str, Any] = {}
        if verdict[1] == "flow_cut":
            reference = ReferenceObservation(
                "abroad",
                target,
                t - 45,
                t + 1,
                True,
                destination="203.0.113.9:1080",
                facts={"bytes_moved": 65_536, "throughput_bps": 410_000.0},
            )
            compared = {
                "cut_after_bytes": 18_432,
                "reference_bytes_moved": 65_536,
                "transfer_goal_bytes": 65_536,
            }
        j.append(
            VerdictChange(
                at=t,
                target=target,
                kind=KINDS[target],
                group=GROUPS[target],
                role="target",
                verdict=verdict[0],
                technique=verdict[1],
                previous_verdict=previous[0],
                previous_technique=previous[1],
                failure=result.failure.value if result.failure else None,
                stage=result.stage.value if result.stage else None,
                evidence=result.evidence.value if result.evidence else None,
                facts=dict(result.facts),
                reference=reference,
                compared=compared,
            )
        )


def config_file(directory: Path) -> Path:
    path = directory / "kz.yaml"
    path.write_text(CONFIG)
    path.chmod(0o600)
    return path


if __name__ == "__main__":  # python -m tests.core.kz_journal DIR: a journal and config to look at
    import sys

    out = Path(sys.argv[1])
    out.mkdir(parents=True, exist_ok=True)
    write(out)
    print(json.dumps({"state_dir": str(out), "config": str(config_file(out))}))
