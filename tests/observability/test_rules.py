"""The shipped Prometheus and Alertmanager files, checked by the real tools.

``promtool check config`` / ``check rules`` (with the duplicate-rule lint), ``promtool test rules`` on
deploy/prometheus/tests/*.test.yml (every alert firing and not firing), ``amtool check-config`` and
``amtool config routes test`` on the cases in deploy/alertmanager/routes.test.yml. Plus the house rules
for alerts: each has ``for:``, severity, scope, category (or a query that yields it), summary and a
runbook-style description, and has a test of its own.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
import yaml

from reachwatch.probes import PROBES
from tests.observability import lab

PROM = lab.REPO / "deploy" / "prometheus"
AM = lab.REPO / "deploy" / "alertmanager"
TESTS = sorted((PROM / "tests").glob("*.test.yml"))


def run(*argv: str | Path, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(a) for a in argv], check=False, capture_output=True, text=True, cwd=cwd, timeout=120
    )


def test_promtool_accepts_the_scrape_config_and_its_rule_files() -> None:
    result = run("promtool", "check", "config", PROM / "prometheus.yml")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "2 rule files found" in result.stdout


def test_promtool_check_rules_with_lint() -> None:
    result = run("promtool", "check", "rules", "--lint=all", "--lint-fatal", *lab.RULE_FILES)
    assert result.returncode == 0, result.stdout + result.stderr


def test_promtool_unit_tests_pass() -> None:
    # one promtool per file, side by side: each evaluates on one core, and the week of history in
    # category-drop.test.yml alone takes ~16 s
    procs = {
        path.name: subprocess.Popen(
            ["promtool", "test", "rules", path.name],
            cwd=PROM / "tests",
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for path in TESTS
    }
    assert len(procs) >= 4
    for name, proc in procs.items():
        out, _ = proc.communicate(timeout=180)
        assert proc.returncode == 0, f"{name}: {out}"
        assert out.count("SUCCESS") == 1, f"{name}: {out}"


def test_every_alert_is_tested_firing_and_not_firing() -> None:
    firing: set[str] = set()
    silent: set[str] = set()
    for path in TESTS:
        for group in yaml.safe_load(path.read_text())["tests"]:
            for case in group.get("alert_rule_test", []):
                (firing if case["exp_alerts"] else silent).add(case["alertname"])
    alerts = {rule["alert"] for _, rule in lab.rules() if "alert" in rule}
    assert alerts - firing == set(), "alerts never tested firing"
    assert alerts - silent == set(), "alerts never tested silent"


def test_alerts_carry_for_severity_scope_summary_and_runbook() -> None:
    for _, rule in lab.rules():
        if "alert" not in rule:
            continue
        name = rule["alert"]
        assert "for" in rule, name
        labels = rule["labels"]
        assert labels["severity"] in {"info", "warning", "critical"}, name
        assert labels["scope"] in {"target", "vantage", "daemon"}, name
        # category is static or comes from the recording rule the expression joins
        assert "category" in labels or "category" in rule["expr"], name
        assert "{{ $labels.vantage }}" in rule["annotations"]["summary"], name
        assert "Runbook:" in rule["annotations"]["description"], name


def test_recording_rule_names_follow_level_metric_operation() -> None:
    for _, rule in lab.rules():
        if "record" in rule:
            assert re.fullmatch(r"[a-z_]+:[a-z_]+:[a-z0-9_]+", rule["record"]), rule["record"]


def test_amtool_accepts_the_alertmanager_config() -> None:
    result = run("amtool", "check-config", AM / "alertmanager.yml")
    assert result.returncode == 0, result.stdout + result.stderr


def test_inhibition_equal_labels_exist_on_both_sides() -> None:
    """Alertmanager treats a missing label as equal to a missing label: an `equal` label absent from
    both sides would let one vantage's outage mute every vantage's alerts. promtool compares the exact
    label sets, so every expected alert in the unit tests is proof of the labels the alert carries."""
    config = yaml.safe_load((AM / "alertmanager.yml").read_text())
    alerts = {rule["alert"]: rule for _, rule in lab.rules() if "alert" in rule}
    carried: dict[str, list[dict[str, str]]] = {}
    for path in TESTS:
        for group in yaml.safe_load(path.read_text())["tests"]:
            for case in group.get("alert_rule_test", []):
                for exp in case["exp_alerts"]:
                    carried.setdefault(case["alertname"], []).append(exp["exp_labels"])
    assert carried.keys() == alerts.keys()
    for inhibit in config["inhibit_rules"]:
        assert inhibit["equal"] == ["vantage"]
        for name, label_sets in carried.items():
            for labels in label_sets:
                assert labels.get("vantage"), (name, labels)
        (source,) = inhibit["source_matchers"]
        sources = re.sub(r'^alertname=~?"(.*)"$', r"\1", source).split("|")
        assert set(sources) <= alerts.keys(), sources
        assert all(alerts[s]["labels"]["scope"] == "vantage" for s in sources)


ROUTE_CASES = yaml.safe_load((AM / "routes.test.yml").read_text())["cases"]


@pytest.mark.parametrize("case", ROUTE_CASES, ids=[c["name"] for c in ROUTE_CASES])
def test_amtool_routes(case: dict[str, object]) -> None:
    labels = [f"{k}={v}" for k, v in dict(case["labels"]).items()]  # type: ignore[call-overload]
    receivers = ",".join(case["receivers"])  # type: ignore[arg-type]
    result = run(
        "amtool",
        "config",
        "routes",
        "test",
        f"--config.file={AM / 'alertmanager.yml'}",
        f"--verify.receivers={receivers}",
        *labels,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_registered_probe_kind_has_a_category(tmp_path: Path) -> None:
    """A new probe kind must land in a real category (tor_*, vpn, proxy, web), not "other": checked by
    promtool evaluating the shipped recording rule on one series per registered kind."""
    series = [
        {
            "series": f'reachwatch_target_interval_seconds{{target="{k}", kind="{k}", role="target"}}',
            "values": "60x5",
        }
        for k in sorted(PROBES)
    ]
    doc = {
        "rule_files": [str(p) for p in lab.RULE_FILES],
        "evaluation_interval": "1m",
        "tests": [
            {
                "interval": "1m",
                "input_series": series,
                "promql_expr_test": [
                    {
                        "expr": 'reachwatch:target_category:info{category="other"}',
                        "eval_time": "2m",
                        "exp_samples": [],
                    },
                    {
                        "expr": "count(reachwatch:target_category:info)",
                        "eval_time": "2m",
                        "exp_samples": [{"labels": "{}", "value": len(PROBES)}],
                    },
                ],
            }
        ],
    }
    path = tmp_path / "kinds.test.yml"
    path.write_text(yaml.safe_dump(doc))
    result = run("promtool", "test", "rules", path.name, cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
