"""Generates the reachwatch Grafana dashboards (grafana/dashboards/*.json) from code.

Our own small generator in plain Python, no dependency: dashboard JSON is a stable, documented format
and the handful of panel types we use (time series, stat, bar gauge, state timeline, status history,
table) need a few dozen lines of helpers, where grafana-foundation-sdk would add a pinned, fast-moving
dependency (one branch per Grafana minor). Panels are described in ``dashgen/`` (building blocks in
``panels.py``, dashboards in ``status.py`` and ``protocols.py``); this file assembles and writes them.

Run ``python grafana/generate.py`` after editing; ``tests/observability/test_dashboards.py`` fails when the
committed JSON differs from what this file generates. ``tests/observability/test_e2e.py`` runs every
expression below against a real Prometheus scraping a real reachwatch (``queries()`` lists them).

Metric names and labels are the contract in docs/ARCHITECTURE.md ("Metrics") plus the recording rules in
deploy/prometheus/rules/reachwatch-recording.yml. Vantage labels (vantage, vantage_role, country, asn, isp,
city) come from the Prometheus scrape config or the fleet shipper's external labels.
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
from pathlib import Path
from typing import Any

from dashgen.lang_ru import RU
from dashgen.panels import DS, Panel, Query, V
from dashgen.protocols import interference, tor, vpn_proxy
from dashgen.status import fleet, overview, patterns

OUT_DIR = Path(__file__).resolve().parent / "dashboards"
# --lang: the viewer's language for titles and descriptions; each language has its own uids and directory
LANGUAGES = {"en": {}, "ru": RU}
LANG_DIRS = {"en": OUT_DIR, "ru": OUT_DIR / "ru"}
SCHEMA_VERSION = 39  # Grafana 10.4+ reads it; newer versions migrate on load

DASHBOARDS = {
    "overview": ("reachwatch-overview", "reachwatch / Overview", overview),
    "tor": ("reachwatch-tor", "reachwatch / Tor", tor),
    "vpn-proxy": ("reachwatch-vpn-proxy", "reachwatch / VPN and proxies", vpn_proxy),
    "interference": ("reachwatch-interference", "reachwatch / Interference", interference),
    "patterns": ("reachwatch-patterns", "reachwatch / Patterns", patterns),
    "fleet": ("reachwatch-fleet", "reachwatch / Fleet", fleet),
}

VARIABLE_QUERIES = {
    "vantage": "label_values(reachwatch_build_info, vantage)",
    "group": 'label_values(reachwatch_target_info{vantage=~"$vantage"}, group)',
    "target": 'label_values(reachwatch_target_info{vantage=~"$vantage", group=~"$group"}, target)',
}

ANNOTATION_EXPR = f"changes(reachwatch:vantage_state:code{{{V}}}[5m]) > 0"
# an incident's start (the first bad attempt, from the daemon's journal) as the annotation's time: the
# series value is a timestamp, so the mark sits where the incident began, not where it was first scraped
INCIDENT_ANNOTATION_EXPR = f"reachwatch_incident_open_since_timestamp_seconds{{{V}}} * 1000"


def variables() -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = [
        {
            "name": "datasource",
            "label": "Data source",
            "type": "datasource",
            "query": "prometheus",
            "current": {},
            "hide": 0,
            "refresh": 1,
        }
    ]
    for name, query in VARIABLE_QUERIES.items():
        out.append(
            {
                "name": name,
                "label": name.capitalize(),
                "type": "query",
                "datasource": DS,
                "definition": query,
                "query": {"query": query, "refId": "PrometheusVariableQueryEditor-VariableQuery"},
                "refresh": 2,
                "multi": True,
                "includeAll": True,
                "allValue": ".*",
                "current": {"selected": True, "text": ["All"], "value": ["$__all"]},
                "sort": 1,
                "hide": 0,
            }
        )
    return out


def layout(panels: list[Panel]) -> list[dict[str, Any]]:
    """Left to right, top to bottom on Grafana's 24-column grid."""
    out, x, y, row_h = [], 0, 0, 0
    for pid, panel in enumerate(panels, start=1):
        if x + panel.width > 24:
            x, y, row_h = 0, y + row_h, 0
        out.append(panel.render(pid, x, y))
        x += panel.width
        row_h = max(row_h, panel.height)
    return out


def dashboard(key: str, lang: str = "en", timezone: str = "browser") -> dict[str, Any]:
    """One dashboard; ``lang`` translates what a viewer reads, ``timezone`` is Grafana's: ``browser``
    (the viewer's local time: an in-country operator's is the vantage's), ``utc`` or an IANA zone."""
    # a deep copy: panels share the mapping constants of dashgen.panels, which must stay English
    board = copy.deepcopy(_dashboard(key, timezone))
    if lang == "en":
        return board
    board["uid"] = f"{board['uid']}-{lang}"
    board["tags"] = [*board["tags"], lang]
    board["links"][0]["tags"] = [*board["links"][0]["tags"], lang]  # the dropdown lists one language
    return translated(board, LANGUAGES[lang])


def translated(board: dict[str, Any], table: dict[str, str]) -> dict[str, Any]:
    """The viewer-facing strings of a rendered dashboard replaced from ``table`` (queries untouched)."""

    def tr(text: str) -> str:
        return table.get(text, text)

    board["title"] = tr(board["title"])
    for panel in board["panels"]:
        panel["title"], panel["description"] = tr(panel["title"]), tr(panel["description"])
        for mapping in panel["fieldConfig"]["defaults"].get("mappings", []):
            options = mapping["options"]
            for result in [options["result"]] if "result" in options else options.values():
                result["text"] = tr(result["text"])
    for variable in board["templating"]["list"]:
        variable["label"] = tr(variable["label"])
    for annotation in board["annotations"]["list"]:
        for field_name in ("name", "titleFormat", "textFormat"):
            annotation[field_name] = tr(annotation[field_name])
    return board


def untranslated(lang: str) -> list[str]:
    """Viewer-facing English strings ``lang``'s table lacks (a test keeps this empty)."""
    table = LANGUAGES[lang]
    missing: list[str] = []
    for key in DASHBOARDS:
        board = _dashboard(key, "browser")
        texts = [board["title"]] + [t for p in board["panels"] for t in (p["title"], p["description"])]
        for panel in board["panels"]:
            for mapping in panel["fieldConfig"]["defaults"].get("mappings", []):
                options = mapping["options"]
                results = [options["result"]] if "result" in options else list(options.values())
                texts += [r["text"] for r in results]
        texts += [v["label"] for v in board["templating"]["list"]]
        texts += [a[f] for a in board["annotations"]["list"] for f in ("name", "titleFormat", "textFormat")]
        missing += [t for t in texts if t not in table and t not in missing]
    return missing


def _dashboard(key: str, timezone: str) -> dict[str, Any]:
    uid, title, build = DASHBOARDS[key]
    return {
        "uid": uid,
        "title": title,
        "description": f"Generated by grafana/generate.py ({key}); edit the generator, not this file.",
        "tags": ["reachwatch", "generated"],
        "editable": False,
        "schemaVersion": SCHEMA_VERSION,
        "version": 1,
        "graphTooltip": 1,
        "refresh": "1m",
        "time": {"from": "now-24h", "to": "now"},
        # the viewer's local time by default (an in-country operator: the vantage's); --timezone sets utc
        # or an IANA zone (e.g. Asia/Almaty for a newsroom abroad), and the time picker can switch
        "timezone": timezone,
        "links": [
            {
                "type": "dashboards",
                "tags": ["reachwatch"],
                "asDropdown": True,
                "title": "reachwatch",
                "includeVars": True,
                "keepTime": True,
            }
        ],
        "annotations": {
            "list": [
                {
                    "name": "Vantage state changes",
                    "datasource": DS,
                    "enable": True,
                    "iconColor": "orange",
                    "expr": ANNOTATION_EXPR,
                    "titleFormat": "vantage state changed",
                    "textFormat": "{{vantage}}",
                    "step": "60s",
                },
                {
                    "name": "Incidents (start)",
                    "datasource": DS,
                    "enable": True,
                    "iconColor": "red",
                    "expr": INCIDENT_ANNOTATION_EXPR,
                    "useValueForTime": True,
                    "titleFormat": "incident: {{scope_type}} {{scope}}",
                    "textFormat": "{{technique}} at {{vantage}} (reachwatch incidents)",
                    "step": "60s",
                },
            ]
        },
        "templating": {"list": variables()},
        "panels": layout(build()),
    }


def queries() -> list[tuple[str, str, Query]]:
    """Every (dashboard, panel title, query) the dashboards run; the e2e test executes them all."""
    out: list[tuple[str, str, Query]] = []
    for key, (_, _, build) in DASHBOARDS.items():
        for panel in build():
            out.extend((key, panel.title, q) for q in panel.queries)
    return out


def render_all(lang: str = "en", timezone: str = "browser") -> dict[str, str]:
    """File name -> JSON text, exactly as committed (per language, in the default time zone)."""
    out = {}
    for key in DASHBOARDS:
        board = dashboard(key, lang, timezone)
        out[f"{key}.json"] = json.dumps(board, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description="Write the reachwatch Grafana dashboards.")
    parser.add_argument(
        "--lang", choices=sorted(LANGUAGES), action="append", help="default: every language (en and ru)"
    )
    parser.add_argument(
        "--timezone",
        default="browser",
        help="browser (default: the viewer's local time), utc, or an IANA zone such as Asia/Almaty",
    )
    parser.add_argument("--out", type=Path, help="directory (default: dashboards/, dashboards/ru/ for ru)")
    args = parser.parse_args()
    for lang in args.lang or sorted(LANGUAGES):
        missing = untranslated(lang) if lang != "en" else []
        if missing:
            more = f" (+{len(missing) - 1} more)" if len(missing) > 1 else ""
            print(f"{lang}: no translation in dashgen/lang_{lang}.py for {missing[0]!r}{more}")
        out = args.out or LANG_DIRS[lang]
        out.mkdir(parents=True, exist_ok=True)
        for name, text in render_all(lang, args.timezone).items():
            (out / name).write_text(text, encoding="utf-8")
        print(f"wrote {len(DASHBOARDS)} dashboards ({lang}, time zone {args.timezone}) to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
