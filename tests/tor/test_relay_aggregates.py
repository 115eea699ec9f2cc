"""Where relays are (GeoIP files), the per-country and per-AS aggregates, the watcher that keeps sets
current, and the fallback directories compiled into the installed tor. No tor network needed here:
``test_relaynet.py`` runs the same pieces against a private one."""

from __future__ import annotations

import gzip
import io
import json
import random
import shutil
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry
from scripts.update_fallbackdirs import compiled_fallbacks

from reachwatch import logging as rwlog
from reachwatch import relaywatch
from reachwatch.cli import main
from reachwatch.config.fallbackdirs import FALLBACKS, fallback_targets
from reachwatch.config.geoip import load_geoip
from reachwatch.config.load import parse_config, with_relay_sets
from reachwatch.config.relaysets import Relay as RelayEntry
from reachwatch.config.relaysets import RelaySetConfig, relay_targets
from reachwatch.config.targets.tor_bridge import TorBridgeTarget
from reachwatch.errors import ConfigError
from reachwatch.failures import Failure, Stage, Technique, Verdict
from reachwatch.metrics.relaysets import RefreshStatus, RelaySetCollector
from reachwatch.model import ProbeResult
from reachwatch.relaywatch import RelaySetWatcher, valid_after
from reachwatch.scheduler import Scheduler
from reachwatch.state import StateStore
from reachwatch.tor.directory import DirectoryUnavailable
from tests.tor.lonerelay import TorRelayProcess

TOR_GEOIP = """\
# Last updated based on a fake database for the suite
2130706688,2130706943,xa
2130706944,2130707199,xb
2130707200,2130707455,??
"""  # 127.0.1.0/24 -> xa, 127.0.2.0/24 -> xb, 127.0.3.0/24 unknown
IP2ASN = (
    "127.0.1.0\t127.0.1.255\t64501\tXA\tLAB-A\n"
    "127.0.2.0\t127.0.2.255\t64502\tXB\tLAB-B\n"
    "1.0.0.0\t1.0.0.255\t0\tNone\tNot routed\n"
)


def geo_files(tmp_path: Path) -> tuple[Path, Path]:
    country = tmp_path / "geoip"
    country.write_text(TOR_GEOIP)
    asn = tmp_path / "ip2asn-v4.tsv.gz"
    asn.write_bytes(gzip.compress(IP2ASN.encode()))
    return country, asn


def test_tor_geoip_and_ip2asn_place_addresses_in_countries_and_ases(tmp_path: Path) -> None:
    country, asn = geo_files(tmp_path)
    geo = load_geoip(country, asn)
    assert geo.lookup("127.0.1.7") == ("xa", "AS64501")
    assert geo.lookup("127.0.2.200") == ("xb", "AS64502")
    assert geo.lookup("127.0.3.1") == (None, None)  # "??" in tor's file, nothing in ip2asn
    assert geo.lookup("1.0.0.1") == (None, None)  # AS 0: not routed
    assert geo.lookup("2001:db8::1") == (None, None)
    assert load_geoip(None, asn).lookup("127.0.2.1") == ("xb", "AS64502")  # ip2asn alone gives both


@pytest.mark.parametrize(
    ("name", "text", "message"),
    [
        ("geoip", "1,2,xa\nnot a line\n", r"geoip:2: not a tor GeoIP line"),
        ("geoip", "# only comments\n", r"no ranges"),
        ("ip2asn.tsv", "127.0.0.1\tx\t1\tXA\tA\n", r"ip2asn.tsv:1: not an ip2asn line"),
    ],
)
def test_a_bad_geoip_file_is_one_line_naming_file_and_line(
    tmp_path: Path, name: str, text: str, message: str
) -> None:
    (tmp_path / name).write_text(text)
    text_config = f"tor:\n  geoip: {{{'country_file' if name == 'geoip' else 'asn_file'}: {name}}}\n"
    with pytest.raises(ConfigError, match=message):
        with_relay_sets(parse_config(text_config, "c.yaml", tmp_path))


def test_the_installed_tors_geoip_file_parses_when_present() -> None:
    path = Path("/usr/share/tor/geoip")
    if not path.exists():
        pytest.skip("tor-geoipdb is not installed")
    geo = load_geoip(path, None)
    assert len(geo.countries) > 100_000
    assert geo.lookup("127.0.0.1") == (None, None)


def _relay(i: int, address: str, flags: str = "Fast Running Valid", **kw: str) -> RelayEntry:
    return RelayEntry(f"{i:040X}", f"r{i}", address, 9001, frozenset(flags.split()), **kw)  # type: ignore[arg-type]


def _result(target: str, ok: bool) -> ProbeResult:
    if ok:
        return ProbeResult(target=target, kind="tor_relay", success=True, duration_s=0.1, started_at=1.0)
    return ProbeResult(
        target=target, kind="tor_relay", success=False, duration_s=3.0, started_at=1.0,
        failure=Failure.GENERIC_TIMEOUT_ERROR, stage=Stage.CONNECT,
    )  # fmt: skip


def test_country_and_as_aggregates_are_bounded_with_other_and_unknown(tmp_path: Path) -> None:
    country, asn = geo_files(tmp_path)
    geo = load_geoip(country, asn)
    relays = [_relay(i, "127.0.1.1") for i in range(6)]  # xa, AS64501
    relays += [_relay(10 + i, "127.0.2.1", "Guard Fast Running Valid") for i in range(4)]  # xb
    relays += [_relay(20, "127.0.3.1")]  # nowhere known
    # Onionoo's word wins over the files; three small countries fall into "other" with top=2
    relays += [
        _relay(30 + i, "127.0.1.1", country=cc, as_number=f"AS{70 + i}")
        for i, cc in enumerate(["cc", "dd", "ee"])
    ]
    targets = relay_targets(RelaySetConfig(name="net", live="tor"), relays, geo)
    store = StateStore()
    for target in targets:
        state = store.ensure(target, None)
        blocked = target.relay_country == "xb"
        state.last = _result(target.name, not blocked)
        if blocked:
            state.verdict, state.technique = Verdict.BLOCKED, Technique.TCP_BLACKHOLE
    # a bridge is never counted: it is no relay-set member, and it stays private
    bridge = TorBridgeTarget(
        name="bridge", kind="tor_bridge", group="net", bridge=f"127.0.1.5:443 {'A' * 40}"
    )
    store.ensure(bridge, None).last = _result("bridge", True)
    registry = CollectorRegistry()
    statuses = [RefreshStatus(name="net", source="tor", members=len(targets), last_success=1.0, successes=2)]
    registry.register(RelaySetCollector(store, top=lambda: 2, refreshes=lambda: statuses))

    def value(name: str, **labels: str) -> float | None:
        return registry.get_sample_value(f"reachwatch_tor_relayset_{name}", {"set": "net", **labels})

    assert value("country_relays", country="xa") == 6 and value("country_reachable", country="xa") == 6
    assert value("country_relays", country="xb") == 4 and value("country_reachable", country="xb") == 0
    assert value("country_probed", country="xb") == 4
    assert value("country_relays", country="unknown") == 1
    assert value("country_relays", country="other") == 3  # cc, dd, ee beyond the top 2
    assert value("country_relays", country="cc") is None
    assert value("as_relays", asn="AS64501") == 6 and value("as_reachable", asn="AS64502") == 0
    assert value("as_relays", asn="other") == 3
    assert value("reachable", flag="all") == 10 and value("reachable", flag="Guard") == 0
    assert value("outcomes", by="country", group="xb", verdict="blocked", technique="tcp_blackhole") == 4
    assert value("outcomes", by="flag", group="Guard", verdict="blocked", technique="tcp_blackhole") == 4
    assert value("country_failed", country="xb", stage="connect", failure="generic_timeout_error") == 4
    assert value("refreshes_total", source="tor", result="success") == 2
    assert value("source_members", source="tor") == len(targets)
    names = {m.name for m in registry.collect()}
    assert len([n for n in names if n.startswith("reachwatch_tor_relayset")]) == 18


class FakeDirectory:
    """The directory tor's public seam: a consensus that changes, or a tor that is down."""

    def __init__(self, document: bytes | None) -> None:
        self.document = document

    async def consensus(self) -> bytes:
        if self.document is None:
            raise DirectoryUnavailable("directory tor restarting")
        return self.document

    async def fetch(self, url: str, timeout: float = 300.0) -> bytes:
        raise DirectoryUnavailable("no onionoo here")


def _consensus(addresses: dict[int, str]) -> bytes:
    from tests.tor.test_relaysets import MICRODESC_CONSENSUS  # noqa: PLC0415

    head, _, _ = MICRODESC_CONSENSUS.partition("r seele")
    import base64  # noqa: PLC0415

    body = ""
    for i, address in addresses.items():
        ident = base64.b64encode(bytes.fromhex(f"{i:040X}")).decode().rstrip("=")
        body += f"r r{i} {ident} 2038-01-01 00:00:00 {address} 9001 0\nm x\ns Fast Running Valid\n"
    return (head + body + "directory-footer\n").encode()


async def test_the_watcher_follows_the_consensus_keeps_its_list_when_tor_is_down_and_a_file_when_it_changes(
    tmp_path: Path,
) -> None:
    geo_files(tmp_path)
    (tmp_path / "d.json").write_text(
        json.dumps({"relays": [{"fingerprint": "E" * 40, "or_addresses": ["127.0.1.9:1"], "flags": []}]})
    )
    text = (
        "tor:\n  geoip: {country_file: geoip}\n  relay_sets:\n    - {name: net, live: tor}\n"
        "    - {name: file, source: d.json}\n"
    )
    loaded = with_relay_sets(parse_config(text, "c.yaml", tmp_path))
    sched = Scheduler(loaded, StateStore())
    directory = FakeDirectory(_consensus({1: "127.0.1.1", 2: "127.0.2.1"}))
    watcher = RelaySetWatcher(sched, loaded, directory, rng=random.Random(1))  # type: ignore[arg-type]
    assert [t.name for t in sched.generated("relay_set:file")] == ["file:EEEEEEEEEE"]  # read at load

    assert await watcher.refresh() == {"net": True, "file": True}
    members = {t.fingerprint[-1]: t for t in sched.generated("relay_set:net")}
    assert set(members) == {"1", "2"} and members["2"].relay_country == "xb"
    status = {s.name: s for s in watcher.statuses()}["net"]
    assert status.members == 2 and status.valid_after == valid_after(directory.document or b"")
    sched.store.targets[members["1"].name].probes_total = 7  # history that must survive the refresh

    directory.document = None  # tor restarting mid-refresh: nothing is lost
    assert await watcher.refresh(["net"]) == {"net": False}
    assert len(sched.generated("relay_set:net")) == 2 and status.failures == 1

    directory.document = _consensus({1: "127.0.1.1", 3: "127.0.2.3"})  # 2 left, 3 joined
    assert await watcher.refresh(["net"]) == {"net": True}
    assert {t.fingerprint[-1] for t in sched.generated("relay_set:net")} == {"1", "3"}
    assert sched.store.targets[members["1"].name].probes_total == 7
    assert members["2"].name not in sched.store.targets

    (tmp_path / "d.json").write_text(
        json.dumps({"relays": [{"fingerprint": "F" * 40, "or_addresses": ["127.0.1.9:1"], "flags": []}]})
    )
    assert await watcher.refresh(["file"]) == {"file": True}
    assert [t.name for t in sched.generated("relay_set:file")] == ["file:FFFFFFFFFF"]


def test_fallback_directories_match_the_list_compiled_into_the_installed_tor() -> None:
    tor = shutil.which("tor") or "/usr/sbin/tor"
    assert compiled_fallbacks(tor) == list(FALLBACKS), (
        "tor's fallbacks changed: scripts/update_fallbackdirs.py"
    )
    targets = fallback_targets(6 * 3600.0)
    assert len(targets) == len(FALLBACKS) >= 100
    assert len({t.name for t in targets}) == len(targets)
    assert {t.relay_set for t in targets} == {"tor_fallbacks"} and not any(
        t.per_target_metrics for t in targets
    )
    text = "tor: {fallback_directories: true, directory_authorities: true}\n"
    from reachwatch.config.load import with_tor_targets  # noqa: PLC0415

    loaded = with_tor_targets(parse_config(text, "c.yaml", Path(".")))
    assert len(loaded.config.all_targets()) == len(FALLBACKS) + 20


def test_check_relay_set_sweeps_the_set_now_and_prints_shares_by_country(
    tmp_path: Path, tor_relay_process: TorRelayProcess
) -> None:
    """A real relay (127.0.0.1, country xa by a test GeoIP file) and an impostor at the same port: one
    reachable with its identity verified, one not; the shares say so per country; unknown sets are one
    line, exit 2."""
    (tmp_path / "geoip").write_text("2130706433,2130706433,xa\n")
    relays = [
        {"fingerprint": fp, "or_addresses": [f"127.0.0.1:{tor_relay_process.or_port}"], "flags": ["Guard"]}
        for fp in (tor_relay_process.fingerprint, "B" * 40)
    ]
    (tmp_path / "d.json").write_text(json.dumps({"relays": relays}))
    config = tmp_path / "c.yaml"
    config.write_text(
        "defaults: {timeout: 5s}\nscheduler: {min_destination_spacing: 1ms}\n"
        "tor:\n  geoip: {country_file: geoip}\n  relay_sets: [{name: lab, source: d.json}]\n"
    )
    config.chmod(0o600)
    out, err = io.StringIO(), io.StringIO()
    code = main(["check", "--config", str(config), "--relay-set", "lab"], out, err)
    assert code == 0, err.getvalue()
    text = out.getvalue()
    assert "relay set lab (file): 1 of 2 relays reachable with their identity verified (50.0%)" in text
    assert "by country: xa 1/2 50%" in text and "by flag: Guard 1/2 50%" in text

    code = main(["check", "--config", str(config), "--relay-set", "lab", "--json"], out := io.StringIO(), err)
    doc = json.loads(out.getvalue())["relay_set"]
    assert (doc["relays"], doc["probed"], doc["reachable"]) == (2, 2, 1)
    assert doc["country"] == [{"group": "xa", "relays": 2, "probed": 2, "reachable": 1}]

    err = io.StringIO()
    assert main(["check", "--config", str(config), "--relay-set", "nope"], io.StringIO(), err) == 2
    assert len(err.getvalue().strip().splitlines()) == 1 and "nope" in err.getvalue()


def test_the_directory_tors_bridges_are_redacted_like_any_private_bridge(tmp_path: Path) -> None:
    line = f"192.0.2.44:443 {'C' * 40}"
    text = f"tor:\n  relay_list: {{bridges: ['{line}']}}\n  relay_sets: [{{name: net, live: tor}}]\n"
    loaded = parse_config(text, "c.yaml", tmp_path)
    secret = rwlog.sensitive_values(loaded)
    assert "192.0.2.44" in " ".join(secret) and "C" * 40 in secret
    with pytest.raises(ConfigError, match=r"relay_list\.bridges") as bad:
        parse_config(text.replace(line, "192.0.2.45:443 nothex"), "c.yaml", tmp_path)
    assert "192.0.2.45" not in str(bad.value)  # a refused line is not repeated either


async def test_a_bug_while_refreshing_is_one_failed_refresh_not_the_end_of_refreshes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    loaded = with_relay_sets(
        parse_config("tor:\n  relay_sets: [{name: net, live: tor}]\n", "c.yaml", tmp_path)
    )
    sched = Scheduler(loaded, StateStore())
    directory = FakeDirectory(_consensus({1: "127.0.1.1"}))
    watcher = RelaySetWatcher(sched, loaded, directory)  # type: ignore[arg-type]
    real = relaywatch.relay_targets

    def broken(*args: object) -> object:
        raise RuntimeError("a bug")

    monkeypatch.setattr(relaywatch, "relay_targets", broken)
    assert await watcher.refresh() == {"net": False}
    monkeypatch.setattr(relaywatch, "relay_targets", real)
    assert await watcher.refresh() == {"net": True}
    assert len(sched.generated("relay_set:net")) == 1 and watcher.statuses()[0].failures == 1
