"""The supervised tor process: clear Tor-only errors when binaries are missing or tor will not start,
backoff between failed starts, and the torrc it writes."""

from __future__ import annotations

import shutil

import pytest

from reachwatch.failures import Failure
from reachwatch.tor.supervisor import TorBinaries, TorProcess, TorSupervisor, TorUnavailable, torrc_text


async def test_tor_that_exits_at_start_is_tor_unavailable_and_restarts_back_off() -> None:
    supervisor = TorSupervisor(TorBinaries(tor="false"))  # /bin/false: starts, exits at once
    with pytest.raises(TorUnavailable) as first:
        await supervisor.get()
    assert first.value.failure == Failure.TOR_UNAVAILABLE and "exited at start" in str(first.value)
    with pytest.raises(TorUnavailable, match="retrying in") as second:
        await supervisor.get()  # within the backoff: no new process
    assert second.value.failure == Failure.TOR_UNAVAILABLE
    await supervisor.close()


def test_missing_binaries_name_the_failure() -> None:
    with pytest.raises(TorUnavailable) as tor:
        TorBinaries(tor="/nonexistent/tor").tor_path()
    assert tor.value.failure == Failure.TOR_UNAVAILABLE
    with pytest.raises(TorUnavailable) as pt:
        TorBinaries(transports={"snowflake": "/nonexistent/snowflake-client"}).plugin_lines(["snowflake"])
    assert pt.value.failure == Failure.TOR_PT_MISSING
    with pytest.raises(TorUnavailable) as unconfigured:
        TorBinaries(transports={}).plugin_lines(["webtunnel"])
    assert unconfigured.value.failure == Failure.TOR_PT_MISSING


def test_one_plugin_line_per_binary_serves_all_its_transports() -> None:
    binaries = TorBinaries(transports={"obfs4": "obfs4proxy", "meek_lite": "obfs4proxy"})
    path = shutil.which("obfs4proxy")
    assert binaries.plugin_lines(["obfs4", "meek_lite"]) == [f"meek_lite,obfs4 exec {path}"]


def test_torrc_repeats_list_values_and_refuses_newlines() -> None:
    text = torrc_text({"UseBridges": "1", "Bridge": ["192.0.2.1:443", "192.0.2.2:443"]})
    assert text == "UseBridges 1\nBridge 192.0.2.1:443\nBridge 192.0.2.2:443\n"
    with pytest.raises(ValueError, match="newline"):
        torrc_text({"Bridge": ["192.0.2.1:443\nControlPort 9051"]})


async def test_launched_tor_answers_its_controller_and_is_removed_on_close() -> None:
    tor = await TorProcess.launch(TorBinaries(), {"DisableNetwork": "1"})
    try:
        assert tor.alive
        version = await tor.call(tor.controller.get_version)
        assert str(version).startswith("0.4")
    finally:
        await tor.close()
    assert not tor.alive and not tor.data_dir.exists()


def test_a_missing_webtunnel_client_says_how_to_get_it() -> None:
    binaries = TorBinaries(
        transports={"webtunnel": "lyrebird-not-installed-here", "obfs4": "/nope/obfs4proxy"}
    )
    with pytest.raises(TorUnavailable) as exc:
        binaries.plugin_lines(["webtunnel"])
    assert exc.value.failure is Failure.TOR_PT_MISSING
    assert exc.value.hint.startswith("webtunnel needs lyrebird-not-installed-here: install")
    with pytest.raises(TorUnavailable) as exc:
        TorBinaries(transports={"webtunnel": "/usr/local/bin/lyrebird"}).plugin_lines(["webtunnel"])
    assert "not packaged for Debian bookworm" in exc.value.hint and "tor.transports (webtunnel: <path>)" in (
        exc.value.hint
    )
    with pytest.raises(TorUnavailable) as exc:
        binaries.plugin_lines(["obfs4"])
    assert "apt install obfs4proxy" in exc.value.hint


@pytest.mark.slow
async def test_a_webtunnel_bridge_without_lyrebird_is_pt_missing_with_the_hint_in_its_result() -> None:
    from reachwatch.config.schema import TorConfig  # noqa: PLC0415
    from reachwatch.config.targets.tor_bridge import TorBridgeTarget  # noqa: PLC0415
    from reachwatch.probes.base import ProbeContext, Services, run_probe  # noqa: PLC0415
    from reachwatch.probes.tor_bridge import SPEC  # noqa: PLC0415
    from reachwatch.tor.service import TorService  # noqa: PLC0415

    service = TorService.from_config(TorConfig(transports={"webtunnel": "/nonexistent/lyrebird"}))
    fingerprint = "FEDCBA9876543210" * 2 + "FEDCBA98"
    line = f"webtunnel [2001:db8::5]:443 {fingerprint} url=https://example.com/x ver=0.0.1"
    target = TorBridgeTarget(name="wt", kind="tor_bridge", bridge=line)
    ctx = ProbeContext(
        target="wt", kind="tor_bridge", timeout=60.0, private=True, services=Services(tor=service)
    )
    try:
        result = await run_probe(SPEC, target, ctx)
    finally:
        await service.close()
    assert result.failure is Failure.TOR_PT_MISSING
    assert "lyrebird" in str(result.facts["hint"]) and "2001:db8" not in str(result.facts)
