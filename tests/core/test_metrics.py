"""The metrics collector renders the state store at scrape time, with exactly the documented names."""

from __future__ import annotations

import asyncio
import re
import shutil
import subprocess
import time
from pathlib import Path

from prometheus_client import generate_latest
from prometheus_client.exposition import choose_encoder
from prometheus_client.parser import text_string_to_metric_families

from reachwatch.buildinfo import revision
from reachwatch.config.load import parse_config
from reachwatch.exposition import TextFamily, encode
from reachwatch.failures import Failure, Stage, Technique, VantageState, Verdict
from reachwatch.incident_live import OpenIncident
from reachwatch.looplag import LoopLagMonitor
from reachwatch.metrics import (
    FACT_METRICS,
    MAX_INFO_VALUE,
    DaemonStatus,
    ReferenceHealth,
    StartLagSnapshot,
    build_registry,
)
from reachwatch.model import ProbeResult
from reachwatch.state import StateStore

ARCH = Path(__file__).resolve().parents[2] / "docs" / "ARCHITECTURE.md"

CONFIG = """
vantage: {name: kz-almaty-1, country: KZ, asn: AS9198, isp: Kazakhtelecom, city: Almaty}
controls:
  domestic:
    - {name: egov, kind: tcp, host: 127.0.0.1, port: 1}
targets:
  - {name: relay-a, kind: tcp, host: 192.0.2.55, port: 443, private: true, labels: {category: tor}}
  - {name: site-b, kind: tcp, host: 127.0.0.1, port: 2, interval: 5m}
  - {name: guard-1, kind: tor_relay, host: 192.0.2.7, port: 9001,
     fingerprint: AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA,
     relay_set: guards, relay_flags: [Guard], per_target_metrics: false}
  - {name: proxy-c, kind: socks5, group: proxies, host: 192.0.2.8, port: 1080,
     canary: {host: 192.0.2.9, port: 7007}}
  - {name: boot-vanilla, kind: tor_bootstrap,
     bridges: ["192.0.2.9:443 AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"]}
"""


def _store() -> tuple[StateStore, DaemonStatus]:
    loaded = parse_config(CONFIG, "test.yaml", Path.cwd())
    store = StateStore()
    cfg = loaded.config
    for t in cfg.all_targets():
        store.ensure(t, cfg.control_role(t.name))
    status = DaemonStatus(config=cfg, in_flight=lambda: 3, journal_write_errors=lambda: 2)
    status.references = lambda: [
        ReferenceHealth("abroad-1", fetched_at=1.7e9, up=False, fetches=5, fetch_failures=2, rejected=1),
        ReferenceHealth("abroad-2", fetched_at=None, up=False, fetches=0, fetch_failures=0),
    ]
    status.start_lag = lambda: StartLagSnapshot([("1.0", 3.0), ("+Inf", 4.0)], 7.5)
    return store, status


def _result(name: str, *, ok: bool, **kw: object) -> ProbeResult:
    return ProbeResult(
        target=name,
        kind="tcp",
        started_at=time.time(),
        duration_s=0.25,
        success=ok,
        **kw,  # type: ignore[arg-type]
    )


def _record(store: StateStore, result: ProbeResult) -> None:
    state = store.targets[result.target]
    state.last = result
    state.probes_total += 1
    if result.failure is not None:
        state.failures_total[(result.stage, result.failure)] += 1


def _scrape(store: StateStore, status: DaemonStatus) -> dict[str, list[tuple[str, dict[str, str], float]]]:
    text = encode(build_registry(store, status), "")[0].decode()
    out: dict[str, list[tuple[str, dict[str, str], float]]] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out.setdefault(s.name, []).append((s.name, dict(s.labels), s.value))
    return out


def _populated() -> tuple[StateStore, DaemonStatus]:
    store, status = _store()
    _record(store, _result("egov", ok=True, stage_durations={"connect": 0.01}))
    _record(
        store,
        _result(
            "relay-a",
            ok=False,
            failure=Failure.SSL_UNKNOWN_AUTHORITY,
            stage=Stage.TLS_HANDSHAKE,
            evidence=Technique.TLS_INTERCEPTION,
            facts={"tls_issuer": "CN=Information Security Certification Authority,O=ISCA,C=KZ"},
        ),
    )
    _record(
        store,
        _result("site-b", ok=True, facts={"throughput_bps": 18000.0, "control_throughput_bps": 900000}),
    )
    _record(
        store,
        _result("guard-1", ok=False, failure=Failure.GENERIC_TIMEOUT_ERROR, stage=Stage.CONNECT),
    )
    boot = {"transport": "vanilla", "bootstrap_progress": 5, "bootstrap_seconds": 12.5}
    boot["bootstrap_tag"] = "conn"
    boot["bootstrap_reason"] = "timeout"
    _record(store, _result("boot-vanilla", ok=False, failure=Failure.TOR_BOOTSTRAP_STALLED, facts=boot))
    for moved in (18_000, 19_500):  # two data stages cut after 18-20 KB (Russia, 2024)
        cut = {"bytes_moved": moved, "transfer_goal_bytes": 65536, "cut_after_bytes": moved}
        store.targets["proxy-c"].record(
            _result("proxy-c", ok=False, failure=Failure.TRANSFER_INCOMPLETE, stage=Stage.TRANSFER, facts=cut)
        )
    relay = store.targets["relay-a"]
    relay.verdict, relay.technique = Verdict.BLOCKED, Technique.TLS_INTERCEPTION
    store.set_vantage(VantageState.ONLINE)
    status.incidents = _OneOpenIncident()
    return store, status


class _OneOpenIncident:
    """The daemon's live incidents (``incident_live``) with relay-a's interception open."""

    def open_incidents(self) -> list[OpenIncident]:
        return [OpenIncident("target", "relay-a", "tls_interception", 1.7e9)]

    def counts(self) -> dict[tuple[str, str], int]:
        return {("target", "open"): 1}


def _documented_names() -> set[str]:
    section = ARCH.read_text().split("## Metrics", 1)[1].split("\n## ", 1)[0]
    return set(re.findall(r"^\| `([a-z_]+)` \|", section, re.MULTILINE))


def test_every_documented_metric_is_exported_and_nothing_undocumented() -> None:
    store, status = _populated()
    text = encode(build_registry(store, status), "")[0].decode()
    exported = {f.name for f in text_string_to_metric_families(text) if not f.name.startswith("process_")}
    documented = {re.sub(r"_total$", "", n) for n in _documented_names()}
    assert documented, "metrics table not found in ARCHITECTURE.md"
    assert documented - exported == set(), "documented but not exported"
    assert exported - documented == set(), "exported but not documented"


def test_blocked_target_carries_verdict_technique_and_named_issuer() -> None:
    store, status = _populated()
    samples = _scrape(store, status)
    relay = {"target": "relay-a", "kind": "tcp", "group": "default", "role": "target"}
    assert ("reachwatch_target_blocked", {**relay, "technique": "tls_interception"}, 1.0) in samples[
        "reachwatch_target_blocked"
    ]
    verdicts = {
        s[1]["verdict"]: s[2] for s in samples["reachwatch_target_verdict"] if s[1]["target"] == "relay-a"
    }
    assert verdicts == {"reachable": 0, "blocked": 1, "unreachable": 0, "unknown": 0}
    (issuer,) = samples["reachwatch_tls_presented_issuer_info"]
    assert issuer[1]["issuer"] == "CN=Information Security Certification Authority,O=ISCA,C=KZ"
    assert (
        "reachwatch_probe_failures_total",
        {**relay, "stage": "tls_handshake", "failure": "ssl_unknown_authority"},
        1.0,
    ) in samples["reachwatch_probe_failures_total"]
    assert samples["reachwatch_probe_success"] and all(
        s[1]["target"] != "relay-a" or s[2] == 0 for s in samples["reachwatch_probe_success"]
    )


def test_control_roles_user_labels_interval_and_throughput() -> None:
    store, status = _populated()
    samples = _scrape(store, status)
    roles = {s[1]["target"]: s[1]["role"] for s in samples["reachwatch_probe_success"]}
    assert roles == {
        "egov": "domestic_control",
        "relay-a": "target",
        "site-b": "target",
        "proxy-c": "target",
        "boot-vanilla": "target",
    }
    infos = {s[1]["target"]: s[1] for s in samples["reachwatch_target_info"]}
    assert infos["relay-a"]["category"] == "tor"
    intervals = {s[1]["target"]: s[2] for s in samples["reachwatch_target_interval_seconds"]}
    assert intervals == {
        "egov": 600.0, "relay-a": 600.0, "site-b": 300.0, "proxy-c": 600.0, "boot-vanilla": 600.0
    }
    (bps,) = samples["reachwatch_throughput_bytes_per_second"]
    assert bps[1]["target"] == "site-b" and bps[2] == 18000.0
    assert samples["reachwatch_throughput_control_bytes_per_second"][0][2] == 900000.0
    assert samples["reachwatch_probes_in_flight"][0][2] == 3
    assert samples["reachwatch_journal_write_errors_total"][0][2] == 2
    assert samples["reachwatch_vantage_info"][0][1] == {
        "vantage": "kz-almaty-1",
        "country": "KZ",
        "asn": "AS9198",
        "isp": "Kazakhtelecom",
        "city": "Almaty",
    }
    states = {s[1]["state"]: s[2] for s in samples["reachwatch_vantage_state"]}
    assert states["online"] == 1 and sum(states.values()) == 1


def test_removed_target_disappears_at_next_scrape() -> None:
    store, status = _populated()
    assert any(s[1]["target"] == "site-b" for s in _scrape(store, status)["reachwatch_probe_success"])
    store.retain({"egov", "relay-a"})
    after = _scrape(store, status)
    for name, rows in after.items():
        assert all(labels.get("target") != "site-b" for _, labels, _ in rows), name


def test_private_target_address_never_exported() -> None:
    store, status = _populated()
    text = generate_latest(build_registry(store, status)).decode()
    assert "relay-a" in text
    assert "192.0.2.55" not in text


def test_issuer_only_exported_when_certificate_rejected_and_is_capped() -> None:
    store, status = _store()
    _record(store, _result("site-b", ok=True, facts={"tls_issuer": "CN=R11,O=Let's Encrypt"}))
    assert "reachwatch_tls_presented_issuer_info" not in _scrape(store, status)
    hostile = "CN=" + "A" * 5000 + "\n\x00"
    _record(
        store,
        _result(
            "site-b",
            ok=False,
            failure=Failure.SSL_PIN_MISMATCH,
            stage=Stage.TLS_HANDSHAKE,
            facts={"tls_issuer": hostile},
        ),
    )
    (row,) = _scrape(store, status)["reachwatch_tls_presented_issuer_info"]
    assert len(row[1]["issuer"]) == MAX_INFO_VALUE
    assert "\n" not in row[1]["issuer"] and "\x00" not in row[1]["issuer"]


def test_relay_set_members_are_aggregated_not_per_target() -> None:
    store, status = _populated()
    samples = _scrape(store, status)
    assert all(labels.get("target") != "guard-1" for rows in samples.values() for _, labels, _ in rows)
    relays = {(s[1]["set"], s[1]["flag"]): s[2] for s in samples["reachwatch_tor_relayset_relays"]}
    assert relays == {("guards", "all"): 1, ("guards", "Guard"): 1}


def test_cut_points_are_a_histogram_per_group_and_kind_and_bytes_moved_a_gauge_per_target() -> None:
    store, status = _populated()
    samples = _scrape(store, status)
    buckets = {
        s[1]["le"]: s[2]
        for s in samples["reachwatch_probe_transfer_bytes_bucket"]
        if s[1] == {**s[1], "group": "proxies", "kind": "socks5"}
    }
    assert buckets["16384.0"] == 0 and buckets["32768.0"] == 2 and buckets["+Inf"] == 2
    assert samples["reachwatch_probe_transfer_bytes_sum"][0][2] == 37_500
    assert all("target" not in s[1] for s in samples["reachwatch_probe_transfer_bytes_bucket"])
    moved = {s[1]["target"]: s[2] for s in samples["reachwatch_probe_bytes_moved"]}
    assert moved == {"proxy-c": 19_500}


def test_fact_table_names_are_documented() -> None:
    assert {fm.name for fm in FACT_METRICS.values()} <= _documented_names()


def test_reload_gauge_and_disabled_per_target_metrics() -> None:
    store, status = _populated()
    status.reload_successful = False
    samples = _scrape(store, status)
    assert samples["reachwatch_config_last_reload_successful"][0][2] == 0
    status.config = status.config.model_copy(
        update={"web": status.config.web.model_copy(update={"per_target_metrics": False})}
    )
    assert "reachwatch_probe_success" not in _scrape(store, status)


def test_promtool_lints_the_exposition_clean() -> None:
    promtool = shutil.which("promtool")
    assert promtool, "promtool (Debian prometheus) is required"
    store, status = _populated()
    text = encode(build_registry(store, status), "")[0].decode()
    proc = subprocess.run(
        [promtool, "check", "metrics"], input=text, capture_output=True, text=True, timeout=60, check=False
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.strip() == ""


# what scrapers send: none, Prometheus 2 and 3, the client's own OpenMetrics, and escapings the fast
# path leaves to prometheus_client (dots, values)
ACCEPTS = [
    "",
    "text/plain;version=0.0.4;q=1,*/*;q=0.1",
    "text/plain;version=1.0.0;escaping=allow-utf-8",
    "text/plain;version=1.0.0;escaping=underscores",
    "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5",
    "application/openmetrics-text;version=1.0.0;escaping=allow-utf-8;q=0.6,"
    "application/openmetrics-text;version=0.0.1;q=0.5,text/plain;version=1.0.0;escaping=allow-utf-8;q=0.4",
    "application/openmetrics-text;version=1.0.0;escaping=dots",
    "text/plain;version=1.0.0;escaping=values",
]


def _hostile_populated() -> tuple[StateStore, DaemonStatus]:
    """The populated store plus label values that need escaping (quote, backslash, newline)."""
    store, status = _populated()
    relay = store.targets["relay-a"]
    relay.target = relay.target.model_copy(update={"labels": {"category": 'to"r\\x\ny', "zone": "é"}})
    relay.last = _result(
        "relay-a",
        ok=False,
        failure=Failure.SSL_PIN_MISMATCH,
        stage=Stage.TLS_HANDSHAKE,
        facts={"tls_issuer": 'CN="Evil \\ CA",O=x', "throughput_bps": 1.5e9, "bootstrap_seconds": 1e-7},
    )
    relay.failures_total[(None, Failure.INTERNAL_ERROR)] += 3
    return store, status


def test_served_body_is_byte_for_byte_prometheus_clients_for_every_negotiated_format() -> None:
    store, status = _hostile_populated()
    registry = build_registry(store, status)
    for accept in ACCEPTS:
        body, content_type = encode(registry, accept)
        reference, reference_type = choose_encoder(accept)
        assert content_type == reference_type, accept
        # process_* figures move between two renders: compare everything else
        mine = [line for line in body.decode().splitlines() if "process_" not in line]
        theirs = [line for line in reference(registry).decode().splitlines() if "process_" not in line]
        assert mine == theirs, accept
    text = encode(registry, "")[0].decode()
    assert 'category="to\\"r\\\\x\\ny"' in text and 'issuer="CN=\\"Evil \\\\ CA\\",O=x"' in text
    # and a parser reads back the values as they were (not only the form prometheus_client writes)
    parsed = {f.name: f.samples for f in text_string_to_metric_families(text)}
    (info,) = [s for s in parsed["reachwatch_target_info"] if s.labels["target"] == "relay-a"]
    assert info.labels["category"] == 'to"r\\x\ny' and info.labels["zone"] == "é"
    (issuer,) = parsed["reachwatch_tls_presented_issuer_info"]
    assert issuer.labels["issuer"] == 'CN="Evil \\ CA",O=x'
    (internal,) = [s for s in parsed["reachwatch_probe_failures"] if s.labels["failure"] == "internal_error"]
    assert internal.labels["stage"] == "none" and internal.value == 3


def test_per_target_families_are_written_as_text_and_parse_back_to_the_same_series() -> None:
    store, status = _populated()
    families = [m for m in build_registry(store, status).collect() if isinstance(m, TextFamily)]
    assert {f.name for f in families} >= {
        "reachwatch_probe_success",
        "reachwatch_probe_failures",
        "reachwatch_target_info",
    }
    failures = next(f for f in families if f.name == "reachwatch_probe_failures")
    (sample,) = [s for s in failures.samples if s.labels["target"] == "relay-a"]
    assert sample.name == "reachwatch_probe_failures_total" and sample.value == 1
    assert sample.labels == {
        "target": "relay-a",
        "kind": "tcp",
        "group": "default",
        "role": "target",
        "stage": "tls_handshake",
        "failure": "ssl_unknown_authority",
    }


def test_probe_metrics_carry_the_reachwatch_prefix_and_blackbox_names_only_when_asked() -> None:
    """A Prometheus that also scrapes blackbox_exporter must not see our probe_success by default."""
    store, status = _populated()
    plain = encode(build_registry(store, status), "")[0].decode()
    assert "\nreachwatch_probe_success{" in plain
    assert not re.search(r"^probe_", plain, re.MULTILINE)
    status.config = status.config.model_copy(
        update={"web": status.config.web.model_copy(update={"blackbox_compat_metrics": True})}
    )
    text = encode(build_registry(store, status), "")[0].decode()
    for name in ("probe_success", "probe_duration_seconds", "probe_stage_duration_seconds"):
        ours = [ln for ln in text.splitlines() if ln.startswith(f"reachwatch_{name}{{")]
        theirs = [ln for ln in text.splitlines() if ln.startswith(f"{name}{{")]
        assert ours and theirs == [ln.removeprefix("reachwatch_") for ln in ours], name
        assert f"# TYPE {name} gauge" in text
    proc = subprocess.run(
        ["promtool", "check", "metrics"], input=text, capture_output=True, text=True, timeout=60, check=False
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_build_info_names_version_and_revision_reference_health_and_start_lag() -> None:
    store, status = _populated()
    samples = _scrape(store, status)
    ((_, build, _),) = samples["reachwatch_build_info"]
    assert build["revision"] == revision() and build["version"]
    assert re.fullmatch(r"[0-9a-f]{7,40}(-dirty)?|unknown", build["revision"])
    # a reference never fetched has counters but no up/timestamp (unknown is not "down")
    assert [(s[1]["reference"], s[2]) for s in samples["reachwatch_reference_up"]] == [("abroad-1", 0)]
    assert samples["reachwatch_reference_last_fetch_timestamp_seconds"][0][2] == 1.7e9
    fetched = samples["reachwatch_reference_fetches_total"]
    fetches = {(s[1]["reference"], s[1]["result"]): s[2] for s in fetched}
    assert fetches == {
        ("abroad-1", "ok"): 3,
        ("abroad-1", "error"): 1,
        ("abroad-1", "rejected"): 1,  # a forged answer: failed, and counted apart
        ("abroad-2", "ok"): 0,
        ("abroad-2", "error"): 0,
        ("abroad-2", "rejected"): 0,
    }
    lag = {s[1].get("le"): s[2] for s in samples["reachwatch_scheduler_start_lag_seconds_bucket"]}
    assert lag == {"1.0": 3, "+Inf": 4}
    assert samples["reachwatch_scheduler_start_lag_seconds_sum"][0][2] == 7.5


async def test_event_loop_lag_histogram_records_a_blocked_loop() -> None:
    monitor = LoopLagMonitor(interval=0.02)
    task = asyncio.get_running_loop().create_task(monitor.run())
    await asyncio.sleep(0.05)
    time.sleep(0.3)  # a blocking call on the loop, as a bug would make
    await asyncio.sleep(0.05)
    task.cancel()
    buckets = dict(monitor.cumulative())
    assert monitor.count >= 2 and buckets["+Inf"] == monitor.count
    assert buckets["0.1"] < monitor.count  # the stall landed above 100 ms
    assert monitor.total >= 0.25
