"""``reachwatch export --format openmetrics`` carries the vantage identity (and ``--label k=v``), so data
recovered after a shutdown lands in the same series as the live scrape and the recording rules join it.

Proves: every exported series carries the config's vantage, country, asn, isp and city plus the given
job/instance/vantage_role; ``K=`` removes one; promtool backfills the file and its blocks hold exactly
those label sets; a label Prometheus refuses, or one the series set themselves, is one line, exit 2.
(The e2e lab, tests/observability/test_e2e.py, compares an export with the live series of the same
daemon in a real Prometheus.)
"""

from __future__ import annotations

import io
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from reachwatch.cli import main
from reachwatch.journal import Journal, JournalRow
from reachwatch.model import ProbeResult

T0 = time.time() - 2 * 3600
CONFIG = "vantage: {name: kz-almaty-1, country: KZ, asn: AS9198, isp: Kazakhtelecom, city: Almaty}\n"
LIVE = {  # what deploy/prometheus/prometheus.yml gives a live series of this vantage
    "job": "reachwatch",
    "instance": "vantage-a:10491",
    "vantage": "kz-almaty-1",
    "vantage_role": "in_country",
    "country": "KZ",
    "asn": "AS9198",
    "isp": "Kazakhtelecom",
    "city": "Almaty",
}


@pytest.fixture
def setup(tmp_path: Path) -> tuple[Path, Path]:
    state = tmp_path / "state"
    j = Journal(state, retention=1e9)
    for i in range(30):
        result = ProbeResult("site", "tcp", T0 + i * 60, 0.1, True)
        j.append(JournalRow(result, "web", "target", "reachable", None))
    j.close()
    cfg = tmp_path / "c.yaml"
    cfg.write_text(CONFIG)
    cfg.chmod(0o600)
    return state, cfg


def _export(state: Path, cfg: Path, *labels: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    argv = [
        "export",
        "--state-dir",
        str(state),
        "--config",
        str(cfg),
        "--since",
        "3h",
        "--format",
        "openmetrics",
    ]
    code = main([*argv, *(f"--label={label}" for label in labels)], out, err)
    return code, out.getvalue(), err.getvalue()


def _label_sets(text: str, name: str) -> set[tuple[tuple[str, str], ...]]:
    sets = set()
    for line in text.splitlines():
        if line.startswith(name + "{"):
            body = line[len(name) + 1 : line.index("}")]
            pairs = [p.split("=", 1) for p in body.split('",')]
            sets.add(tuple(sorted((k, v.strip('"')) for k, v in pairs)))
    return sets


def test_every_series_carries_the_vantage_identity_and_the_given_labels(setup: tuple[Path, Path]) -> None:
    state, cfg = setup
    code, text, err = _export(
        state, cfg, "job=reachwatch", "instance=vantage-a:10491", "vantage_role=in_country"
    )
    assert (code, err) == (0, "")
    expected = {**LIVE, "target": "site", "kind": "tcp", "group": "web", "role": "target"}
    assert _label_sets(text, "reachwatch_probe_success") == {tuple(sorted(expected.items()))}
    code, text, _ = _export(state, cfg, "city=", "vantage=kz-almaty-a")
    (labels,) = _label_sets(text, "reachwatch_probe_success")
    assert "city" not in dict(labels) and dict(labels)["vantage"] == "kz-almaty-a"


@pytest.mark.parametrize(
    ("label", "message"),
    [
        ("9lives=x", "'9lives' is not a label name Prometheus accepts"),
        ("__name__=x", "'__name__' is not a label name"),
        ("target=x", "label 'target' is set by every exported series itself"),
        ("job", "--label 'job' is not K=V"),
    ],
)
def test_a_label_prometheus_would_refuse_is_one_line(
    setup: tuple[Path, Path], label: str, message: str
) -> None:
    code, out, err = _export(*setup, label)
    assert code == 2 and message in err and err.count("\n") == 1 and out == ""


@pytest.mark.slow
def test_promtool_backfills_the_identity_labelled_export(setup: tuple[Path, Path], tmp_path: Path) -> None:
    promtool = shutil.which("promtool")
    assert promtool, "promtool (Debian prometheus) is required"
    state, cfg = setup
    code, text, _ = _export(
        state, cfg, "job=reachwatch", "instance=vantage-a:10491", "vantage_role=in_country"
    )
    assert code == 0
    source = tmp_path / "export.om"
    source.write_text(text)
    blocks = tmp_path / "blocks"
    run = subprocess.run(
        [promtool, "tsdb", "create-blocks-from", "openmetrics", str(source), str(blocks)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    (blocks / "wal").mkdir()
    dump = subprocess.run(
        [promtool, "tsdb", "dump", str(blocks), "--min-time=0", f"--max-time={int(time.time() * 1000)}"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert dump.returncode == 0, dump.stderr
    rows = [ln for ln in dump.stdout.splitlines() if ln.startswith('{__name__="reachwatch_probe_success"')]
    assert len(rows) == 30
    for key, value in LIVE.items():
        assert all(f'{key}="{value}"' in row for row in rows), key
