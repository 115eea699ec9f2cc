"""The ``reachwatch`` command line: run, check, validate, history, export, incidents, import, keygen,
canary.

Flags follow the Prometheus exporter convention (``--config``, ``--web.listen-address``,
``--web.config.file``, ``--state-dir``, ``--log.level``, ``--log.format``). Bad input of any kind (config,
secret, web config, command line) is ONE line on stderr and exit code 2, never a traceback.
``check`` exits 0 when every target is reachable, 1 when something is not.

Each command imports what it needs when it runs: ``reachwatch --help`` loads no model, probe or network
code, and ``validate`` loads the config layer only (a test holds both). So this module imports the standard
library and the error vocabulary at the top, everything else inside the commands.
"""

from __future__ import annotations

import argparse
import json
import math
import sqlite3
import sys
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from html import escape as html_escape
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn, TextIO

from reachwatch.errors import ReachwatchError, UsageError

if TYPE_CHECKING:
    from reachwatch import journal
    from reachwatch.config.load import LoadedConfig
    from reachwatch.config.types import TargetBase
    from reachwatch.model import ProbeResult
    from reachwatch.scheduler import Scheduler
    from reachwatch.state import StateStore

EXIT_OK, EXIT_NOT_REACHABLE, EXIT_BAD_INPUT = 0, 1, 2
# the names of reachwatch.logging.LEVELS, spelt here so --help need not import logging (a test compares)
LOG_LEVELS = ("debug", "error", "info", "warning")
# a sweep of more targets than this shows progress on stderr when stderr is not a terminal
PROGRESS_THRESHOLD = 10
# config.schema.DEFAULT_LISTEN_ADDRESS, spelt here so --help need not import the schema (a test compares)
DEFAULT_LISTEN_ADDRESS = "127.0.0.1:10491"


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is a ``UsageError`` (one line, exit 2) like every other bad input."""

    def error(self, message: str) -> NoReturn:
        sub = self.prog.partition(" ")[2]  # "check" for "reachwatch check"
        raise UsageError(f"{sub}: {message} (see --help)" if sub else f"{message} (see --help)")


class _Version(argparse.Action):
    """``--version`` that finds the revision only when asked (``--help`` imports nothing of ours)."""

    def __call__(self, parser: argparse.ArgumentParser, *_: Any, **__: Any) -> NoReturn:
        from reachwatch.buildinfo import version_line  # noqa: PLC0415 - see the module docstring

        sys.stdout.write(version_line() + "\n")
        parser.exit()


# the times a journal can hold and a table can print: the epoch to the end of year 9999 (datetime's range)
MAX_TIME = 253402300799.0


def parse_time(value: str, now: float | None = None) -> float:
    """``24h``/``30m`` (that long ago), an ISO 8601 time (``2022-01-05T00:00:00Z``) or unix seconds.

    Raises ``UsageError`` for anything else, and for NaN, infinities and times outside [epoch, 9999]
    (they would pass a comparison and crash the printing later).
    """
    now = time.time() if now is None else now
    shown = repr(value if len(value) <= 40 else value[:40] + "...")
    ts = _time_value(value.strip(), now)
    if ts is None:
        raise UsageError(f"invalid time {shown}: use 24h, 2022-01-05T00:00:00Z or unix seconds")
    if not (math.isfinite(ts) and 0.0 <= ts <= MAX_TIME):
        raise UsageError(f"time {shown} is out of range: use a time between 1970 and 9999")
    return ts


def _time_value(text: str, now: float) -> float | None:
    from reachwatch.config.types import parse_duration  # noqa: PLC0415 - see the module docstring

    try:
        return float(text)
    except ValueError:
        pass
    try:
        return now - float(parse_duration(text))
    except ValueError:
        pass
    try:
        dt = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    try:
        return dt.timestamp()
    except (OverflowError, ValueError):  # 0001-01-01T00:00+01:00 lies before year 1 in UTC
        return math.nan


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def build_parser() -> argparse.ArgumentParser:
    common = _Parser(add_help=False)
    common.add_argument("--config", metavar="FILE", help="config file (default: the embedded default config)")
    common.add_argument(
        "--state-dir", default="state", metavar="DIR", help="journal directory (default ./state)"
    )
    common.add_argument("--log.level", dest="log_level", choices=LOG_LEVELS, help="log level")
    common.add_argument("--log.format", dest="log_format", choices=["console", "json"], help="log format")

    parser = _Parser(prog="reachwatch", description="Measure reachability of circumvention endpoints.")
    parser.add_argument("--version", action=_Version, nargs=0, help="show the version and revision, and exit")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    run = sub.add_parser("run", parents=[common], help="run the daemon")
    run.add_argument(
        "--web.listen-address",
        dest="listen_address",
        metavar="HOST:PORT",
        help=f"where /metrics, the status page and the API listen (default: the config's "
        f"web.listen_address, {DEFAULT_LISTEN_ADDRESS}: loopback only)",
    )
    run.add_argument(
        "--web.config.file", dest="web_config_file", metavar="FILE", help="exporter-toolkit web config"
    )
    run.add_argument("--check", action="store_true", help="validate the configuration and exit")

    check = sub.add_parser(
        "check",
        parents=[common],
        help="probe every target once (or just THINGs) and print a table",
        description="Probe every target of the config once, or only the THINGs given, with the controls "
        "(of --config, else of the embedded default config) run first so the verdicts are judged.",
    )
    check.add_argument(
        "things",
        nargs="*",
        metavar="THING",
        help="a bridge line (quoted), an ss:// socks5:// http:// tcp:// tls:// URL, a .ovpn, wg-quick, "
        "links or bridges file, or host:port",
    )
    check.add_argument(
        "--target", action="append", default=[], metavar="NAME", help="only this target (repeat)"
    )
    check.add_argument(
        "--kind",
        choices=["tcp", "tls"],
        default="tcp",
        help="what to test on a host:port THING (default tcp)",
    )
    check.add_argument(
        "--relay-set",
        metavar="NAME",
        help="sweep this relay set of the config now, whole (controls first), and print its shares by "
        "country, AS and flag",
    )
    check.add_argument("--canary", metavar="HOST:PORT", help="echo canary abroad for ss:// and proxy THINGs")
    check.add_argument("--json", action="store_true", help="JSON instead of a table")
    check.add_argument(
        "--wide", action="store_true", help="every column and every fact, lines as long as they need"
    )

    validate = sub.add_parser("validate", parents=[common], help="validate a config file")
    validate.add_argument("file", nargs="?", metavar="CONFIG")

    history = sub.add_parser("history", parents=[common], help="a target's journaled timeline")
    history.add_argument("target")
    history.add_argument("--since", default="24h", help="24h, ISO time or unix seconds (default 24h)")
    history.add_argument("--json", action="store_true")

    export = sub.add_parser("export", parents=[common], help="export the journal (backfill after an outage)")
    export.add_argument("--since", required=True)
    export.add_argument("--until", default=None, help="default: now")
    export.add_argument("--format", choices=["jsonl", "openmetrics"], default="jsonl")
    export.add_argument(
        "--label",
        action="append",
        default=[],
        metavar="K=V",
        help="openmetrics: a label on every series (repeat; job=, instance=, vantage_role=...), after the"
        " config's vantage identity (vantage, country, asn, isp, city); K= removes one",
    )
    export.add_argument("--output", metavar="FILE", help="default: stdout")

    inc = sub.add_parser(
        "incidents", parents=[common], help="incidents derived from the journal, open first (show ID: one)"
    )
    inc.add_argument(
        "action", nargs="?", choices=["list", "show"], default="list", help="list (default) or show"
    )
    inc.add_argument("id", nargs="?", metavar="ID", help="the incident or pattern to show")
    _period_arguments(inc, since_default="7d")
    inc.add_argument("--scope", metavar="NAME", help="a target, group or kind name, or the vantage's name")
    inc.add_argument("--technique", metavar="T", help="e.g. tcp_reset, international_shutdown, none")
    inc.add_argument("--status", choices=["open", "closed"], help="only open or only closed incidents")
    inc.add_argument(
        "--timezone", metavar="ZONE", help="show times in this IANA zone (default vantage.timezone)"
    )
    inc.add_argument("--json", action="store_true", help="the same document as /api/v1/incidents")

    canary = sub.add_parser(
        "canary",
        parents=[common],
        help="run the keyed echo canary (the config's canary: section) on a host abroad",
    )
    canary.add_argument("--check", action="store_true", help="validate the canary section and secret, exit")

    rep = sub.add_parser(
        "report", parents=[common], help="a report to publish: incidents with their evidence (html, md, json)"
    )
    _period_arguments(rep, since_default=None)
    rep.add_argument(
        "--format", choices=["html", "md", "json"], default="html", help="html (default) needs matplotlib"
    )
    rep.add_argument(
        "--output", required=True, metavar="FILE", help="md/json: the raw data goes to FILE.jsonl"
    )
    rep.add_argument(
        "--timezone", metavar="ZONE", help="report times in this IANA zone (default vantage.timezone)"
    )
    rep.add_argument(
        "--max-raw-rows",
        type=int,
        default=100_000,
        metavar="N",
        help="rows in the raw-data attachment at most",
    )

    init = sub.add_parser(
        "init",
        parents=[common],
        help="write a starter config for your country, with your vantage's identity",
        description="A starter config: your vantage's identity (asked for when not given and stdin is a "
        "terminal; nothing is filled in from a sample), the country's domestic and international controls, "
        "and targets worth measuring there.",
    )
    init.add_argument("--country", metavar="CC", help="ISO 3166 code of the vantage's country, e.g. KZ")
    init.add_argument("--name", help="this vantage's name, e.g. almaty-home-1 (a published label)")
    init.add_argument("--asn", default=None, help="the access network's AS number, e.g. AS9198 (optional)")
    init.add_argument("--isp", default=None, help="the access network's operator, coarse (optional)")
    init.add_argument("--city", default=None, help="a city, not an address (optional)")
    init.add_argument("--timezone", default=None, help="IANA time zone (default: the country's)")
    init.add_argument(
        "--domestic", default=None, metavar="HOST,HOST", help="your own domestic controls (any country)"
    )
    init.add_argument("--output", metavar="FILE", help="write here (mode 0600) instead of stdout")
    init.add_argument("--force", action="store_true", help="replace an existing --output file")

    # --- import: converters for files users already have (.ovpn, wg-quick, ss:// and proxy links, VPN Gate,
    # RiseupVPN). The importers live in reachwatch/importers/ and return a `targets:` YAML document.
    imp = sub.add_parser(
        "import", parents=[common], help="convert .ovpn / wg-quick / links to targets (YAML)"
    )
    imp.add_argument("files", nargs="+", metavar="FILE")
    imp.add_argument("--output-dir", metavar="DIR", help="write extracted secrets here (mode 0600)")
    imp.add_argument("--canary", metavar="HOST:PORT", help="echo canary for proxy and Shadowsocks entries")

    keygen = sub.add_parser(
        "keygen", parents=[common], help="a key pair that signs this vantage's answers as a reference"
    )
    keygen.add_argument("--output-dir", default=".", metavar="DIR", help="where NAME.key/.pub go (default .)")
    keygen.add_argument("--name", default="reference", help="file name stem (default: reference)")
    return parser


def _period_arguments(parser: argparse.ArgumentParser, since_default: str | None) -> None:
    if since_default is None:
        parser.add_argument("--since", required=True, help="24h, 7d, ISO time or unix seconds")
    else:
        parser.add_argument(
            "--since", default=since_default, help=f"24h, ISO time or unix seconds ({since_default})"
        )
    parser.add_argument("--until", default=None, help="default: now")


def _config_path(args: argparse.Namespace) -> Path | None:
    return Path(args.config) if args.config else None


def cmd_validate(args: argparse.Namespace, out: TextIO) -> int:
    from reachwatch.config.load import load_full_config  # noqa: PLC0415 - see the module docstring

    path = args.file or args.config
    if args.file and args.config and args.file != args.config:
        raise UsageError("validate: give the config either as CONFIG or as --config, not both")
    loaded = load_full_config(Path(path) if path else None)
    from reachwatch.config.targets.http import pattern_problem  # noqa: PLC0415

    for target in loaded.config.all_targets():
        for i, pattern in enumerate(getattr(target, "blockpage_patterns", None) or []):
            problem = pattern_problem(pattern)
            if problem is not None:
                where = f"target {target.name!r} blockpage_patterns[{i}] {pattern!r}"
                out.write(f"{loaded.source}: warning: {where} cannot match as written: {problem}\n")
    n = len(loaded.config.all_targets())
    members = sum(len(m) for m in loaded.relay_members.values())
    live = len(loaded.config.tor.live_relay_sets())
    sets = f", relay set members: {members}" if members else ""
    sets += f", live relay sets: {live}" if live else ""
    out.write(f"{loaded.source}: OK (targets and controls: {n}{sets})\n")
    return EXIT_OK


def cmd_run(args: argparse.Namespace, out: TextIO) -> int:
    if args.check:  # what validate checks, with this command's --web.config.file override
        from reachwatch.config.load import load_full_config  # noqa: PLC0415 - see the module docstring

        loaded = load_full_config(_config_path(args), web_config_file=args.web_config_file)
        out.write(f"{loaded.source}: OK\n")
        return EXIT_OK
    from reachwatch.app import Daemon, RunOptions, run_async  # noqa: PLC0415

    options = RunOptions(
        config_path=_config_path(args),
        state_dir=Path(args.state_dir),
        listen_address=args.listen_address,
        web_config_file=args.web_config_file,
        log_level=args.log_level,
        log_format=args.log_format,
    )
    return int(run_async(Daemon(options).run()))


async def _sweep(args: argparse.Namespace, err: TextIO) -> StateStore:
    from reachwatch.config.load import load_full_config  # noqa: PLC0415 - see the module docstring

    if args.things:
        if args.target or args.relay_set:
            raise UsageError("check: give THINGs, --target or --relay-set, not several")
        import tempfile  # noqa: PLC0415

        from reachwatch.checkconfig import one_off_config  # noqa: PLC0415

        # secrets of the THINGs live in private files only while the check runs
        with tempfile.TemporaryDirectory(prefix="reachwatch-check-") as secrets:
            loaded = one_off_config(
                args.things,
                config_path=_config_path(args),
                kind=args.kind,
                canary=args.canary,
                secrets_dir=Path(secrets),
            )
            return await _sweep_loaded(args, loaded, err)
    return await _sweep_loaded(args, load_full_config(_config_path(args)), err)


async def _sweep_loaded(args: argparse.Namespace, loaded: LoadedConfig, err: TextIO) -> StateStore:
    from reachwatch import logging as rwlog  # noqa: PLC0415 - see the module docstring
    from reachwatch.probes.base import Services  # noqa: PLC0415
    from reachwatch.scheduler import Scheduler  # noqa: PLC0415
    from reachwatch.state import StateStore  # noqa: PLC0415
    from reachwatch.tor.service import TorService  # noqa: PLC0415

    rwlog.REDACTOR.update(rwlog.sensitive_values(loaded))
    store = StateStore()
    services = Services(tor=TorService.from_config(loaded.config.tor))
    scheduler = Scheduler(loaded, store, services=services)
    targets = loaded.config.all_targets()
    if args.relay_set:
        targets = await _relay_set_targets(args, loaded, scheduler, err)
    elif args.target:
        known = {t.name for t in targets}
        unknown = [n for n in args.target if n not in known]
        if unknown:
            raise UsageError(_unknown_target("check", unknown[0], known, loaded.source))
        # controls always run: without them no failure can be judged
        targets = [t for t in targets if t.name in args.target or loaded.config.control_role(t.name)]
    from reachwatch.checkview import SweepProgress  # noqa: PLC0415

    roles = {t.name: loaded.config.control_role(t.name) for t in targets}
    controls = [t.name for t in targets if roles[t.name]]
    shown = SweepProgress(
        err,
        controls,
        [t.name for t in targets if not roles[t.name]],
        tty=err.isatty(),
        quiet_below=PROGRESS_THRESHOLD,
    )

    def progress(done: int, total: int, result: ProbeResult) -> None:
        controls_done = (
            bool(controls)
            and roles[result.target]
            and all(c in shown.done or c == result.target for c in controls)
        )
        vantage = (store.vantage_state.value, store.vantage_reason) if controls_done else None
        shown.finished(result.target, vantage)

    shown.start()
    try:
        await scheduler.sweep(targets, progress=progress)
    finally:
        await scheduler.drain(0)
        if services.tor is not None:
            await services.tor.close()
    for name in [n for n in store.targets if n not in {t.name for t in targets}]:
        del store.targets[name]
    return store


async def _relay_set_targets(
    args: argparse.Namespace, loaded: LoadedConfig, scheduler: Scheduler, err: TextIO
) -> list[TargetBase]:
    """The controls and every member of ``--relay-set`` (handed to the scheduler as generated targets)."""
    from reachwatch import relaycheck  # noqa: PLC0415 - see the module docstring
    from reachwatch.relaywatch import source_key  # noqa: PLC0415
    from reachwatch.scheduler import Rotation  # noqa: PLC0415

    if args.target:
        raise UsageError("check: give --target or --relay-set, not both")
    spec = relaycheck.find_set(loaded, args.relay_set)
    if spec is None:
        known = {s.name for s in loaded.config.tor.relay_sets}
        raise UsageError(_unknown_target("check", args.relay_set, known, loaded.source, "relay set"))

    def say(text: str) -> None:
        err.write(text + "\n")
        err.flush()

    members = await relaycheck.members(loaded, spec, say)
    args.relay_set_loaded = loaded  # the report needs this config (its set, tor.geoip.top): not read twice
    scheduler.set_generated(source_key(spec.name), members, Rotation(spec.interval))
    controls = [t for t in loaded.config.all_targets() if loaded.config.control_role(t.name)]
    return [*controls, *scheduler.generated(source_key(spec.name))]


def _rows(store: StateStore) -> list[dict[str, Any]]:
    rows = []
    for state in store.targets.values():
        outcome = state.last_outcome
        last = state.last
        rows.append(
            {
                "name": state.name,
                "kind": state.target.kind,
                "group": state.target.group,
                "role": state.role_label,
                "verdict": (outcome.verdict if outcome else state.verdict).value,
                "technique": outcome.technique.value if outcome and outcome.technique else None,
                "evidence": dict(outcome.evidence) if outcome else {},
                "reference": outcome.reference.to_dict() if outcome and outcome.reference else None,
                "last": last.to_dict() if last else None,
            }
        )
    return rows


def cmd_check(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from reachwatch.app import run_async  # noqa: PLC0415 - see the module docstring
    from reachwatch.failures import Verdict  # noqa: PLC0415

    store: StateStore = run_async(_sweep(args, err))
    if args.relay_set:
        return _relay_set_report(args, store, out)
    rows = _rows(store)
    if args.json:
        doc = {
            "vantage": {"state": store.vantage_state.value, "reason": store.vantage_reason},
            "targets": rows,
        }
        out.write(json.dumps(doc, indent=2) + "\n")
    else:
        from reachwatch import checkview  # noqa: PLC0415 - see the module docstring

        view = checkview.render_wide if args.wide else checkview.render
        out.writelines(line + "\n" for line in view(store.vantage_state.value, store.vantage_reason, rows))
    reachable = all(r["verdict"] == Verdict.REACHABLE.value for r in rows)
    return EXIT_OK if reachable else EXIT_NOT_REACHABLE


def _relay_set_report(args: argparse.Namespace, store: StateStore, out: TextIO) -> int:
    """The set's shares (not a row per relay: a set has thousands); exit 0 when any relay was reached."""
    from reachwatch import relaycheck  # noqa: PLC0415 - see the module docstring

    loaded: LoadedConfig = args.relay_set_loaded
    spec = relaycheck.find_set(loaded, args.relay_set)
    assert spec is not None  # checked before the sweep
    doc = relaycheck.relayset_document(store, spec, loaded.config.tor.geoip.top)
    if args.json:
        vantage = {"state": store.vantage_state.value, "reason": store.vantage_reason}
        out.write(json.dumps({"vantage": vantage, "relay_set": doc}, indent=2) + "\n")
    else:
        out.write(f"vantage: {store.vantage_state.value}\n")
        out.writelines(line + "\n" for line in relaycheck.render(doc))
    return EXIT_OK if doc["reachable"] else EXIT_NOT_REACHABLE


def _print_table(table: list[list[str]], out: TextIO) -> None:
    widths = [max(len(row[i]) for row in table) for i in range(len(table[0]))]
    for row in table:
        out.write("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip() + "\n")


def _open_journal_dir(args: argparse.Namespace) -> Path:
    from reachwatch.journal_store import DB_NAME  # noqa: PLC0415 - see the module docstring

    state = Path(args.state_dir)
    if not (state / DB_NAME).exists():
        raise UsageError(f"no journal in {state} (use --state-dir)")
    return state


def _journal_error(state: Path, exc: sqlite3.Error) -> UsageError:
    return UsageError(f"cannot read the journal in {state}: {exc}")


def _report_skipped(stats: journal.ReadStats, err: TextIO) -> None:
    if stats.skipped:
        err.write(
            f"reachwatch: skipped {stats.skipped} journal rows this version cannot read"
            " (written by a newer reachwatch?)\n"
        )


def _unknown_target(command: str, name: str, known: set[str], where: str, what: str = "target") -> str:
    """``check: no target named 'x' in c.yaml (did you mean 'y'?)``: one line, with the nearest name."""
    import difflib  # noqa: PLC0415

    close = difflib.get_close_matches(name, sorted(known), n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    return f"{command}: no {what} named {name!r} in {where}{hint}"


def cmd_history(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from reachwatch import journal  # noqa: PLC0415 - see the module docstring

    since = parse_time(args.since)
    state = _open_journal_dir(args)
    stats = journal.ReadStats()
    try:
        known = set(journal.known_targets(state))
        if args.target not in known:
            if args.config:  # a configured target that has not been probed yet is not a typo
                from reachwatch.config.load import load_full_config  # noqa: PLC0415

                known |= {t.name for t in load_full_config(_config_path(args)).config.all_targets()}
            if args.target not in known:
                raise UsageError(_unknown_target("history", args.target, known, f"the journal in {state}"))
        rows = journal.history(state, args.target, since, stats)
    except sqlite3.Error as exc:
        raise _journal_error(state, exc) from None
    _report_skipped(stats, err)
    if args.json:
        for row in rows:
            out.write(json.dumps(row.to_dict(), sort_keys=True) + "\n")
        return EXIT_OK
    table = [["TIME (UTC)", "RESULT", "STAGE", "VERDICT", "TECHNIQUE", "DURATION"]]
    for row in rows:
        r = row.result
        table.append(
            [
                _iso(r.started_at),
                "ok" if r.success else (r.failure.value if r.failure else "failed"),
                r.stage.value if r.stage else "-",
                row.verdict or "-",
                row.technique or "-",
                f"{r.duration_s:.2f}s",
            ]
        )
    _print_table(table, out)
    if not rows:
        out.write(f"no journaled attempts for {args.target!r} since {_iso(since)}\n")
    return EXIT_OK


def cmd_export(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from reachwatch import journal  # noqa: PLC0415 - see the module docstring

    since = parse_time(args.since)
    until = parse_time(args.until) if args.until else time.time()
    if until <= since:
        raise UsageError("export: --until must be after --since")
    labels = _export_labels(args) if args.format == "openmetrics" else {}
    state = _open_journal_dir(args)
    stats = journal.ReadStats()
    lines = journal.export(state, since, until, args.format, stats, labels=labels)
    try:
        if args.output:
            try:
                fh = open(args.output, "w", encoding="utf-8")  # noqa: SIM115 - errors named below
            except OSError as exc:
                raise UsageError(f"export: cannot write {args.output}: {exc.strerror or exc}") from None
            with fh:
                try:
                    fh.writelines(lines)
                except OSError as exc:
                    raise UsageError(f"export: writing {args.output} failed: {exc.strerror or exc}") from None
        else:
            out.writelines(lines)
    except sqlite3.Error as exc:
        raise _journal_error(state, exc) from None
    _report_skipped(stats, err)
    return EXIT_OK


def _period(args: argparse.Namespace, command: str) -> tuple[float, float]:
    since = parse_time(args.since)
    until = parse_time(args.until) if args.until else time.time()
    if until <= since:
        raise UsageError(f"{command}: --until must be after --since")
    return since, until


def _zone(name: str | None, command: str) -> Any:
    if name is None:
        return None
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError  # noqa: PLC0415 - see the module docstring

    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise UsageError(
            f"{command}: unknown time zone {name!r} (an IANA name such as Asia/Almaty)"
        ) from None


def _incidents(
    args: argparse.Namespace, err: TextIO, command: str
) -> tuple[Any, Any, Any, tuple[float, float]]:
    """The config, the derived incidents of the period, and the zone to show them in."""
    from reachwatch import journal  # noqa: PLC0415 - see the module docstring
    from reachwatch.config.load import load_config  # noqa: PLC0415
    from reachwatch.incident_store import Period, read  # noqa: PLC0415

    period = _period(args, command)
    zone = _zone(getattr(args, "timezone", None), command)
    config = load_config(_config_path(args)).config
    state = _open_journal_dir(args)
    stats = journal.ReadStats()
    try:
        arranged = read(state, Period(*period), config, zone, stats)
    except sqlite3.Error as exc:
        raise _journal_error(state, exc) from None
    _report_skipped(stats, err)
    return config, arranged, zone or config.vantage.zone(), period


def _check_scope(args: argparse.Namespace, config: Any) -> None:
    """``--scope`` must name something measured here: a target, group or kind (config or journal) or the
    vantage; a typo is exit 2 with the nearest name, not an empty list that reads as "no incidents"."""
    from reachwatch import journal  # noqa: PLC0415 - see the module docstring

    targets = config.all_targets()
    known = {config.vantage.name} | {t.name for t in targets} | {t.group for t in targets}
    known |= {t.kind for t in targets}
    state = _open_journal_dir(args)
    try:
        known |= set(journal.known_targets(state))
    except sqlite3.Error as exc:
        raise _journal_error(state, exc) from None
    if args.scope not in known:
        where, what = "the config or the journal", "target, group, kind or vantage"
        raise UsageError(_unknown_target("incidents", args.scope, known, where, what))


def cmd_incidents(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from reachwatch import incident_text  # noqa: PLC0415 - see the module docstring
    from reachwatch.incident_store import is_private_in  # noqa: PLC0415
    from reachwatch.incident_view import Filters, find, incidents_document  # noqa: PLC0415
    from reachwatch.incidents import is_technique  # noqa: PLC0415

    if args.action == "show" and not args.id:
        raise UsageError("incidents show: which incident? (reachwatch incidents show ID)")
    if args.action == "list" and args.id:
        raise UsageError(f"incidents: unexpected {args.id!r} (to see one: reachwatch incidents show ID)")
    if args.technique is not None and not is_technique(args.technique):
        raise UsageError(f"incidents: unknown technique {args.technique!r}")
    config, arranged, zone, period = _incidents(args, err, "incidents")
    private = is_private_in(config)
    if args.action == "show":
        found = find(arranged, args.id, zone, private)
        if found is None:
            raise UsageError(
                f"incidents show: no incident or pattern {args.id!r} between --since and --until"
            )
        if args.json:
            out.write(json.dumps(found, indent=2, sort_keys=True) + "\n")
        else:
            out.write("\n".join(incident_text.details(found)) + "\n")
        return EXIT_OK
    if args.scope is not None:
        _check_scope(args, config)
    filters = Filters(scope=args.scope, technique=args.technique, status=args.status)
    doc = incidents_document(
        arranged,
        vantage=config.vantage.name,
        zone=zone,
        is_private=private,
        filters=filters,
        period=period,
        generated_at=time.time(),
    )
    if args.json:
        out.write(json.dumps(doc, indent=2, sort_keys=True) + "\n")
    else:
        out.write("\n".join(incident_text.listing(doc)) + "\n")
    return EXIT_OK


def cmd_canary(args: argparse.Namespace, out: TextIO) -> int:
    from reachwatch import canaryd  # noqa: PLC0415 - see the module docstring
    from reachwatch.app import run_async  # noqa: PLC0415
    from reachwatch.config.load import load_full_config  # noqa: PLC0415

    path = _config_path(args)
    if args.check:
        loaded = load_full_config(path)
        section = canaryd.canary_section(loaded)
        canaryd.key_for(section, loaded)
        ports = f"{len(section.tcp_ports)} TCP, {len(section.udp_ports)} UDP ports"
        out.write(f"{loaded.source}: canary OK ({ports})\n")
        return EXIT_OK
    return int(run_async(canaryd.run(path)))


def _export_labels(args: argparse.Namespace) -> dict[str, str]:
    """The vantage identity of ``--config`` and the ``--label`` pairs (see ``journal.identity_labels``)."""
    from reachwatch.config.load import load_config  # noqa: PLC0415 - see the module docstring
    from reachwatch.journal import identity_labels  # noqa: PLC0415

    extra: dict[str, str] = {}
    for item in args.label:
        key, sep, value = item.partition("=")
        if not sep:
            raise UsageError(f"export: --label {item!r} is not K=V")
        extra[key] = value
    v = load_config(_config_path(args)).config.vantage
    vantage = {"vantage": v.name, "country": v.country, "asn": v.asn, "isp": v.isp, "city": v.city}
    try:
        return identity_labels(vantage, extra)
    except ValueError as exc:
        raise UsageError(f"export: --label: {exc}") from None


def cmd_report(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from reachwatch import journal, report_plot  # noqa: PLC0415 - see the module docstring
    from reachwatch import logging as rwlog  # noqa: PLC0415
    from reachwatch import report as reports  # noqa: PLC0415
    from reachwatch.config.load import load_config  # noqa: PLC0415

    since, until = _period(args, "report")
    zone = _zone(args.timezone, "report")
    if args.max_raw_rows < 0:
        raise UsageError("report: --max-raw-rows must be 0 or more")
    if args.format == "html" and not report_plot.available():
        raise UsageError(
            "report: --format html draws its timelines with matplotlib, which is not installed: pip install"
            " 'reachwatch[report]' or apt install python3-matplotlib (md and json work without it)"
        )
    loaded = load_config(_config_path(args))
    state = _open_journal_dir(args)
    output = Path(args.output)
    try:
        conn = journal.open_reader(state)
        try:
            built = reports.build(
                conn, loaded.config, since, until, zone=zone, name=output.name, max_rows=args.max_raw_rows
            )
        finally:
            conn.close()
    except sqlite3.Error as exc:
        raise _journal_error(state, exc) from None
    # private targets carry no facts here already; the log redaction also covers every other string
    rwlog.REDACTOR.update(rwlog.sensitive_values(loaded))
    built.doc = rwlog.REDACTOR.redact(built.doc)
    built.attachment.lines = [rwlog.REDACTOR.redact(line) for line in built.attachment.lines]
    built.doc["attachment"] = built.attachment.describe()
    files = {output: _render_report(built, args.format)}
    if args.format != "html":  # the html report embeds the raw data
        files[output.with_name(built.attachment.name)] = built.attachment.text
    for path, text in files.items():
        try:
            path.write_text(text, encoding="utf-8")
        except OSError as exc:
            raise UsageError(f"report: cannot write {path}: {exc.strerror or exc}") from None
    skipped = built.doc["journal"]["rows_skipped"]
    if skipped:
        err.write(f"reachwatch: skipped {skipped} journal rows this version cannot read\n")
    s = built.doc["summary"]
    out.write(
        f"wrote {output} ({s['incidents']} incidents, {s['patterns']} patterns"
        f"{', raw data in ' + built.attachment.name if args.format != 'html' else ''})\n"
    )
    return EXIT_OK


def _render_report(built: Any, fmt: str) -> str:
    if fmt == "json":
        return json.dumps(built.doc, indent=2, sort_keys=True) + "\n"
    if fmt == "md":
        from reachwatch import report_md  # noqa: PLC0415 - see the module docstring

        return str(report_md.render(built))
    from zoneinfo import ZoneInfo  # noqa: PLC0415

    from reachwatch import report_html, report_plot  # noqa: PLC0415

    zone = ZoneInfo(built.doc["timezone"])
    period = (built.doc["period"]["since"], built.doc["period"]["until"])

    def picture(title: str, item: dict[str, Any]) -> str:
        if "recurring" in item:
            rows = report_plot.pattern_rows(item["recurring"], item["occurrences"])
        else:
            rows = report_plot.spans_of(item)
        if not rows:
            return ""
        svg = report_plot.timeline_svg(title, rows, zone, period)
        return f"<figure aria-label='timeline of {html_escape(title)}'>{svg}</figure>"

    return str(report_html.render(built, picture))


def _ask(prompt: str, err: TextIO) -> str:
    err.write(prompt)
    err.flush()
    line = sys.stdin.readline()
    if not line:
        raise UsageError("init: no answer (stdin closed); give the values as flags")
    return line.strip()


def cmd_init(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from reachwatch.starter import Identity, countries, render  # noqa: PLC0415 - see the module docstring

    interactive = sys.stdin.isatty()
    known = ", ".join(sorted(countries()))
    country = args.country
    if country is None and interactive:
        country = _ask(f"Country of this vantage (ISO code; starter sets for {known}): ", err)
    if not country:
        raise UsageError("init: --country is required (the ISO code of the vantage's country, e.g. KZ)")
    name = args.name
    if name is None and interactive:
        name = _ask("A name for this vantage (published; e.g. almaty-home-1): ", err)
    if not name:
        raise UsageError("init: --name is required (this vantage's name; no sample name is filled in)")
    values: dict[str, str] = {}
    for key, question in (
        ("asn", "AS number of your Internet access (e.g. AS9198; empty to leave out): "),
        ("isp", "Your Internet provider, coarse (empty to leave out): "),
        ("city", "City (not an address; empty to leave out): "),
    ):
        given = getattr(args, key)
        values[key] = given if given is not None else (_ask(question, err) if interactive else "")
    identity = Identity(name=name, country=country.strip().upper(), timezone=args.timezone, **values)
    domestic = [h for h in args.domestic.split(",") if h.strip()] if args.domestic else None
    text = render(identity, domestic, path=args.output or "config.yaml")
    if args.output is None:
        out.write(text)
        return EXIT_OK
    _write_private(Path(args.output), text, force=args.force)
    err.write(f"wrote {args.output}; next: reachwatch validate {args.output}\n")
    return EXIT_OK


def _write_private(path: Path, text: str, *, force: bool) -> None:
    """A new 0600 file (a config soon holds private bridges); an existing one only with --force."""
    import os  # noqa: PLC0415

    flags = os.O_WRONLY | os.O_CREAT | (os.O_TRUNC if force else os.O_EXCL)
    try:
        fd = os.open(path, flags | getattr(os, "O_NOFOLLOW", 0), 0o600)
    except FileExistsError:
        raise UsageError(f"init: {path} exists (keep it, or give --force to replace it)") from None
    except OSError as exc:
        raise UsageError(f"init: cannot write {path}: {exc.strerror or exc}") from None
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(text)
    os.chmod(path, 0o600)


def cmd_import(args: argparse.Namespace, out: TextIO) -> int:
    from reachwatch.importers import import_files  # noqa: PLC0415 - only this command needs them

    out.write(import_files(args.files, output_dir=args.output_dir, canary=args.canary))
    return EXIT_OK


def cmd_keygen(args: argparse.Namespace, out: TextIO) -> int:
    """Write an Ed25519 key pair: the private key 0600 (never overwritten), the public key beside it."""
    import os  # noqa: PLC0415
    import re  # noqa: PLC0415

    from reachwatch.refproto import generate_key  # noqa: PLC0415 - only this command signs

    if not re.fullmatch(r"[A-Za-z0-9_.-]{1,64}", args.name) or args.name.startswith("."):
        raise UsageError(f"keygen --name: {args.name!r} is not a plain file name stem")
    directory = Path(args.output_dir)
    private_path, public_path = directory / f"{args.name}.key", directory / f"{args.name}.pub"
    pem, public = generate_key()
    try:
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        # O_EXCL: an existing key is never replaced (the vantages pinned its public half)
        fd = os.open(private_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    except FileExistsError:
        raise UsageError(f"keygen: {private_path} exists; keys are never overwritten") from None
    except OSError as exc:
        raise UsageError(f"keygen: cannot write {private_path}: {exc.strerror or exc}") from None
    with os.fdopen(fd, "wb") as fh:
        fh.write(pem)
    public_path.write_text(public + "\n", encoding="ascii")
    out.write(
        f"private key: {private_path} (mode 0600): on the reference, web.reference_key_file: {private_path}\n"
        f"public key:  {public}\n"
        f"on each vantage that reads this reference, pin it in reference_vantages: public_key: {public}\n"
    )
    return EXIT_OK


def main(argv: Sequence[str] | None = None, out: TextIO | None = None, err: TextIO | None = None) -> int:
    out = out or sys.stdout
    err = err or sys.stderr
    args_list = list(sys.argv[1:] if argv is None else argv)
    if not args_list or (args_list[0].startswith("-") and args_list[0] not in ("-h", "--help", "--version")):
        args_list.insert(0, "run")  # exporter habit: `reachwatch --config x.yaml` runs the daemon
    try:
        args = build_parser().parse_args(args_list)
        from reachwatch import logging as rwlog  # noqa: PLC0415 - not for --help (module docstring)

        # one-shot commands keep stderr quiet by default; the daemon re-configures from its config
        serving = args.command in ("run", "canary") and not args.check
        default_level = "info" if serving else "warning"
        rwlog.configure(args.log_level or default_level, args.log_format or "console", err)
        commands = {
            "run": lambda: cmd_run(args, out),
            "check": lambda: cmd_check(args, out, err),
            "validate": lambda: cmd_validate(args, out),
            "history": lambda: cmd_history(args, out, err),
            "export": lambda: cmd_export(args, out, err),
            "incidents": lambda: cmd_incidents(args, out, err),
            "report": lambda: cmd_report(args, out, err),
            "import": lambda: cmd_import(args, out),
            "init": lambda: cmd_init(args, out, err),
            "keygen": lambda: cmd_keygen(args, out),
            "canary": lambda: cmd_canary(args, out),
        }
        return commands[args.command]()
    except ReachwatchError as exc:
        err.write(f"reachwatch: {exc}\n".replace("\n", " ").rstrip() + "\n")
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
