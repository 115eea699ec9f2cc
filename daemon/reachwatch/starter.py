"""``reachwatch init``: a starter configuration for a country, under the operator's own vantage identity.

A fresh install used to copy ``config/example.yaml`` into place, so a new vantage probed
``proxy.example.net`` and called itself Kazakhtelecom AS9198. A starter config instead holds:

- the vantage identity the operator gives (flags or prompts): name, country, and optionally ASN, ISP
  and city. Nothing is filled in from a sample: a wrong identity on a published dashboard is worse
  than an empty label;
- the controls that make verdicts possible: the country's domestic controls (``data/starter.yaml``, or
  ``--domestic`` hosts) and international ones;
- the embedded default config's targets (Tor's sites, built-in bridges and bootstraps, circumvention
  websites, DNS against DoH) and the country's own, seen blocked there;
- the country's time zone and confirmation settings.

Pure: data in, a YAML document out, validated by the real loader before anyone writes it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from reachwatch.config.load import embedded_default_text, parse_config
from reachwatch.config.types import NAME_PATTERN, split_host_port
from reachwatch.errors import ConfigError

_COUNTRY = re.compile(r"^[A-Z]{2}$")
_ASN = re.compile(r"^AS[0-9]{1,10}$")
_HOST = re.compile(r"^[A-Za-z0-9.-]{1,253}$")
MAX_LABEL = 64  # isp and city are published labels: short, one line


@dataclass(frozen=True)
class Identity:
    """Who measures: the vantage section of the config (every value given by the operator)."""

    name: str
    country: str
    asn: str = ""
    isp: str = ""
    city: str = ""
    timezone: str | None = None  # None: the country's (or UTC)


@dataclass(frozen=True)
class Starter:
    """What ``data/starter.yaml`` knows about one country."""

    code: str
    name: str
    timezone: str = "UTC"
    domestic: list[dict[str, Any]] = field(default_factory=list)
    targets: list[dict[str, Any]] = field(default_factory=list)
    confirmation: dict[str, Any] = field(default_factory=dict)
    international: list[dict[str, Any]] | None = None


def _data() -> dict[str, Any]:
    text = resources.files("reachwatch").joinpath("data/starter.yaml").read_text(encoding="utf-8")
    data: dict[str, Any] = yaml.safe_load(text)
    return data


def countries() -> dict[str, Starter]:
    """Country code -> its starter set."""
    return {
        code: Starter(
            code=code,
            name=entry["name"],
            timezone=entry.get("timezone", "UTC"),
            domestic=list(entry.get("domestic", [])),
            targets=list(entry.get("targets", [])),
            confirmation=dict(entry.get("confirmation", {})),
            international=entry.get("international"),
        )
        for code, entry in _data()["countries"].items()
    }


def check_identity(identity: Identity) -> None:
    """One ``ConfigError`` line for the first value that cannot be a vantage's identity."""
    if not re.match(NAME_PATTERN, identity.name):
        raise ConfigError(
            "--name",
            f"{identity.name[:40]!r} is not a name: letters, digits, '.', '_', ':' and '-', starting "
            "with a letter or digit (e.g. almaty-home-1)",
        )
    if not _COUNTRY.match(identity.country):
        raise ConfigError("--country", "give the ISO 3166 two-letter code, e.g. KZ")
    if identity.asn and not _ASN.match(identity.asn):
        raise ConfigError(
            "--asn", "give the network's AS number as AS<digits>, e.g. AS9198, or leave it empty"
        )
    for label, value in (("--isp", identity.isp), ("--city", identity.city)):
        if len(value) > MAX_LABEL or not value.isprintable():
            raise ConfigError(label, f"at most {MAX_LABEL} printable characters (it is a published label)")


def domestic_controls(hosts: list[str]) -> list[dict[str, Any]]:
    """``tls`` controls for hosts the operator names (``--domestic egov.kz,kaspi.kz``)."""
    out = []
    wrong = "give host names (or host:port), separated by commas"
    for raw in hosts:
        host = raw.strip().lower()
        port = 443
        if ":" in host:
            try:
                host, port = split_host_port(host)
            except ValueError:
                raise ConfigError(
                    "--domestic", "give host names (or host:port), separated by commas"
                ) from None
        if not _HOST.match(host) or "." not in host:
            raise ConfigError("--domestic", wrong)
        entry: dict[str, Any] = {
            "name": "domestic-" + host.replace(".", "-")[:48],
            "kind": "tls",
            "host": host,
        }
        if port != 443:
            entry["port"] = port
        out.append({**entry, "group": "controls"})
    return out


def starter_document(identity: Identity, domestic: list[str] | None = None) -> dict[str, Any]:
    """The config as data; ``ConfigError`` for an unknown country without ``domestic`` hosts."""
    check_identity(identity)
    known = countries()
    starter = known.get(identity.country)
    if starter is None and not domestic:
        raise ConfigError(
            "--country",
            f"no starter set for {identity.country} (have: {', '.join(sorted(known))}); name your own "
            "domestic controls with --domestic HOST,HOST (sites inside the country a censor leaves alone)",
        )
    starter = starter or Starter(code=identity.country, name=identity.country)
    default = yaml.safe_load(embedded_default_text())
    vantage: dict[str, Any] = {"name": identity.name, "country": identity.country}
    for key in ("asn", "isp", "city"):
        value = getattr(identity, key)
        if value:
            vantage[key] = value
    vantage["timezone"] = identity.timezone or starter.timezone
    doc: dict[str, Any] = {"vantage": vantage, "defaults": default.get("defaults", {})}
    if starter.confirmation:
        doc["confirmation"] = starter.confirmation
    doc["controls"] = {
        "domestic": domestic_controls(domestic) if domestic else starter.domestic,
        "international": starter.international or _data()["international"],
    }
    taken = {t["name"] for t in doc["controls"]["domestic"] + doc["controls"]["international"]}
    targets = [t for t in default["targets"] if t["name"] not in taken]
    names = {t["name"] for t in targets} | taken
    targets += [t for t in starter.targets if t["name"] not in names]
    doc["targets"] = targets
    doc["tor"] = default.get("tor", {})
    return doc


HEADER = """\
# reachwatch starter configuration for {what}, written by `reachwatch init`.
#
# The vantage section is what you gave: it becomes public labels on every metric and dashboard, so keep
# it coarse (a city, not an address; never a subscriber id). Check, then run:
#     reachwatch validate {path}
#     reachwatch check --config {path}
# Every option: docs/CONFIGURATION.md. Your own bridges, VPN files and proxies: `reachwatch import FILE`
# prints entries to add under targets: (keep this file private once it holds them: chmod 600).

"""


def render(identity: Identity, domestic: list[str] | None = None, path: str = "config.yaml") -> str:
    """The starter config as YAML text, validated by the loader (``ConfigError`` if it would not load)."""
    doc = starter_document(identity, domestic)
    starter = countries().get(identity.country)
    what = f"{starter.name} ({identity.country})" if starter else identity.country
    text = HEADER.format(what=what, path=path) + yaml.safe_dump(
        doc, sort_keys=False, allow_unicode=True, width=1000, default_flow_style=None
    )
    parse_config(text, path, Path.cwd())
    return text
