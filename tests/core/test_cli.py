"""The reachwatch command line, run as a subprocess: check, history, export, run --check, import, errors."""

from __future__ import annotations

import asyncio
import json
import os
import re
import socket
import sqlite3
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from reachwatch.cli import DEFAULT_LISTEN_ADDRESS, parse_time
from reachwatch.config.schema import DEFAULT_LISTEN_ADDRESS as SCHEMA_DEFAULT
from reachwatch.errors import UsageError
from reachwatch.failures import Failure, Stage
from reachwatch.journal import Journal, JournalRow
from reachwatch.model import ProbeResult
from tests.servers import hold_open, rogue_ca, tcp_server

REACHWATCH = [sys.executable, "-m", "reachwatch"]


def rw(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*REACHWATCH, *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=cwd,
        env=os.environ,
    )


@pytest.fixture
def listener() -> Iterator[int]:
    """A TCP port that completes handshakes (the kernel's backlog answers; nobody needs to accept)."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen(256)
    yield s.getsockname()[1]
    s.close()


def _refused() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return int(port)


def _config(tmp_path: Path, control_port: int, targets: list[tuple[str, int]]) -> Path:
    lines = [
        "scheduler: {min_destination_spacing: 1ms, max_concurrency: 64, per_destination: 64}",
        "defaults: {timeout: 5s}",
        "controls:",
        "  international:",
        f"    - {{name: ctl, kind: tcp, host: 127.0.0.1, port: {control_port}}}",
        "targets:",
        *[f"  - {{name: {n}, kind: tcp, host: 127.0.0.1, port: {p}}}" for n, p in targets],
    ]
    path = tmp_path / "c.yaml"
    path.write_text("\n".join(lines) + "\n")
    path.chmod(0o600)
    return path


def test_check_all_reachable_exits_0_with_a_table(tmp_path: Path, listener: int) -> None:
    cfg = _config(tmp_path, listener, [("site-a", listener)])
    proc = rw("check", "--config", str(cfg))
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0].startswith("vantage: online")
    assert lines[2].split() == ["CONTROL", "KIND", "WHERE", "RESULT", "TIME"]
    assert lines[3].split()[:4] == ["ctl", "tcp", "international", "ok"]
    assert lines[5].split() == ["TARGET", "KIND", "VERDICT", "WHY", "TIME"]
    assert lines[6].split()[:4] == ["site-a", "tcp", "reachable", "-"]
    assert proc.stderr == ""  # a small sweep into a pipe: no progress lines


def test_check_something_unreachable_exits_1_and_json_says_why(tmp_path: Path, listener: int) -> None:
    cfg = _config(tmp_path, listener, [("site-a", listener), ("dead", _refused())])
    proc = rw("check", "--config", str(cfg), "--json")
    assert proc.returncode == 1, proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["vantage"]["state"] == "online"
    by_name = {t["name"]: t for t in doc["targets"]}
    # a refused port with no reference vantage is a dead server, not censorship
    assert by_name["dead"]["verdict"] == "unreachable"
    assert by_name["dead"]["last"]["failure"] == "connection_refused"
    assert by_name["dead"]["last"]["stage"] == "connect"
    assert by_name["site-a"]["verdict"] == "reachable"


def test_check_with_everything_down_calls_nothing_blocked(tmp_path: Path) -> None:
    cfg = _config(tmp_path, _refused(), [("a", _refused()), ("b", _refused())])
    proc = rw("check", "--config", str(cfg), "--json")
    assert proc.returncode == 1
    doc = json.loads(proc.stdout)
    assert doc["vantage"]["state"] == "offline"
    assert {t["name"]: t["verdict"] for t in doc["targets"] if t["role"] == "target"} == {
        "a": "unknown",
        "b": "unknown",
    }


def test_check_only_selected_target_and_progress_for_long_sweeps(tmp_path: Path, listener: int) -> None:
    cfg = _config(tmp_path, listener, [(f"t{i}", listener) for i in range(12)])
    proc = rw("check", "--config", str(cfg))
    assert proc.returncode == 0, proc.stderr
    # the progress names what it is doing: controls first (why), then the targets, then how far
    assert proc.stderr.splitlines()[0] == (
        "checking 1 control first (is this vantage online?), then 12 targets;"
        " each attempt is bounded by its timeout"
    )
    assert "controls done: vantage online (" in proc.stderr and "; checking 12 targets" in proc.stderr
    assert proc.stderr.splitlines()[-1] == "checked 13/13"
    proc = rw("check", "--config", str(cfg), "--target", "t3")
    assert proc.returncode == 0
    names = [ln.split()[0] for ln in proc.stdout.splitlines()[1:] if ln and not ln.startswith(" ")]
    assert names == ["CONTROL", "ctl", "TARGET", "t3"]
    proc = rw("check", "--config", str(cfg), "--target", "t33")
    assert proc.returncode == 2
    assert proc.stderr == f"reachwatch: check: no target named 't33' in {cfg} (did you mean 't3'?)\n"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["check", "--bogus"], "reachwatch: unrecognized arguments: --bogus (see --help)\n"),
        (["frobnicate"], None),
        (["export", "--format", "csv", "--since", "1h"], None),
        (["history"], "reachwatch: history: the following arguments are required: target (see --help)\n"),
        (["export", "--since", "yesterday"], None),
    ],
)
def test_usage_errors_are_one_line_exit_2(args: list[str], message: str | None, tmp_path: Path) -> None:
    proc = rw(*args, cwd=tmp_path)
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and proc.stderr.startswith("reachwatch: ")
    assert "Traceback" not in proc.stderr
    if message:
        assert proc.stderr == message


def test_run_check_validates_and_exits(tmp_path: Path, listener: int) -> None:
    cfg = _config(tmp_path, listener, [("a", listener)])
    proc = rw("run", "--check", "--config", str(cfg))
    assert (proc.returncode, proc.stdout) == (0, f"{cfg}: OK\n")
    cfg.write_text("targets: [{name: a, kind: tcp, host: x, port: 0}]\n")
    proc = rw("run", "--check", "--config", str(cfg))
    assert proc.returncode == 2
    assert proc.stderr == (
        f"reachwatch: {cfg}: targets[0] (name 'a').port: Input should be greater than or equal to 1\n"
    )


T0 = 1_700_000_000.0


def _journal(state: Path) -> None:
    j = Journal(state, retention=1e12)
    for i in range(4):
        ok = i != 2
        j.append(
            JournalRow(
                result=ProbeResult(
                    target="relay-a",
                    kind="tcp",
                    started_at=T0 + 600 * i,
                    duration_s=0.5,
                    success=ok,
                    failure=None if ok else Failure.CONNECTION_RESET,
                    stage=None if ok else Stage.CONNECT,
                ),
                group="tor",
                role="target",
                verdict="reachable",
                technique=None,
            )
        )
    j.close()


def test_history_shows_a_targets_timeline(tmp_path: Path) -> None:
    _journal(tmp_path / "st")
    proc = rw("history", "relay-a", "--state-dir", str(tmp_path / "st"), "--since", "2023-11-14T22:30:00Z")
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0].split()[:3] == ["TIME", "(UTC)", "RESULT"]
    assert [ln.split()[:3] for ln in lines[1:]] == [
        ["2023-11-14T22:33:20Z", "connection_reset", "connect"],
        ["2023-11-14T22:43:20Z", "ok", "-"],
    ]
    proc = rw("history", "relay-a", "--state-dir", str(tmp_path / "nowhere"))
    assert proc.returncode == 2
    assert proc.stderr == f"reachwatch: no journal in {tmp_path / 'nowhere'} (use --state-dir)\n"


def test_history_of_an_unknown_target_is_one_line_exit_2(tmp_path: Path, listener: int) -> None:
    state = tmp_path / "st"
    _journal(state)
    proc = rw("history", "nosuch", "--state-dir", str(state))
    assert (proc.returncode, proc.stdout) == (2, "")
    assert proc.stderr == f"reachwatch: history: no target named 'nosuch' in the journal in {state}\n"
    proc = rw("history", "relay", "--state-dir", str(state))
    assert proc.stderr.endswith("(did you mean 'relay-a'?)\n") and proc.returncode == 2
    # known to the journal but quiet lately: exit 0 and say so
    proc = rw("history", "relay-a", "--state-dir", str(state), "--since", "1h")
    assert proc.returncode == 0 and "no journaled attempts for 'relay-a' since" in proc.stdout
    # configured but never probed yet (given --config): not a typo, exit 0
    cfg = _config(tmp_path, listener, [("fresh", listener)])
    proc = rw("history", "fresh", "--state-dir", str(state), "--config", str(cfg))
    assert proc.returncode == 0, proc.stderr


def test_incidents_of_an_unknown_scope_is_one_line_exit_2(tmp_path: Path) -> None:
    state = tmp_path / "st"
    _journal(state)
    proc = rw("incidents", "--state-dir", str(state), "--scope", "relay-b", "--since", "0")
    assert (proc.returncode, proc.stdout) == (2, "")
    assert proc.stderr == (
        "reachwatch: incidents: no target, group, kind or vantage named 'relay-b' in the config or the"
        " journal (did you mean 'relay-a'?)\n"
    )
    known = rw("incidents", "--state-dir", str(state), "--scope", "relay-a", "--since", "0")
    assert known.returncode == 0, known.stderr


def test_help_documents_the_listen_address_and_its_default() -> None:
    assert DEFAULT_LISTEN_ADDRESS == SCHEMA_DEFAULT
    proc = rw("run", "--help")
    text = " ".join(proc.stdout.split())
    assert "--web.listen-address HOST:PORT" in text and f"web.listen_address, {SCHEMA_DEFAULT}" in text


async def test_check_table_fits_100_columns_and_names_the_substituted_issuer(tmp_path: Path) -> None:
    """The interception issuer is what the operator must read: under the row, in full, within 100 columns."""
    issuer_org = "Information Security Certification Authority of a Long-Named Ministry (lab)"
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    rogue_ca("KZ", issuer_org, "ISCA Lab Root").issue_cert("news.example").configure_cert(server_ctx)
    async with tcp_server(hold_open, ssl_ctx=server_ctx) as tls_port, tcp_server(hold_open) as plain:
        lines = [
            "defaults: {timeout: 5s}",
            "scheduler: {min_destination_spacing: 1ms, per_destination: 8}",
            "controls:",
            f"  international: [{{name: ctl, kind: tcp, host: 127.0.0.1, port: {plain}}}]",
            "targets:",
            f"  - {{name: news-site-behind-the-national-certificate-authority, kind: tls,"
            f" host: 127.0.0.1, port: {tls_port}, server_name: news.example}}",
        ]
        cfg = tmp_path / "c.yaml"
        cfg.write_text("\n".join(lines) + "\n")
        narrow = await _rw_async("check", "--config", str(cfg))
        wide = await _rw_async("check", "--config", str(cfg), "--wide")
    out = narrow.stdout.decode()
    print(out)  # what the operator reads (pytest -s shows it)
    assert narrow.returncode == 1, narrow.stderr
    assert max(len(line) for line in out.splitlines()) <= 100, out
    row = next(ln for ln in out.splitlines() if ln.startswith("news-site"))
    assert "…" in row.split()[0]  # the long name is cut in the row, whole in --wide and --json
    evidence = " ".join(ln.strip() for ln in out.splitlines() if ln.startswith("    "))
    assert f"O={issuer_org}" in evidence or issuer_org in evidence, out
    wide_text = wide.stdout.decode()
    assert "news-site-behind-the-national-certificate-authority" in wide_text
    assert wide_text.splitlines()[1].split()[:4] == ["TARGET", "KIND", "GROUP", "ROLE"]
    assert issuer_org in wide_text


async def _rw_async(*args: str) -> subprocess.CompletedProcess[bytes]:
    proc = await asyncio.create_subprocess_exec(
        *REACHWATCH, *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    out, err = await asyncio.wait_for(proc.communicate(), 120)
    return subprocess.CompletedProcess(list(args), proc.returncode or 0, out, err)


def test_export_jsonl_to_file_and_openmetrics_to_stdout(tmp_path: Path) -> None:
    state = tmp_path / "st"
    _journal(state)
    out = tmp_path / "x.jsonl"
    proc = rw(
        "export",
        "--state-dir",
        str(state),
        "--since",
        str(T0),
        "--until",
        str(T0 + 1200),
        "--format",
        "jsonl",
        "--output",
        str(out),
    )
    assert proc.returncode == 0, proc.stderr
    assert [json.loads(ln)["started_at"] for ln in out.read_text().splitlines()] == [T0, T0 + 600]
    proc = rw(
        "export", "--state-dir", str(state), "--since", "2023-11-14T00:00:00Z", "--format", "openmetrics"
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.endswith("# EOF\n")
    assert proc.stdout.count("\nreachwatch_probe_success{") == 4


def test_import_output_is_a_valid_config(tmp_path: Path) -> None:
    links = tmp_path / "links.txt"
    links.write_text("socks5://127.0.0.1:1080\n")
    proc = rw("import", str(links))
    assert proc.returncode == 0, proc.stderr
    cfg = tmp_path / "imported.yaml"
    cfg.write_text(proc.stdout)
    cfg.chmod(0o600)
    assert rw("validate", str(cfg)).returncode == 0


def test_parse_time_forms() -> None:
    now = 1_000_000.0
    assert parse_time("24h", now) == now - 86400
    assert parse_time("1700000000", now) == 1_700_000_000.0
    assert parse_time("2023-11-14T22:13:20Z", now) == 1_700_000_000.0
    assert parse_time("2023-11-14T22:13:20", now) == 1_700_000_000.0  # no zone: UTC
    with pytest.raises(UsageError):
        parse_time("last tuesday", now)
    assert time.time() - parse_time("30m") == pytest.approx(1800, abs=5)


def test_run_with_bad_input_is_one_line_exit_2(tmp_path: Path, listener: int) -> None:
    cfg = tmp_path / "bad.yaml"
    cfg.write_text("targets: [{name: a, kind: tcp, host: x, port: 1, y: 1}]\n")
    cfg.chmod(0o600)
    proc = rw("run", "--config", str(cfg), "--state-dir", str(tmp_path / "st"))
    assert (proc.returncode, proc.stderr) == (2, f"reachwatch: {cfg}: targets[0] (name 'a').y: unknown key\n")
    # the port is taken: the daemon releases what it started and says so in one line
    proc = rw("run", "--state-dir", str(tmp_path / "st"), "--web.listen-address", f"127.0.0.1:{listener}")
    assert proc.returncode == 2
    assert proc.stderr.startswith(f"reachwatch: web.listen_address: cannot listen on 127.0.0.1:{listener}")
    assert proc.stderr.count("\n") == 1


@pytest.mark.parametrize("since", ["-99999999999999", "nan", "1e400", "inf", "99999999999999999999d"])
def test_history_and_export_refuse_times_out_of_range_in_one_line(tmp_path: Path, since: str) -> None:
    _journal(tmp_path / "st")
    for args in (["history", "relay-a"], ["export"]):
        proc = rw(*args, "--state-dir", str(tmp_path / "st"), "--since", since)
        assert proc.returncode == 2, proc.stderr
        expected = f"reachwatch: time {since!r} is out of range: use a time between 1970 and 9999\n"
        assert proc.stderr == expected


def test_export_output_that_cannot_be_written_is_one_line(tmp_path: Path) -> None:
    _journal(tmp_path / "st")
    state = str(tmp_path / "st")
    proc = rw("export", "--state-dir", state, "--since", "2020-01-01", "--output", str(tmp_path))
    assert proc.returncode == 2
    assert proc.stderr == f"reachwatch: export: cannot write {tmp_path}: Is a directory\n"


def test_rows_a_newer_version_wrote_are_skipped_with_one_warning(tmp_path: Path) -> None:
    state = tmp_path / "st"
    _journal(state)
    conn = sqlite3.connect(state / "journal.sqlite3")
    conn.execute(
        "UPDATE results SET failure = 'quic_handshake_failed' WHERE failure IS NOT NULL"
    )  # as after a downgrade
    conn.commit()
    conn.close()
    warning = "reachwatch: skipped 1 journal rows this version cannot read (written by a newer reachwatch?)\n"
    proc = rw("history", "relay-a", "--state-dir", str(state), "--since", "2023-01-01")
    assert (proc.returncode, proc.stderr) == (0, warning)
    assert len(proc.stdout.splitlines()) == 4  # header + the three readable rows
    for fmt in ("jsonl", "openmetrics"):
        proc = rw("export", "--state-dir", str(state), "--since", "2023-01-01", "--format", fmt)
        assert (proc.returncode, proc.stderr) == (0, warning)


def test_a_damaged_journal_is_one_line_for_history(tmp_path: Path) -> None:
    state = tmp_path / "st"
    state.mkdir()
    (state / "journal.sqlite3").write_bytes(os.urandom(8192))
    proc = rw("history", "relay-a", "--state-dir", str(state))
    assert proc.returncode == 2
    assert proc.stderr == f"reachwatch: cannot read the journal in {state}: file is not a database\n"


def test_run_with_a_state_dir_that_cannot_be_created_is_one_line_exit_2(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    proc = rw("run", "--state-dir", str(blocker / "st"), "--web.listen-address", "127.0.0.1:0")
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr
    assert proc.stderr.startswith(f"reachwatch: cannot open journal {blocker / 'st' / 'journal.sqlite3'}: ")
    assert "--state-dir" in proc.stderr


def test_version_names_the_revision() -> None:
    proc = rw("--version")
    assert proc.returncode == 0 and proc.stderr == ""
    assert re.fullmatch(
        r"reachwatch \d+\.\d+\.\d+\S* \(revision ([0-9a-f]{7,40}(-dirty)?|unknown)\)\n", proc.stdout
    )
