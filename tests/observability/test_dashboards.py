"""The committed Grafana dashboards and provisioning files: generated, complete, and consistent.

Whether each query returns data is proven against a real Prometheus in ``test_e2e.py``; here the JSON
itself: up to date with ``grafana/generate.py``, every panel with a datasource, a unit and thresholds,
the variables every dashboard needs, unique ids, and provisioning files pointing where the JSON is.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.observability import lab

GRAFANA = lab.REPO / "grafana"
DASHBOARDS = sorted((GRAFANA / "dashboards").glob("*.json"))
REQUIRED = {"overview", "tor", "vpn-proxy", "interference", "patterns", "fleet"}


def load(path: Path) -> dict[str, Any]:
    return dict(json.loads(path.read_text()))


def test_committed_json_is_exactly_what_generate_py_produces() -> None:
    expected = lab.load_generator().render_all()
    committed = {p.name: p.read_text() for p in DASHBOARDS}
    assert committed.keys() == expected.keys(), "run: python grafana/generate.py"
    stale = [name for name, text in expected.items() if committed[name] != text]
    assert not stale, f"stale dashboards {stale}: run python grafana/generate.py"


def test_every_required_dashboard_exists_with_a_stable_unique_uid() -> None:
    assert {p.stem for p in DASHBOARDS} == REQUIRED
    uids = [load(p)["uid"] for p in DASHBOARDS]
    assert len(set(uids)) == len(uids)
    assert all(uid.startswith("reachwatch-") for uid in uids)


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.stem)
def test_every_panel_has_datasource_unit_thresholds_description_and_queries(path: Path) -> None:
    board = load(path)
    ids = [panel["id"] for panel in board["panels"]]
    assert len(set(ids)) == len(ids)
    for panel in board["panels"]:
        title = panel["title"]
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, title
        defaults = panel["fieldConfig"]["defaults"]
        assert defaults["unit"], title
        assert defaults["thresholds"]["steps"], title
        assert panel["description"], title
        assert panel["targets"], title
        for target in panel["targets"]:
            assert target["expr"].strip(), title
            assert target["datasource"] == panel["datasource"], title
        grid = panel["gridPos"]
        assert grid["x"] + grid["w"] <= 24, title


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.stem)
def test_variables_for_datasource_vantage_group_and_target(path: Path) -> None:
    variables = {v["name"]: v for v in load(path)["templating"]["list"]}
    assert variables.keys() == {"datasource", "vantage", "group", "target"}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    for name in ("vantage", "group", "target"):
        assert variables[name]["query"]["query"].startswith("label_values(")
        assert variables[name]["includeAll"] and variables[name]["multi"]


def test_panels_filter_by_the_vantage_variable() -> None:
    """A panel that ignores $vantage would mix vantages when one is selected."""
    for _dashboard, title, query in lab.load_generator().queries():
        assert "$vantage" in query.expr, title


def test_status_panels_map_every_verdict_code() -> None:
    overview = load(GRAFANA / "dashboards" / "overview.json")
    status = next(p for p in overview["panels"] if p["title"] == "Status per target")
    options = status["fieldConfig"]["defaults"]["mappings"][0]["options"]
    assert {v["text"] for v in options.values()} == {"unknown", "reachable", "unreachable", "blocked"}


def test_provisioning_points_at_the_dashboards_and_a_prometheus_datasource() -> None:
    ds = yaml.safe_load((GRAFANA / "provisioning" / "datasources" / "prometheus.yaml").read_text())
    (source,) = ds["datasources"]
    assert source["type"] == "prometheus" and source["uid"]
    providers = yaml.safe_load((GRAFANA / "provisioning" / "dashboards" / "reachwatch.yaml").read_text())
    (provider,) = providers["providers"]
    assert provider["type"] == "file"
    assert "/dashboards" in provider["options"]["path"]


RU_DASHBOARDS = sorted((GRAFANA / "dashboards" / "ru").glob("*.json"))


def test_russian_dashboards_are_committed_as_generated_and_fully_translated() -> None:
    generator = lab.load_generator()
    expected = generator.render_all("ru")
    committed = {p.name: p.read_text() for p in RU_DASHBOARDS}
    assert committed.keys() == expected.keys(), "run: python grafana/generate.py"
    stale = [n for n, text in expected.items() if committed[n] != text]
    assert stale == [], "run: python grafana/generate.py"
    assert generator.untranslated("ru") == [], "add these to grafana/dashgen/lang_ru.py"


def test_russian_dashboards_run_the_same_queries_under_their_own_uids() -> None:
    for path in RU_DASHBOARDS:
        ru, en = load(path), load(GRAFANA / "dashboards" / path.name)
        assert ru["uid"] == en["uid"] + "-ru"
        assert [t["expr"] for p in ru["panels"] for t in p["targets"]] == [
            t["expr"] for p in en["panels"] for t in p["targets"]
        ]
        assert [v["name"] for v in ru["templating"]["list"]] == [v["name"] for v in en["templating"]["list"]]
        assert "ru" in ru["links"][0]["tags"]  # the dashboard dropdown stays within one language
    overview = load(GRAFANA / "dashboards" / "ru" / "overview.json")
    assert overview["title"] == "reachwatch / Обзор"
    assert any(p["title"] == "Доступно сейчас, по категориям" for p in overview["panels"])


def test_time_zone_option_for_viewers_elsewhere() -> None:
    generator = lab.load_generator()
    assert generator.dashboard("overview")["timezone"] == "browser"  # the viewer's local time
    assert generator.dashboard("overview", "ru", "Asia/Almaty")["timezone"] == "Asia/Almaty"
    assert generator.dashboard("fleet", "en", "utc")["timezone"] == "utc"
