"""Relay sets (consensus, microdesc consensus, Onionoo), the directory authorities, and the aggregates."""

from __future__ import annotations

import asyncio
import json
import re
import shutil
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry
from stem.descriptor.networkstatus import NetworkStatusDocumentV3
from stem.descriptor.router_status_entry import RouterStatusEntryV3

from reachwatch.config.dirauths import DIRECTORY_AUTHORITIES, directory_authority_targets
from reachwatch.config.load import parse_config, with_relay_sets, with_tor_targets
from reachwatch.config.relaysets import RelaySetConfig, load_relays, relay_set_targets
from reachwatch.config.targets.tor_relay import TorRelayTarget
from reachwatch.errors import ConfigError
from reachwatch.metrics.relaysets import RelaySetCollector
from reachwatch.probes import PROBES
from reachwatch.probes.base import ProbeContext, run_probe
from reachwatch.state import StateStore
from tests.tor.lonerelay import TorRelayProcess

# A microdesc consensus as tor writes cached-microdesc-consensus (header trimmed to what parsers need;
# identities are base64 of the RSA fingerprint, as in real documents). The empty client-versions and
# server-versions lines are what tor writes when no versions are recommended; stem's strict mode
# rejects them, so this document also proves we do not depend on it.
MICRODESC_CONSENSUS = """\
network-status-version 3 microdesc
vote-status consensus
consensus-method 33
valid-after 2026-11-22 18:00:00
fresh-until 2026-11-22 19:00:00
valid-until 2026-11-22 21:00:00
voting-delay 300 300
client-versions
server-versions
known-flags Authority BadExit Exit Fast Guard HSDir MiddleOnly Running Stable StaleDesc Sybil V2Dir Valid
r seele AAoQ1DAR6kkoo19hBAX5K0QztNw 2038-01-01 00:00:00 104.53.221.159 9001 0
m 4mWQBNvlLULcymPAnskm0RXRbnoNz9QuoNsr0hpMgh8
s Fast Guard Running Stable V2Dir Valid
v Tor 0.4.8.12
w Bandwidth=30
r CalyxInstitute14 ABG9JIWtRdmE7EFZyI/AZuXjMA4 2038-01-01 00:00:00 162.247.74.201 443 0
a [2620:18c:0:192::e0:201]:443
m xGsTLwjhc3d8sT/eCaGr3hY5QHCdGKEDdGbCj0tZFgE
s Exit Fast Running Stable V2Dir Valid
v Tor 0.4.8.12
w Bandwidth=21000
r Unnamed AEXNT/mMizvPn8l7H4BYUNU1kvU 2038-01-01 00:00:00 82.165.107.59 9001 0
m Z1xbq6rshRf2PNh9u1cMUSiJcwPl8sPoJV/XyvKL0Pk
s Fast Running Valid
v Tor 0.4.8.13
w Bandwidth=670
directory-footer
bandwidth-weights Wbd=0 Wbe=0 Wbg=4186 Wbm=10000 Wdb=10000 Wed=10000 Wee=10000 Weg=10000 Wem=10000
directory-signature sha256 F533C81CEF0BC0267857C99B2F471ADF249FA232 7D8CAF41BE0A146EA09C9280717F2186D61D6CE9
-----BEGIN SIGNATURE-----
gzN0vLDj18WQmE26z0qNnUVSPXeLYBzVccAAXmipn9RS8B94RkWqO/JTRRhsyHqa
pMNELB2Rs5Kt5lY2b78sd1IVkooMjs99mkRGew+crybqLm7597hMH761wEI7kEmd
3hOvVzVGl1tYAxmRlDiSARnzJZOH9Pj9D7GQQdfeW4YqmPhuydtdmT07lhk=
-----END SIGNATURE-----
"""

ONIONOO = {
    "version": "8.0",
    "relays_published": "2026-11-22 18:00:00",
    "relays": [
        {
            "nickname": "seele",
            "fingerprint": "000A10D43011EA4928A35F610405F92B4433B4DC",
            "or_addresses": ["104.53.221.159:9001"],
            "running": True,
            "flags": ["Fast", "Guard", "Running", "Stable", "V2Dir", "Valid"],
            "country": "us",
            "as": "AS7018",
        },
        {
            "nickname": "CalyxInstitute14",
            "fingerprint": "0011BD2485AD45D984EC4159C88FC066E5E3300E",
            "or_addresses": ["[2620:18c:0:192::e0:201]:443", "162.247.74.201:443"],
            "running": True,
            "flags": ["Exit", "Fast", "Running", "Stable", "V2Dir", "Valid"],
        },
        {
            "nickname": "gone",
            "fingerprint": "0045CD4FF98C8B3BCF9FC97B1F805850D53592F5",
            "or_addresses": ["82.165.107.59:9001"],
            "running": False,
            "flags": ["Fast", "Valid"],
        },
    ],
}


def _consensus_file(tmp_path: Path) -> Path:
    routers = [
        RouterStatusEntryV3.create(
            {
                "r": f"relay{i} {ident} oQZFLYe9e4A7bOkWKR7TaNxb0JE 2026-11-22 11:19:31 10.0.0.{i} 900{i} 0",
                "s": flags,
            }
        )
        for i, (ident, flags) in enumerate(
            [
                ("p1aag7VwarGxqctS7/fS0y5FU+s", "Fast Guard Running Stable Valid"),
                ("ARIJF2zbqirB9IwsW0mQznccWww", "Exit Fast Running Valid"),
                ("AAoQ1DAR6kkoo19hBAX5K0QztNw", "Fast Guard Running Valid"),
            ],
            start=1,
        )
    ]
    path = tmp_path / "cached-consensus"
    path.write_bytes(NetworkStatusDocumentV3.content(routers=routers))
    return path


def test_full_consensus_guards_become_tor_relay_targets(tmp_path: Path) -> None:
    path = _consensus_file(tmp_path)
    spec = RelaySetConfig(name="guards", source=path.name, flags=["Guard"], interval="6h")
    targets = relay_set_targets(spec, tmp_path)
    assert [t.name for t in targets] == ["guards:000A10D430", "guards:A7569A83B5"]
    first = targets[0]
    assert (first.group, first.relay_set, first.host, first.port) == ("guards", "guards", "10.0.0.3", 9003)
    assert first.fingerprint == "000A10D43011EA4928A35F610405F92B4433B4DC"
    assert "Guard" in first.relay_flags and first.per_target_metrics is False
    assert first.interval == 6 * 3600


def test_microdesc_consensus_is_parsed_with_flags(tmp_path: Path) -> None:
    path = tmp_path / "cached-microdesc-consensus"
    path.write_text(MICRODESC_CONSENSUS)
    relays = {r.nickname: r for r in load_relays(path)}
    assert set(relays) == {"seele", "CalyxInstitute14", "Unnamed"}
    assert relays["seele"].fingerprint == "000A10D43011EA4928A35F610405F92B4433B4DC"
    assert (relays["CalyxInstitute14"].address, relays["CalyxInstitute14"].or_port) == ("162.247.74.201", 443)
    exits = relay_set_targets(RelaySetConfig(name="exits", source=str(path), flags=["Exit"]), tmp_path)
    assert [t.fingerprint[:10] for t in exits] == ["0011BD2485"]


def test_onionoo_details_skips_stopped_relays_and_prefers_ipv4(tmp_path: Path) -> None:
    path = tmp_path / "details.json"
    path.write_text(json.dumps(ONIONOO))
    relays = {r.nickname: r for r in load_relays(path)}
    assert set(relays) == {"seele", "CalyxInstitute14"}  # "gone" is not running
    assert (relays["CalyxInstitute14"].address, relays["CalyxInstitute14"].or_port) == ("162.247.74.201", 443)


def test_a_relay_listed_twice_is_one_target(tmp_path: Path) -> None:
    seele = {
        "fingerprint": "000A10D43011EA4928A35F610405F92B4433B4DC",
        "or_addresses": ["104.53.221.159:9001"],
    }
    path = tmp_path / "twice.json"
    path.write_text(json.dumps({"relays": [seele, {**seele, "or_addresses": ["10.9.9.9:1"]}]}))
    targets = relay_set_targets(RelaySetConfig(name="s", source=str(path)), tmp_path)
    assert [(t.host, t.port) for t in targets] == [("104.53.221.159", 9001)]


def test_sample_is_seeded_sized_and_stable(tmp_path: Path) -> None:
    relays = [
        {
            "fingerprint": f"{i:040X}",
            "or_addresses": [f"10.1.{i // 250}.{i % 250}:9001"],
            "flags": ["Guard"] if i % 2 else ["Fast"],
        }
        for i in range(200)
    ]
    path = tmp_path / "many.json"
    path.write_text(json.dumps({"relays": relays}))

    def names(seed: int) -> list[str]:
        spec = RelaySetConfig(name="s", source=str(path), flags=["Guard"], sample=10, seed=seed)
        return [t.name for t in relay_set_targets(spec, tmp_path)]

    assert len(names(1)) == 10 and names(1) == names(1)
    assert names(1) != names(2)
    everything = RelaySetConfig(name="s", source=str(path), flags=["Guard"], sample=1000)
    assert len(relay_set_targets(everything, tmp_path)) == 100


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("garbage.txt", b"hello world\n", "not a consensus"),
        ("bad.json", b'{"relays": [', "invalid JSON"),
        ("norelays.json", b'{"bridges": []}', "no 'relays' list"),
        ("badfp.json", b'{"relays": [{"fingerprint": "XYZ", "or_addresses": ["1.2.3.4:1"]}]}', "relays[0]"),
        ("noaddr.json", b'{"relays": [{"fingerprint": "' + b"A" * 40 + b'"}]}', "relays[0]"),
        ("empty.json", b'{"relays": []}', "no relays"),
        (
            "broken-consensus",
            b"network-status-version 3\nvote-status consensus\nr only three\n",
            "router entry 0",
        ),
    ],
)
def test_malformed_sources_are_one_line_config_errors_naming_the_file(
    tmp_path: Path, name: str, content: bytes, message: str
) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(ConfigError) as info:
        load_relays(path)
    text = str(info.value)
    assert text.startswith(str(path) + ": ") and "\n" not in text and message in text


def test_missing_source_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read relay list"):
        load_relays(tmp_path / "nope.json")


def test_config_section_reads_file_sets_at_load_and_rejects_unknown_flags(tmp_path: Path) -> None:
    (tmp_path / "details.json").write_text(json.dumps(ONIONOO))
    text = "tor:\n  directory_authorities: true\n  relay_sets:\n    - {name: kz, source: details.json}\n"
    loaded = with_relay_sets(with_tor_targets(parse_config(text, "c.yaml", tmp_path)))
    names = [t.name for t in loaded.config.all_targets()]
    # the authorities are configured targets; a set's members are generated ones, handed over at run time
    assert len(names) == len(set(names)) == 2 * len(DIRECTORY_AUTHORITIES)
    assert [t.name for t in loaded.relay_members["kz"]] == ["kz:000A10D430", "kz:0011BD2485"]
    assert loaded.relay_members["kz"][0].relay_country == "us"
    assert loaded.relay_members["kz"][0].relay_as == "AS7018"

    with pytest.raises(ConfigError, match=r"c.yaml: tor.relay_sets\[0\].*unknown relay flag 'guard'"):
        parse_config(text.replace("source: details.json", "source: x, flags: [guard]"), "c.yaml", tmp_path)
    with pytest.raises(ConfigError, match=r"exactly one of source \(a file\) or live"):
        parse_config(text.replace("source: details.json", "source: x, live: tor"), "c.yaml", tmp_path)
    with pytest.raises(ConfigError, match=r"used twice"):
        parse_config(text.replace("name: kz", "name: tor_fallbacks"), "c.yaml", tmp_path)

    with pytest.raises(ConfigError, match=r"c.yaml: tor.relay_sets\[0\].*unknown relay flag 'guard'"):
        parse_config(text.replace("source: details.json", "source: x, flags: [guard]"), "c.yaml", tmp_path)


def test_generated_name_colliding_with_a_configured_target_is_rejected(tmp_path: Path) -> None:
    (tmp_path / "details.json").write_text(json.dumps(ONIONOO))
    text = (
        "targets:\n  - {name: 'kz:000A10D430', kind: tcp, host: 127.0.0.1, port: 1}\n"
        "tor:\n  relay_sets:\n    - {name: kz, source: details.json}\n"
    )
    with pytest.raises(ConfigError, match="already configured"):
        with_relay_sets(with_tor_targets(parse_config(text, "c.yaml", tmp_path)))


def test_directory_authorities_match_the_list_compiled_into_the_installed_tor() -> None:
    tor = shutil.which("tor") or "/usr/sbin/tor"
    text = Path(tor).read_bytes().decode("latin-1")
    compiled = set(re.findall(r"([A-Za-z0-9]+) orport=(\d+) (?:bridge |v3ident=)", text))
    ours = {(a.nickname, str(a.or_port)) for a in DIRECTORY_AUTHORITIES}
    assert compiled == ours
    for auth in DIRECTORY_AUTHORITIES:
        spaced = " ".join(auth.fingerprint[i : i + 4] for i in range(0, 40, 4))
        assert (
            f"{auth.address}:{auth.dir_port} {spaced}" in text
            or f"{auth.address}:{auth.dir_port} {auth.fingerprint}" in text
        )
    targets = directory_authority_targets()
    assert {t.kind for t in targets} == {"tor_relay", "tor_dirport"} and len(targets) == 20


async def _probe(target: TorRelayTarget) -> object:
    ctx = ProbeContext(target=target.name, kind=target.kind, timeout=5)
    return await run_probe(PROBES["tor_relay"], target, ctx)


@pytest.mark.slow
async def test_aggregates_count_reachable_and_failures_per_set_and_flag(
    tmp_path: Path, tor_relay_process: TorRelayProcess
) -> None:
    """Four relays, one of them the real one: reachable 1/4 for the set, by flag, failures by kind."""
    closed = 1  # nothing listens on 127.0.0.1:1 -> connection_refused
    entries = [
        (tor_relay_process.fingerprint, tor_relay_process.or_port, ["Guard", "Fast"]),
        ("B" * 40, tor_relay_process.or_port, ["Guard"]),  # right address, wrong identity
        ("C" * 40, closed, ["Guard"]),
        ("D" * 40, closed, ["Exit"]),
    ]
    relays = [
        {"fingerprint": fp, "or_addresses": [f"127.0.0.1:{port}"], "flags": flags}
        for fp, port, flags in entries
    ]
    (tmp_path / "d.json").write_text(json.dumps({"relays": relays}))
    targets = relay_set_targets(RelaySetConfig(name="lab", source="d.json"), tmp_path)
    store = StateStore()
    for target, result in zip(targets, await asyncio.gather(*(_probe(t) for t in targets)), strict=True):
        store.ensure(target, None).last = result  # type: ignore[assignment]

    registry = CollectorRegistry()
    registry.register(RelaySetCollector(store))

    def value(name: str, **labels: str) -> float | None:
        return registry.get_sample_value(name, labels)

    assert value("reachwatch_tor_relayset_relays", set="lab", flag="all") == 4
    assert value("reachwatch_tor_relayset_probed", set="lab", flag="all") == 4
    assert value("reachwatch_tor_relayset_reachable", set="lab", flag="all") == 1
    assert value("reachwatch_tor_relayset_reachable", set="lab", flag="Guard") == 1
    assert value("reachwatch_tor_relayset_reachable", set="lab", flag="Exit") == 0
    assert value(
        "reachwatch_tor_relayset_failed",
        set="lab", flag="Guard", stage="protocol_handshake", failure="tor_identity_mismatch",
    ) == 1  # fmt: skip
    assert (
        value(
            "reachwatch_tor_relayset_failed",
            set="lab",
            flag="all",
            stage="connect",
            failure="connection_refused",
        )
        == 2
    )
    assert value("reachwatch_tor_relayset_verdict", set="lab", flag="all", verdict="unknown") == 4
