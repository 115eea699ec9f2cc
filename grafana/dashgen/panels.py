"""Panel building blocks for the reachwatch dashboards: queries, panels, colours, value mappings.

A ``Panel`` is a plain description (type, title, description, queries, unit, thresholds ...) rendered to
Grafana dashboard JSON by ``render``; the helpers below fix the options each panel type needs so the
dashboard modules only say what a panel shows.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

DS = {"type": "prometheus", "uid": "${datasource}"}

# label selectors shared by the panels
V = 'vantage=~"$vantage"'
T = 'vantage=~"$vantage", group=~"$group", target=~"$target"'
JOIN = "on (job, instance, target) group_left (category) reachwatch:target_category:info"

# colours and value mappings
GREEN, ORANGE, RED, GREY, BLUE = "green", "orange", "red", "text", "blue"
VERDICT_MAP = [
    {
        "type": "value",
        "options": {
            "0": {"text": "unknown", "color": GREY, "index": 0},
            "1": {"text": "reachable", "color": GREEN, "index": 1},
            "2": {"text": "unreachable", "color": ORANGE, "index": 2},
            "3": {"text": "blocked", "color": RED, "index": 3},
        },
    }
]
VANTAGE_MAP = [
    {
        "type": "value",
        "options": {
            "0": {"text": "unknown", "color": GREY, "index": 0},
            "1": {"text": "online", "color": GREEN, "index": 1},
            "2": {"text": "international shutdown", "color": ORANGE, "index": 2},
            "3": {"text": "offline", "color": RED, "index": 3},
        },
    }
]
INCIDENT_MAP = [
    {
        "type": "range",
        "options": {"from": 1, "to": 1e9, "result": {"text": "open", "color": RED, "index": 0}},
    }
]
PORT_MAP = [
    {
        "type": "value",
        "options": {
            "0": {"text": "closed / filtered", "color": RED, "index": 0},
            "1": {"text": "open", "color": GREEN, "index": 1},
        },
    }
]
SUCCESS_MAP = [
    {
        "type": "value",
        "options": {
            "0": {"text": "failed", "color": RED, "index": 0},
            "1": {"text": "ok", "color": GREEN, "index": 1},
        },
    }
]


def steps(*pairs: tuple[float | None, str]) -> dict[str, Any]:
    return {"mode": "absolute", "steps": [{"value": v, "color": c} for v, c in pairs]}


# higher is better (reachable fraction); lower is better (blocked fraction, counts of bad things)
GOOD_HIGH = steps((None, RED), (0.5, ORANGE), (0.9, GREEN))
GOOD_LOW = steps((None, GREEN), (0.1, ORANGE), (0.5, RED))
ANY_BAD = steps((None, GREEN), (1, RED))
NEUTRAL = steps((None, BLUE))
SLOW = steps((None, GREEN), (2, ORANGE), (10, RED))
CODES = steps((None, GREY))


@dataclass(frozen=True)
class Query:
    """One panel query. ``needs`` names probe kinds without which the lab cannot produce data."""

    expr: str
    legend: str = ""
    instant: bool = False
    table: bool = False
    needs: tuple[str, ...] = ()


@dataclass
class Panel:
    """A panel before layout: the JSON is produced by ``render``."""

    type: str
    title: str
    description: str
    queries: list[Query]
    unit: str
    thresholds: dict[str, Any]
    width: int = 12
    height: int = 8
    mappings: list[dict[str, Any]] = field(default_factory=list)
    options: dict[str, Any] = field(default_factory=dict)
    custom: dict[str, Any] = field(default_factory=dict)
    transformations: list[dict[str, Any]] = field(default_factory=list)
    min: float | None = None
    max: float | None = None
    interval: str | None = None

    def render(self, pid: int, x: int, y: int) -> dict[str, Any]:
        defaults: dict[str, Any] = {
            "unit": self.unit,
            "thresholds": self.thresholds,
            "mappings": self.mappings,
            "color": {"mode": "thresholds"},
            "custom": self.custom,
        }
        if self.min is not None:
            defaults["min"] = self.min
        if self.max is not None:
            defaults["max"] = self.max
        targets = []
        for i, q in enumerate(self.queries):
            targets.append(
                {
                    "refId": chr(ord("A") + i),
                    "datasource": DS,
                    "expr": q.expr,
                    "legendFormat": q.legend or "__auto",
                    "instant": q.instant,
                    "range": not q.instant,
                    "format": "table" if q.table else "time_series",
                    "editorMode": "code",
                }
            )
        panel: dict[str, Any] = {
            "id": pid,
            "type": self.type,
            "title": self.title,
            "description": self.description,
            "datasource": DS,
            "gridPos": {"h": self.height, "w": self.width, "x": x, "y": y},
            "targets": targets,
            "fieldConfig": {"defaults": defaults, "overrides": []},
            "options": self.options,
        }
        if self.transformations:
            panel["transformations"] = self.transformations
        if self.interval:
            panel["interval"] = self.interval
        return panel


def legend_opts(**extra: Any) -> dict[str, Any]:
    return {"legend": {"displayMode": "list", "placement": "bottom", "showLegend": True}, **extra}


def timeseries(
    title: str, desc: str, queries: list[Query], unit: str, thr: dict[str, Any], **kw: Any
) -> Panel:
    kw.setdefault("custom", {"drawStyle": "line", "lineWidth": 1, "fillOpacity": 10, "spanNulls": False})
    return Panel("timeseries", title, desc, queries, unit, thr, options=legend_opts(), **kw)


def state_timeline(title: str, desc: str, queries: list[Query], **kw: Any) -> Panel:
    opts = legend_opts(mergeValues=True, showValue="auto", rowHeight=0.9, alignValue="left")
    kw.setdefault("custom", {"fillOpacity": 80, "lineWidth": 0})
    return Panel("state-timeline", title, desc, queries, options=opts, **kw)


def status_history(title: str, desc: str, queries: list[Query], **kw: Any) -> Panel:
    opts = legend_opts(showValue="never", rowHeight=0.9, colWidth=0.9)
    kw.setdefault("custom", {"fillOpacity": 80, "lineWidth": 1})
    return Panel("status-history", title, desc, queries, options=opts, **kw)


def bargauge(title: str, desc: str, queries: list[Query], unit: str, thr: dict[str, Any], **kw: Any) -> Panel:
    opts = {
        "orientation": "horizontal",
        "displayMode": "gradient",
        "showUnfilled": True,
        "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
    }
    return Panel("bargauge", title, desc, queries, unit, thr, options=opts, **kw)


def table(title: str, desc: str, queries: list[Query], unit: str, thr: dict[str, Any], **kw: Any) -> Panel:
    kw.setdefault("custom", {"align": "auto", "cellOptions": {"type": "color-text"}})
    return Panel("table", title, desc, queries, unit, thr, options={"showHeader": True}, **kw)


def hide_columns(*names: str) -> dict[str, Any]:
    return {"id": "organize", "options": {"excludeByName": dict.fromkeys(names, True)}}


def instant_table(expr: str, needs: tuple[str, ...] = ()) -> list[Query]:
    return [Query(expr, instant=True, table=True, needs=needs)]
