"""``reachwatch report``: a document to publish, from a journal like Almaty's in January 2022
(``kz_journal.py``), in JSON (checked against docs/report.schema.json), Markdown and HTML (opened in
headless Chromium).

Proves: every incident comes with its start/end windows, evidence and the reference observation
relied on; the evening blocks are one recurring pattern with a local schedule; the vantage's identity is
the config's and no address appears; the private bridge is named only, in the document and in the raw
data; the attachment is what its hash says; a hostile string (a censor's block-page title) is text, not
markup; the HTML is self-contained and renders in a real browser; a missing matplotlib and a bad
output path are one line, exit 2.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import io
import json
import re
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from PIL import Image  # matplotlib's own dependency (a test dependency, like jsonschema)

from reachwatch import report_html, report_plot
from reachwatch.cli import main
from reachwatch.config.load import parse_config
from reachwatch.journal import open_reader
from reachwatch.report import build
from tests import chromium as chromium_run
from tests.core import kz_journal

SCHEMA = Path(__file__).resolve().parents[2] / "docs" / "report.schema.json"
SINCE, UNTIL = "2022-01-02T00:00:00+06:00", "2022-01-06T00:00:00+06:00"
CHROMIUM_FLAGS = chromium_run.FLAGS


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    state = tmp_path_factory.mktemp("kz")
    kz_journal.write(state)
    return state, kz_journal.config_file(state)


def _report(lab: tuple[Path, Path], fmt: str, output: Path, *extra: str) -> tuple[int, str, str]:
    state, cfg = lab
    out, err = io.StringIO(), io.StringIO()
    argv = ["report", "--state-dir", str(state), "--config", str(cfg), "--since", SINCE, "--until", UNTIL]
    code = main([*argv, "--format", fmt, "--output", str(output), *extra], out, err)
    return code, out.getvalue(), err.getvalue()


@pytest.fixture(scope="module")
def json_report(
    lab: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory
) -> tuple[dict[str, Any], Path]:
    out = tmp_path_factory.mktemp("json") / "kz.json"
    code, _, err = _report(lab, "json", out)
    assert (code, err) == (0, "")
    return json.loads(out.read_text()), out


def test_the_json_report_validates_against_the_schema_in_docs(
    json_report: tuple[dict[str, Any], Path],
) -> None:
    doc, _ = json_report
    jsonschema.validate(doc, json.loads(SCHEMA.read_text()), format_checker=jsonschema.FormatChecker())


def test_each_incident_is_there_with_its_windows_and_evidence(
    json_report: tuple[dict[str, Any], Path],
) -> None:
    doc, _ = json_report
    by_scope = {(i["scope_type"], i["scope"]): i for i in doc["incidents"]}
    bank = by_scope[("target", "bank")]
    assert bank["start"]["local"] == "2022-01-03 10:00:20 +06" and bank["start"]["uncertainty_s"] == 600
    assert bank["end"]["local"] == "2022-01-03 16:00:20 +06"
    assert bank["evidence"][0]["examples"][0]["facts"]["tls_issuer"] == kz_journal.KZ_ISSUER
    cut = by_scope[("target", "vpn-cut")]
    (change,) = [c for c in cut["verdict_changes"] if c["verdict"] == "blocked"]
    assert change["reference"]["reference"] == "abroad" and change["reference"]["success"] is True
    assert change["compared"]["reference_bytes_moved"] == 65536
    shutdown = by_scope[("vantage", "kz-almaty-1")]
    assert shutdown["verdicts"] == ["international_shutdown", "offline"]
    assert (shutdown["start"]["local"], shutdown["end"]["local"]) == (
        "2022-01-05 17:00:00 +06",
        "2022-01-05 20:00:00 +06",
    )
    assert by_scope[("target", "news-dns")]["status"] == "open"
    (pattern,) = doc["patterns"]
    assert (pattern["scope"], pattern["schedule"]["start_local"], pattern["schedule"]["end_local"]) == (
        "social",
        "19:00",
        "23:00",
    )
    assert doc["vantage"] == {
        "name": "kz-almaty-1",
        "country": "KZ",
        "asn": "AS9198",
        "isp": "Kazakhtelecom",
        "city": "Almaty",
    }
    assert len(doc["method"]) == 2 and "2 of its last 3 attempts" in doc["method"][1]


def test_the_private_bridge_is_named_only_and_the_attachment_is_what_its_hash_says(
    json_report: tuple[dict[str, Any], Path],
) -> None:
    doc, out = json_report
    raw = out.with_name(doc["attachment"]["name"]).read_text()
    assert hashlib.sha256(raw.encode()).hexdigest() == doc["attachment"]["sha256"]
    assert len(raw.splitlines()) == doc["attachment"]["rows"] > 0
    bridge = next(i for i in doc["incidents"] if i["scope"] == "home-bridge")
    assert bridge["private"] is True
    rows = [json.loads(line) for line in raw.splitlines()]
    assert any(r.get("target") == "home-bridge" for r in rows)
    everything = json.dumps(doc) + raw
    for secret in ("192.0.2.77", "0123456789ABCDEF0123456789ABCDEF01234567"):
        assert secret not in everything
    assert {r["record"] for r in rows} == {"attempt", "vantage_change", "verdict_change"}


def test_markdown_needs_no_matplotlib_and_escapes_table_cells(
    lab: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("reachwatch.report_plot.available", lambda: False)
    code, _, err = _report(lab, "html", tmp_path / "r.html")
    assert code == 2 and "pip install 'reachwatch[report]'" in err and err.count("\n") == 1
    code, out, _ = _report(lab, "md", tmp_path / "r.md")
    assert code == 0 and "raw data in r.md.jsonl" in out
    text = (tmp_path / "r.md").read_text()
    assert "| group social (2 targets) | blocked: TLS interference |" in text
    assert "## Recurring patterns" in text and "19:00-23:00 Asia/Almaty" in text


def test_the_html_reads_as_prose_for_a_journalist(lab: tuple[Path, Path], tmp_path: Path) -> None:
    code, _, err = _report(lab, "html", tmp_path / "r.html")
    assert (code, err) == (0, "")
    html = (tmp_path / "r.html").read_text()
    assert "(s)" not in html  # "8 incidents", "1 shutdown", never "incident(s)"
    assert "<b>8 incidents</b> in the period: <b>1 shutdown</b>" in html
    assert "DNS tampering" in html and "TLS interception" in html and "tls interference" not in html
    assert "Window: how precisely the start is known" in html  # the summary's columns are explained
    # no block is drawn in green, the colour a reader takes for "fine"
    for technique, colour in report_plot.COLOURS.items():
        red, green, blue = (int(colour[i : i + 2], 16) for i in (1, 3, 5))
        assert not (green > red and green > blue), technique


def test_an_unwritable_output_is_one_line(lab: tuple[Path, Path], tmp_path: Path) -> None:
    code, _, err = _report(lab, "json", tmp_path / "no-such-dir" / "r.json")
    assert code == 2 and "cannot write" in err and err.count("\n") == 1


def test_a_censors_text_is_escaped_in_html(lab: tuple[Path, Path]) -> None:
    state, cfg = lab
    config = parse_config(cfg.read_text(), "kz.yaml", cfg.parent).config
    conn = open_reader(state)
    try:
        report = build(conn, config, kz_journal.START, kz_journal.END, now=0)
    finally:
        conn.close()
    hostile = "<script>alert(1)</script><img src=x onerror=alert(2)>"
    report.doc["incidents"][0]["evidence"][0]["examples"][0]["facts"]["http_title"] = hostile
    report.doc["title"] = hostile
    html = report_html.render(report)
    assert hostile not in html and "&lt;script&gt;" in html
    assert "<script" not in html  # the report itself runs no script


@pytest.mark.slow
def test_the_html_report_renders_in_chromium_with_its_pictures_and_data(
    lab: tuple[Path, Path], tmp_path: Path
) -> None:
    chromium = chromium_run.binary()
    page = tmp_path / "kz.html"
    code, _, err = _report(lab, "html", page)
    assert (code, err) == (0, "")
    html = page.read_text()
    # self-contained: nothing fetched from anywhere
    assert not re.search(r"""(?:src|href)=['"](?:https?:|//)""", html)
    assert html.count("<svg") >= 6  # one timeline per scope: pattern, 4 single targets, the shutdown
    payload = re.search(r"data:application/gzip;base64,([A-Za-z0-9+/=]+)", html)
    assert payload is not None
    raw = gzip.decompress(base64.b64decode(payload.group(1))).decode()
    assert "home-bridge" in raw and "192.0.2.77" not in raw
    with tempfile.TemporaryDirectory() as profile:
        dom = subprocess.run(
            [chromium, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "--dump-dom", page.as_uri()],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    assert dom.returncode == 0, dom.stderr[-2000:]
    assert "Internet incidents seen from kz-almaty-1" in dom.stdout
    assert "Recurring: group social, daily 19:00\u201323:00" in dom.stdout
    shot = tmp_path / "kz.png"
    with tempfile.TemporaryDirectory() as profile:
        run = subprocess.run(
            [
                chromium,
                *CHROMIUM_FLAGS,
                f"--user-data-dir={profile}",
                "--window-size=1280,2400",
                f"--screenshot={shot}",
                page.as_uri(),
            ],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    assert run.returncode == 0 and shot.stat().st_size > 50_000, run.stderr[-2000:]
    with Image.open(shot) as image:
        colours = image.convert("RGB").resize((64, 120)).getcolors(64 * 120)
    assert colours is not None and len(colours) > 20  # text, badges and pictures, not a blank page
