"""The Tor directory authorities as a built-in target set (``tor: {directory_authorities: true}``).

Their nicknames, addresses, ports and RSA identity fingerprints are public facts compiled into every tor
(``src/app/config/auth_dirs.inc``). Taken from **tor 0.4.9.11** (the Debian package: the list compiled
into ``/usr/bin/tor``), and cross-checked against a public copy of the current ``auth_dirs.inc``.
Older copies differ (moria1's identity and ports, tor26's and Faravahar's addresses): when tor's list
changes, update this table and ``TOR_VERSION``; ``tests/tor/test_relaysets.py`` compares it with the
installed tor binary.

Each authority yields two targets in group ``tor_dirauths``: its ORPort (``tor_relay``: the link
handshake and identity check) and its DirPort (``tor_dirport``: its own signed descriptor). Blocking the
authorities is a classic first step (Kazakhstan, Belarus, Russia): a client that cannot reach any of
them and has no fallback directory cannot bootstrap. Serge is the bridge authority (no v3 votes) but
serves ORPort and DirPort like the others, so it is included and labelled.
"""

from __future__ import annotations

from dataclasses import dataclass

from reachwatch.config.targets.tor_dirport import TorDirPortTarget
from reachwatch.config.targets.tor_relay import TorRelayTarget
from reachwatch.config.types import TargetBase

TOR_VERSION = "0.4.9.11"
GROUP = "tor_dirauths"


@dataclass(frozen=True)
class DirectoryAuthority:
    nickname: str
    address: str  # IPv4
    or_port: int
    dir_port: int
    fingerprint: str  # RSA identity, 40 hex
    v3ident: str | None  # authority signing identity (None for the bridge authority)
    ipv6_or: str | None = None  # "[addr]:port" as in auth_dirs.inc (not probed: most vantages are v4)

    @property
    def bridge_authority(self) -> bool:
        return self.v3ident is None


DIRECTORY_AUTHORITIES: tuple[DirectoryAuthority, ...] = (
    DirectoryAuthority(
        "moria1", "128.31.0.39", 9201, 9231,
        "1A25C6358DB91342AA51720A5038B72742732498", "F533C81CEF0BC0267857C99B2F471ADF249FA232",
    ),
    DirectoryAuthority(
        "tor26", "217.196.147.77", 443, 80,
        "FAA4BCA4A6AC0FB4CA2F8AD5A11D9E122BA894F6", "2F3DF9CA0E5D36F2685A2DA67184EB8DCB8CBA8C",
        "[2a02:16a8:662:2203::1]:443",
    ),
    DirectoryAuthority(
        "dizum", "45.66.35.11", 443, 80,
        "7EA6EAD6FD83083C538F44038BBFA077587DD755", "E8A9C45EDE6D711294FADF8E7951F4DE6CA56B58",
    ),
    DirectoryAuthority(
        "Serge", "66.111.2.131", 9001, 9030,
        "BA44A889E64B93FAA2B114E02C2A279A8555C533", None,
    ),
    DirectoryAuthority(
        "gabelmoo", "131.188.40.189", 443, 80,
        "F2044413DAC2E02E3D6BCF4735A19BCA1DE97281", "ED03BB616EB2F60BEC80151114BB25CEF515B226",
        "[2001:638:a000:4140::ffff:189]:443",
    ),
    DirectoryAuthority(
        "dannenberg", "193.23.244.244", 443, 80,
        "7BE683E65D48141321C5ED92F075C55364AC7123", "0232AF901C31A04EE9848595AF9BB7620D4C5B2E",
        "[2001:678:558:1000::244]:443",
    ),
    DirectoryAuthority(
        "maatuska", "171.25.193.9", 80, 443,
        "BD6A829255CB08E66FBE7D3748363586E46B3810", "49015F787433103580E3B66A1707A00E60F2D15B",
        "[2001:67c:289c::9]:80",
    ),
    DirectoryAuthority(
        "longclaw", "199.58.81.140", 443, 80,
        "74A910646BCEEFBCD2E874FC1DC997430F968145", "23D15D965BC35114467363C165C4F724B64B4F66",
    ),
    DirectoryAuthority(
        "bastet", "204.13.164.118", 443, 80,
        "24E2F139121D4394C54B5BCC368B3B411857C413", "27102BC123E7AF1D4741AE047E160C91ADC76B21",
        "[2620:13:4000:6000::1000:118]:443",
    ),
    DirectoryAuthority(
        "faravahar", "216.218.219.41", 443, 80,
        "E3E42D35F801C9D5AB23584E0025D56FE2B33396", "70849B868D606BAECFB6128C5E3D782029AA394F",
    ),
)  # fmt: skip


def directory_authority_targets() -> list[TargetBase]:
    """Two public targets per authority: ``tor-dirauth-<nick>-orport`` and ``tor-dirauth-<nick>-dirport``."""
    targets: list[TargetBase] = []
    for auth in DIRECTORY_AUTHORITIES:
        labels = {"authority": auth.nickname, "bridge_authority": str(auth.bridge_authority).lower()}
        targets.append(
            TorRelayTarget(
                name=f"tor-dirauth-{auth.nickname.lower()}-orport",
                kind="tor_relay",
                group=GROUP,
                labels=labels,
                host=auth.address,
                port=auth.or_port,
                fingerprint=auth.fingerprint,
                # counted by the relay-set aggregate too: "authorities reachable" is one panel
                relay_set=GROUP,
                relay_flags=("Authority",),
            )
        )
        targets.append(
            TorDirPortTarget(
                name=f"tor-dirauth-{auth.nickname.lower()}-dirport",
                kind="tor_dirport",
                group=GROUP,
                labels=labels,
                host=auth.address,
                port=auth.dir_port,
                fingerprint=auth.fingerprint,
            )
        )
    return targets
