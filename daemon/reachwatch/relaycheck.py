"""``reachwatch check --relay-set NAME``: sweep one relay set now, whole, and print its shares.

The daemon walks a set over a day (``scheduler.Rotation``); an operator who wants the answer now (a new
vantage, a suspected block) sweeps it on demand under the same limits (``scheduler.max_concurrency``,
destination spacing), controls first so failures can be judged, with progress on stderr. Members come
from the same place as the daemon's: the file read at load, or the directory tor started for the check
(``tor/directory.py``: bootstrapped through ``tor.relay_list.bridges`` when set) for a live set.

The result is plain data (``relayset_document``: the set's shares per flag, country and AS, as
``metrics.relaysets.summary`` counts them for the metrics) and a few lines for people (``render``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from reachwatch.config.load import LoadedConfig
from reachwatch.config.relaysets import RelaySetConfig, parse_relay_document, relay_targets
from reachwatch.config.targets.tor_relay import TorRelayTarget
from reachwatch.errors import ReachwatchError
from reachwatch.metrics.relaysets import summary
from reachwatch.state import StateStore
from reachwatch.tor.directory import DirectoryTor, DirectoryUnavailable


class RelaySetUnavailable(ReachwatchError):
    """The set's live source could not be read (the directory tor did not bootstrap, a fetch failed)."""


def find_set(loaded: LoadedConfig, name: str) -> RelaySetConfig | None:
    return next((spec for spec in loaded.config.tor.relay_sets if spec.name == name), None)


async def members(
    loaded: LoadedConfig, spec: RelaySetConfig, say: Callable[[str], None]
) -> list[TorRelayTarget]:
    """The set's members now: read at load for a file, from a directory tor started for the check else."""
    if spec.source is not None:
        return list(loaded.relay_members.get(spec.name, []))
    directory = DirectoryTor.from_config(loaded.config.tor)
    assert directory is not None  # the set is live
    say(f"{spec.name}: starting a directory tor for its {spec.live} list (bootstrapping can take minutes)")
    try:
        if spec.live == "onionoo":
            document = await directory.fetch(loaded.config.tor.relay_list.onionoo_url)
        else:
            document = await directory.consensus()
    except DirectoryUnavailable as exc:
        raise RelaySetUnavailable(f"relay set {spec.name}: {exc}") from None
    finally:
        await directory.close()
    return relay_targets(spec, parse_relay_document(document, f"relay set {spec.name}"), loaded.geoip)


def relayset_document(store: StateStore, spec: RelaySetConfig, top: int) -> dict[str, Any]:
    """The set's shares after a sweep: totals, and per flag, country and AS."""
    states = [s for s in store.targets.values() if getattr(s.target, "relay_set", None) == spec.name]
    shares = summary(states, spec.name, top)
    total = next((row for row in shares["flag"] if row["group"] == "all"), None)
    return {
        "set": spec.name,
        "source": spec.live or "file",
        "relays": total["relays"] if total else 0,
        "probed": total["probed"] if total else 0,
        "reachable": total["reachable"] if total else 0,
        **shares,
    }


def _share(row: dict[str, Any]) -> str:
    percent = f" {100 * row['reachable'] / row['probed']:.0f}%" if row["probed"] else ""
    return f"{row['group']} {row['reachable']}/{row['probed']}{percent}"


def render(doc: dict[str, Any]) -> list[str]:
    """A few lines: the set's share, then the shares by country, AS and flag (reachable/probed)."""
    probed = doc["probed"]
    share = f" ({100 * doc['reachable'] / probed:.1f}%)" if probed else ""
    lines = [
        f"relay set {doc['set']} ({doc['source']}): {doc['reachable']} of {probed} relays reachable with "
        f"their identity verified{share}"
    ]
    for by, title in (("country", "by country"), ("asn", "by AS"), ("flag", "by flag")):
        rows = [r for r in doc[by] if r["group"] != "all"]
        if rows:
            lines.append(f"  {title}: " + ", ".join(_share(r) for r in rows))
    return lines
