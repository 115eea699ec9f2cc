"""The status page at `/`: what works from here, in English, Russian and Kazakh, on a phone.

Served by the real WebServer over a real StateStore (every verdict, technique and a hint), opened in
headless Chromium (Debian `chromium`): it renders, logs nothing to the console (a Content-Security-Policy
violation would), has a language attribute and an outline of headings, and keeps its colours' contrast.
The screenshots go to RW_SCREENSHOT_DIR when set (else the test's tmp dir) and their paths are printed:
they are for a person to look at. The catalogs are checked complete and compiled.
"""

from __future__ import annotations

import asyncio
import base64
import itertools
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Mapping
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import aiohttp
import bcrypt
import pytest

from reachwatch import i18n, statuspage, statuspage_html
from reachwatch.config.load import parse_config
from reachwatch.config.webconfig import WebSecurity
from reachwatch.failures import Failure, Stage, Technique, VantageState, Verdict
from reachwatch.metrics import DaemonStatus, build_registry
from reachwatch.model import ProbeResult
from reachwatch.state import StateStore
from reachwatch.web import WebServer, status_document
from tests import chromium as chromium_run

REPO = Path(__file__).resolve().parents[2]
CHROMIUM_FLAGS = [*chromium_run.FLAGS, "--enable-logging=stderr", "--v=0"]  # console messages on stderr
NOW = time.time()

CONFIG = """
vantage: {name: almaty-home-1, country: KZ, timezone: Asia/Almaty}
controls:
  domestic: [{name: egov-kz, kind: tls, host: 127.0.0.1, port: 1}]
  international: [{name: wikipedia, kind: tls, host: 127.0.0.1, port: 2}]
targets:
  - {name: tb-obfs4-1, kind: tor_bridge, private: false, bridge: "obfs4 192.0.2.1:443 %(fp)sA %(cert)s"}
  - {name: tb-obfs4-2, kind: tor_bridge, private: false, bridge: "obfs4 192.0.2.2:443 %(fp)sB %(cert)s"}
  - {name: tb-obfs4-3, kind: tor_bridge, private: false, bridge: "obfs4 192.0.2.4:443 %(fp)sD %(cert)s"}
  - {name: friend-webtunnel, kind: tor_bridge, bridge: "webtunnel 192.0.2.3:443 %(fp)sC url=https://w.example/x"}
  - {name: tb-bootstrap-meek, kind: tor_bootstrap, private: false,
     bridges: ["meek_lite 192.0.2.20:80 url=https://cdn.example/ front=front.example"]}
  - {name: tor-defaults, kind: tor_bootstrap, private: false}
  - {name: home-openvpn, kind: openvpn, host: 192.0.2.10, port: 1194}
  - {name: my-socks, kind: socks5, host: 192.0.2.11, port: 1080, private: true}
  - {name: pinterest-com, kind: tls, host: 127.0.0.1, port: 3}
  - {name: azattyq-throughput, kind: tcp, host: 127.0.0.1, port: 4}
  - {name: torproject-www, kind: tls, host: 127.0.0.1, port: 5}
  - {name: not-yet-probed, kind: tcp, host: 127.0.0.1, port: 6}
""".replace("%(fp)s", "A" * 39).replace("%(cert)s", "cert=" + "A" * 70 + " iat-mode=0")
# (target, verdict, technique, facts)
STATES: list[tuple[str, Verdict, Technique | None, dict[str, Any]]] = [
    ("egov-kz", Verdict.REACHABLE, None, {}),
    ("wikipedia", Verdict.UNKNOWN, None, {}),  # controls are not judged: the page shows their last try
    ("tb-obfs4-1", Verdict.REACHABLE, None, {}),
    ("tb-obfs4-2", Verdict.BLOCKED, Technique.TCP_BLACKHOLE, {}),
    (
        "friend-webtunnel",
        Verdict.UNREACHABLE,
        None,
        {"hint": "webtunnel needs <b>lyrebird</b>: install it, set tor.transports"},
    ),
    ("tb-bootstrap-meek", Verdict.REACHABLE, None, {}),
    ("home-openvpn", Verdict.BLOCKED, Technique.PROTOCOL_BLOCKING, {}),
    ("my-socks", Verdict.BLOCKED, Technique.FLOW_CUT, {}),
    ("pinterest-com", Verdict.BLOCKED, Technique.TLS_INTERCEPTION, {"tls_issuer": "CN=ISCA"}),
    ("azattyq-throughput", Verdict.BLOCKED, Technique.THROTTLED, {}),
    ("torproject-www", Verdict.REACHABLE, None, {}),
]
# targets with a result that fails, whatever the verdict (controls show their failure and stage)
FAILED = {"wikipedia": (Failure.DNS_NXDOMAIN_ERROR, Stage.RESOLVE)}
NEVER_PROBED = ("tb-obfs4-3", "tor-defaults", "not-yet-probed")
INCIDENTS = {
    "incidents": [
        {
            "status": "open",
            "scope_type": "target",
            "scope": "pinterest-com",
            "technique": "tls_interception",
            "start": {"at": NOW - 7200},
        },
        {"status": "closed", "scope_type": "vantage", "scope": "almaty-home-1", "technique": "offline"},
    ],
    "patterns": [],
    "counts": {"open": 1, "closed": 1, "patterns": 0},
}


class Backend:
    """A daemon's web side over a real StateStore in every state the page distinguishes."""

    def __init__(self, language: str = "auto") -> None:
        loaded = parse_config(CONFIG, "t.yaml", Path.cwd())
        self.config = loaded.config
        self.language = language
        self.store = StateStore()
        for t in loaded.config.all_targets():
            self.store.ensure(t, loaded.config.control_role(t.name))
        for name, verdict, technique, facts in STATES:
            state = self.store.targets[name]
            ok = verdict is Verdict.REACHABLE
            failure, stage = FAILED.get(name, (Failure.GENERIC_TIMEOUT_ERROR, Stage.CONNECT))
            state.record(
                ProbeResult(
                    target=name,
                    kind=state.target.kind,
                    started_at=NOW - 60,
                    duration_s=1.0,
                    success=ok,
                    failure=None if ok else failure,
                    stage=None if ok else stage,
                    facts=facts,
                )
            )
            state.verdict, state.technique, state.verdict_since = verdict, technique, NOW - 3 * 3600
        self.store.set_vantage(VantageState.ONLINE)
        self.registry = build_registry(self.store, DaemonStatus(config=loaded.config))

    def ready(self) -> bool:
        return True

    async def reload(self) -> tuple[bool, str]:
        return True, "ok"

    def status(self) -> dict[str, Any]:
        doc = status_document(self.store, self.config.vantage.name)
        doc["vantage"]["timezone"] = self.config.vantage.timezone
        return doc

    async def incidents_document(self, query: Mapping[str, str]) -> dict[str, Any]:
        return INCIDENTS

    async def observations(self, nonce: str | None) -> bytes:
        return b"{}"


@pytest.fixture
async def server() -> AsyncIterator[WebServer]:
    web = WebServer(Backend(), "127.0.0.1:0", WebSecurity())
    await web.start()
    yield web
    await web.stop()


# --- the data and the languages ---------------------------------------------------------------------


def test_targets_fall_into_categories_with_tor_by_the_configured_transport_and_controls_apart() -> None:
    # no result carries a `transport` fact and some bridges were never probed: the config says it
    page = statuspage.build(Backend().status(), INCIDENTS)
    by_key = {c.key: c for c in page.categories}
    assert list(by_key) == ["tor", "vpn", "proxy", "sites"]
    tor = by_key["tor"].groups
    assert {k: (g.works, g.total, g.unknown) for k, g in tor.items()} == {
        ("tor_bridge", "obfs4"): (1, 3, 1),
        ("tor_bridge", "webtunnel"): (0, 1, 0),  # private: grouped, shown by name only
        ("tor_bootstrap", "meek_lite"): (1, 1, 0),  # shown as "meek", as Tor Browser says
        ("tor_bootstrap", "direct"): (0, 1, 1),
    }
    assert [i.name for i in page.controls] == ["egov-kz", "wikipedia"]
    assert [i["scope"] for i in page.incidents or []] == ["pinterest-com"]  # open ones only


def test_the_status_document_carries_each_bridges_transport_from_its_config() -> None:
    targets = {t["name"]: t for t in Backend().status()["targets"]}
    assert {n: targets[n]["transport"] for n in ("tb-obfs4-3", "friend-webtunnel", "tb-bootstrap-meek")} == {
        "tb-obfs4-3": "obfs4",
        "friend-webtunnel": "webtunnel",
        "tb-bootstrap-meek": "meek_lite",
    }
    assert targets["tor-defaults"]["transport"] == "direct" and targets["home-openvpn"]["transport"] is None
    # a document without it (an older daemon) still groups by the last result's fact
    old = {
        "name": "b",
        "kind": "tor_bridge",
        "verdict": "reachable",
        "last": {"facts": {"transport": "obfs4"}},
    }
    assert statuspage.build({"targets": [old]}, None).categories[0].groups.keys() == {("tor_bridge", "obfs4")}


def test_targets_without_a_verdict_are_folded_away_and_counted() -> None:
    html = statuspage_html.render(statuspage.build(Backend().status(), INCIDENTS), "en", NOW)
    known = re.sub(r"<details>.*?</details>", "", html)
    folded = "".join(re.findall(r"<details>.*?</details>", html))
    assert "tb-obfs4-1" in known and "tb-obfs4-2" in known  # what is known is in the open
    summary = re.findall(r"<summary[^>]*>([^<]*)</summary>", html)
    assert summary == ["1 not known yet", "1 not known yet", "1 not known yet"]  # obfs4, direct, sites
    for name in NEVER_PROBED:
        assert name not in known and name in folded
    # a group with nothing known does not say "working: 0 of 1"; a category counts both
    assert "<h3>Connecting to Tor: no bridge</h3>" in html
    assert "<h3>Connecting to Tor: meek <span" in html  # Tor Browser's name for meek_lite
    assert '<h3>Bridges: obfs4 <span class="muted">· working: 1 of 3</span></h3>' in html
    assert 'Tor <span class="muted">· working: 2 of 6 · 2 not known yet</span></h2>' in html
    assert "not tested yet" in folded


def test_a_fresh_start_shows_counts_not_fifty_identical_cards() -> None:
    items = [
        {"name": f"t{i}", "kind": "tor_relay", "role": "target", "verdict": "unknown"} for i in range(50)
    ]
    html = statuspage_html.render(statuspage.build({"vantage": {}, "targets": items}, None), "en", NOW)
    assert html.count("<details>") == 1 and "50 not known yet" in html
    assert html.count("<li class=") == statuspage.MAX_ITEMS and "and 25 more" in html
    assert "working: 0 of 50" not in html


def test_controls_show_their_last_try_not_a_verdict() -> None:
    page = statuspage.build(Backend().status(), INCIDENTS)
    html = statuspage_html.render(page, "en", NOW)
    controls = html[html.index('id="c-controls"') :]
    egov, wikipedia = re.findall(r"<li class=\"(\w+)\">(.*?)</li>", controls)
    assert egov[0] == "reachable" and "in the country" in egov[1] and "answers" in egov[1]
    assert wikipedia[0] == "unreachable" and "abroad" in wikipedia[1]
    assert "the name lookup failed (dns_nxdomain_error)" in wikipedia[1] and "not known" not in wikipedia[1]
    ru = statuspage_html.render(page, "ru", NOW)
    assert "не удалось узнать адрес по имени (dns_nxdomain_error)" in ru


def test_a_long_list_shows_its_failing_members_first_and_counts_the_rest() -> None:
    items = [{"name": f"relay-{i:04d}", "kind": "tor_relay", "role": "target", "verdict": "reachable"}
             for i in range(1000)]  # fmt: skip
    items[500]["verdict"] = "blocked"
    page = statuspage.build({"vantage": {}, "targets": items}, None)
    (group,) = page.categories[0].groups.values()
    shown = group.shown()
    assert len(shown) == statuspage.MAX_ITEMS and shown[0].name == "relay-0500"
    html = statuspage_html.render(page, "en", NOW)
    assert "working: 999 of 1000" in html and "and 975 more" in html


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("kk-KZ,ru;q=0.8,en;q=0.5", "kk"),
        ("ru-RU,ru;q=0.9,en-US;q=0.8,en;q=0.7", "ru"),
        ("de-DE,en;q=0.3,ru;q=0.5", "ru"),
        ("fr-FR", None),
        ("ru;q=0,kk;q=0", None),
        ("*", None),
        ("", None),
    ],
)
def test_accept_language_picks_the_best_language_we_have(header: str, expected: str | None) -> None:
    assert i18n.from_accept_language(header) == expected


def test_the_query_beats_the_setting_which_beats_the_browser() -> None:
    assert i18n.choose("kk", "ru", "en") == "kk"
    assert i18n.choose(None, "ru", "kk") == "ru"
    assert i18n.choose("xx", "auto", "kk,ru;q=0.5") == "kk"
    assert i18n.choose(None, "auto", None) == "en"


def test_catalogs_are_complete_and_compiled() -> None:
    assert shutil.which("msgfmt"), "gettext (Debian) is required: tests/debian-packages.txt"
    proc = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "compile_catalogs.py"), "--check"],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr


def _luminance(hex_colour: str) -> float:
    channels = [int(hex_colour[i : i + 2], 16) / 255 for i in (1, 3, 5)]
    linear = [c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
    return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]


def test_every_colour_pair_has_a_contrast_of_at_least_4_5() -> None:
    for name, (fg, bg) in statuspage_html.PALETTE.items():
        light, dark = sorted((_luminance(fg), _luminance(bg)), reverse=True)
        assert (light + 0.05) / (dark + 0.05) >= 4.5, name
    # the link and muted colours also sit on the state backgrounds
    for fg_name in ("link", "muted"):
        fg = statuspage_html.PALETTE[fg_name][0]
        for state in ("reachable", "blocked", "unreachable", "unknown"):
            bg = statuspage_html.PALETTE[state][1]
            light, dark = sorted((_luminance(fg), _luminance(bg)), reverse=True)
            assert (light + 0.05) / (dark + 0.05) >= 4.5, (fg_name, state)


# --- served ------------------------------------------------------------------------------------------


async def test_served_in_the_browsers_language_escaped_and_locked_down(server: WebServer) -> None:
    url = f"http://127.0.0.1:{server.port}/"
    async with aiohttp.ClientSession() as session:
        async with session.get(url, headers={"Accept-Language": "ru-RU,ru;q=0.9"}) as resp:
            html = await resp.text()
            headers = resp.headers
        async with session.get(url + "?lang=kk", headers={"Accept-Language": "ru"}) as resp:
            kk = await resp.text()
    assert headers["Content-Language"] == "ru" and headers["Content-Type"].startswith("text/html")
    assert "default-src 'none'" in headers["Content-Security-Policy"]
    assert headers["X-Content-Type-Options"] == "nosniff" and headers["Cache-Control"] == "no-store"
    assert '<html lang="ru">' in html and "Что работает отсюда" in html
    assert "Точка измерения: almaty-home-1" in html
    assert '<html lang="kk">' in kk and "Осы жерден не жұмыс істейді" in kk
    # what the documents carry is text, never markup; private targets by name only
    assert "<b>" not in html and "&lt;b&gt;lyrebird&lt;/b&gt;" in html
    assert "my-socks" in html and "192.0.2.11" not in html and "1080" not in html


async def test_behind_the_same_basic_auth_as_everything_else() -> None:
    hashed = bcrypt.hashpw(b"s3cret", bcrypt.gensalt(rounds=4))
    web = WebServer(Backend(), "127.0.0.1:0", WebSecurity(users={"ops": hashed}))
    await web.start()
    try:
        url = f"http://127.0.0.1:{web.port}/"
        async with aiohttp.ClientSession() as session:
            async with session.get(url) as resp:
                assert resp.status == 401
            token = base64.b64encode(b"ops:s3cret").decode()
            async with session.get(url, headers={"Authorization": f"Basic {token}"}) as resp:
                assert resp.status == 200 and "Vantage point: almaty-home-1" in await resp.text()
    finally:
        await web.stop()


class Outline(HTMLParser):
    """Headings (level, text) and the html element's lang, from the DOM Chromium rendered."""

    def __init__(self) -> None:
        super().__init__()
        self.headings: list[list[Any]] = []
        self.lang: str | None = None
        self._in: int | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "html":
            self.lang = dict(attrs).get("lang")
        if re.fullmatch(r"h[1-6]", tag):
            self._in = int(tag[1])
            self.headings.append([self._in, ""])

    def handle_endtag(self, tag: str) -> None:
        if re.fullmatch(r"h[1-6]", tag):
            self._in = None

    def handle_data(self, data: str) -> None:
        if self._in is not None:
            self.headings[-1][1] += data


async def _chromium(*args: str) -> tuple[str, str]:
    chromium = chromium_run.binary()
    with tempfile.TemporaryDirectory() as profile:
        proc = await asyncio.create_subprocess_exec(
            chromium, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *args,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        out, err = await asyncio.wait_for(proc.communicate(), 90)
    assert proc.returncode == 0, err.decode()[-2000:]
    return out.decode(), err.decode()


@pytest.mark.slow
@pytest.mark.parametrize(
    ("lang", "title"),
    [
        ("en", "What works from here"),
        ("ru", "Что работает отсюда"),
        ("kk", "Осы жерден не жұмыс істейді"),
    ],
)
async def test_the_page_in_chromium_renders_accessibly_without_console_errors(
    server: WebServer, tmp_path: Path, lang: str, title: str
) -> None:
    url = f"http://127.0.0.1:{server.port}/?lang={lang}"
    dom, log = await _chromium("--dump-dom", url)
    console = [line for line in log.splitlines() if ":CONSOLE" in line]
    assert console == [], console  # a CSP violation (the stylesheet's hash) would be here
    outline = Outline()
    outline.feed(dom)
    assert outline.lang == lang
    levels = [level for level, _ in outline.headings]
    assert levels[0] == 1 and levels.count(1) == 1 and outline.headings[0][1] == title
    assert all(b - a <= 1 for a, b in itertools.pairwise(levels)), outline.headings  # no skipped level
    shots = Path(os.environ.get("RW_SCREENSHOT_DIR") or tmp_path)
    shots.mkdir(parents=True, exist_ok=True)
    for width, height in ((412, 3400), (1280, 2200)):  # a phone and a desktop
        shot = shots / f"status-{lang}-{width}.png"
        await _chromium(f"--window-size={width},{height}", f"--screenshot={shot}", url)
        assert shot.stat().st_size > 30_000
        print(f"screenshot: {shot}")
