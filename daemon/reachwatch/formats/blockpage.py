# ruff: noqa: RUF001 - the patterns are Russian and Kazakh text: Cyrillic letters are meant
"""Block pages: a body decoded as the browser would, and the censors' pages recognised in it.

Pure: bytes in, text and matches out. Used by the ``http``/``https`` probe. How operator patterns are
compiled and checked (``PATTERN_FLAGS``, ``pattern_problem``) is config, in ``config/targets/http.py``.

Why each piece:
- **Decoding.** Russian and Kazakh block pages come in UTF-8 and in Windows-1251 (older DPI boxes); a
  pattern like ``заблокирован`` must match either. The charset is taken from the ``Content-Type``
  header, then a BOM, then an HTML ``<meta charset>`` / ``http-equiv`` in the first 2 KiB (what browsers
  do), then strict UTF-8, and only then detection (charset-normalizer; see docs/DEPENDENCIES.md).
  Patterns match the decoded text case-insensitively, Unicode-aware.
- **Built-in fingerprints** (``FINGERPRINTS``, versioned as ``FINGERPRINT_SET``): block pages of
  Russian and Kazakh ISPs and the common filtering vendors, written by this team from the pages'
  fixed wording and redirect hosts, with a test page each (tests/core/testdata/blockpages/). A match is
  local evidence on its own: the wording names the law or the product that blocked the page.
- **Markers** (``MARKERS``): words any block page uses ("blocked", "заблокирован", "access denied"...).
  Ordinary pages use them too, so a marker alone is not evidence: the verdict engine needs the page to
  differ from what a reference vantage fetched (status, title, length, similarity: ``simhash``).
"""

from __future__ import annotations

import codecs
import hashlib
import html
import re
from dataclasses import dataclass
from urllib.parse import urlsplit

from reachwatch.config.targets.http import PATTERN_FLAGS

FINGERPRINT_SET = "2026.1"
"""Version of the built-in fingerprint set; recorded with each match (fact ``blockpage_set``)."""

_META_WINDOW = 2048
_META = re.compile(
    rb"""<meta[^>]+?charset\s*=\s*["']?\s*([A-Za-z0-9_.:-]{1,40})""",
    re.IGNORECASE,
)
_TITLE = re.compile(r"<title[^>]*>(.*?)</title", re.IGNORECASE | re.DOTALL)
_TAG = re.compile(r"<[^>]*>")
_SPACE = re.compile(r"\s+")
_WORD = re.compile(r"\w+", re.UNICODE)


@dataclass(frozen=True, slots=True)
class Fingerprint:
    """One censor's block page: any pattern in the text, or a redirect to one of ``hosts``."""

    name: str
    country: str | None  # ISO code, None for a vendor's page used anywhere
    patterns: tuple[re.Pattern[str], ...]
    hosts: tuple[str, ...] = ()


def _fp(name: str, country: str | None, *patterns: str, hosts: tuple[str, ...] = ()) -> Fingerprint:
    return Fingerprint(name, country, tuple(re.compile(p, PATTERN_FLAGS) for p in patterns), hosts)


FINGERPRINTS: tuple[Fingerprint, ...] = (
    # Russia: every ISP's page cites the information law and the registry (Roskomnadzor)
    _fp(
        "ru-149fz",
        "RU",
        r"ограничен[^<]{0,250}149-ФЗ",
        r"149-ФЗ[^<]{0,250}(ограничен|заблокирован)",
        r"eais\.rkn\.gov\.ru",
        r"blocklist\.rkn\.gov\.ru",
        r"единый\s+реестр[^.<]{0,120}(запрещ|ограничен)",
        hosts=("warning.rt.ru", "blocklist.rkn.gov.ru"),
    ),
    # Kazakhstan: pages cite the law of the Republic, in Russian or in Kazakh
    _fp(
        "kz-restricted",
        "KZ",
        r"(доступ|ресурс)[^.<]{0,120}ограничен[^.<]{0,200}Республики\s+Казахстан",
        r"законодательств\w*\s+Республики\s+Казахстан[^.<]{0,200}(ограничен|заблокирован)",
        r"ресурс\w*\s+(кіру|қолжетімділік)[^.<]{0,60}шектелген",
        r"Қазақстан\s+Республикасының[^.<]{0,200}шектелген",
    ),
    # vendors: the product's own block page wording
    _fp("vendor-fortiguard", None, r"FortiGuard\s+(Web\s+Filtering|Intrusion\s+Prevention)", r"fgd_icon"),
    _fp(
        "vendor-paloalto",
        None,
        r"Access to the web page you were trying to visit has been blocked in accordance with company policy",
    ),
    _fp("vendor-netsweeper", None, r"netsweeper", r"/webadmin/deny/", hosts=()),
    _fp(
        "vendor-bluecoat",
        None,
        r"(Blue\s*Coat|Symantec)[^<]{0,80}(Web\s*Filter|ProxySG)[^<]{0,120}(blocked|denied)",
    ),
    _fp("vendor-sophos", None, r"Sophos\s+(Web\s+Appliance|UTM|XG\s+Firewall)[^<]{0,200}(blocked|denied)"),
)

MARKERS = re.compile(
    r"\b(blocked|access\s+denied|restricted|censored|"
    r"заблокир\w*|блокир\w*|ограничен\w*|запрещ\w*|недоступ\w*|"
    r"шектелген|бұғатталған)\b",
    PATTERN_FLAGS,
)


# --- decoding -----------------------------------------------------------------------------------------


def _codec(name: str | None) -> str | None:
    if not name:
        return None
    try:
        return codecs.lookup(name.strip().strip("\"'")).name
    except LookupError:
        return None


def header_charset(content_type: str | None) -> str | None:
    """The ``charset=`` of a Content-Type value, if Python knows it."""
    if not content_type:
        return None
    for part in content_type.split(";")[1:]:
        key, _, value = part.partition("=")
        if key.strip().lower() == "charset":
            return _codec(value)
    return None


def decode_body(body: bytes, content_type: str | None = None) -> tuple[str, str]:
    """(text, charset) of a response body, decoded as a browser would; never raises.

    Order: Content-Type charset, BOM, ``<meta>`` in the first 2 KiB, strict UTF-8, detection, and
    latin-1 as the last resort (every byte is a character: a pattern can still be searched).
    """
    declared = header_charset(content_type)
    if declared is None:
        for bom, name in (
            (codecs.BOM_UTF8, "utf-8-sig"),
            (codecs.BOM_UTF16_LE, "utf-16"),
            (codecs.BOM_UTF16_BE, "utf-16"),
        ):
            if body.startswith(bom):
                declared = name
                break
    if declared is None:
        meta = _META.search(body[:_META_WINDOW])
        declared = _codec(meta.group(1).decode("ascii", "replace")) if meta else None
    if declared is not None:
        return body.decode(declared, errors="replace"), declared
    try:
        return body.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        pass
    # imported here: detection is the last resort (no declared charset, not UTF-8) and the library is
    # ~2.7 MB of a daemon that may never see such a body (bench/README.md, issue 9)
    import charset_normalizer  # noqa: PLC0415

    best = charset_normalizer.from_bytes(body[:65536]).best()
    encoding = _codec(best.encoding) if best is not None else None
    if encoding is not None:
        return body.decode(encoding, errors="replace"), encoding
    return body.decode("latin-1"), "latin-1"


# --- matching -----------------------------------------------------------------------------------------


def compile_patterns(patterns: list[str]) -> list[re.Pattern[str]]:
    """Operator patterns as they are matched: case-insensitive, Unicode-aware."""
    return [re.compile(p, PATTERN_FLAGS) for p in patterns]


def page_text(text: str) -> str:
    """The text a reader sees: entities decoded (``&#1079;`` is "з"), tags and runs of space removed...

    ...while the raw HTML is matched as well, so a pattern naming a URL in an attribute still matches.
    """
    return _SPACE.sub(" ", html.unescape(_TAG.sub(" ", text)))


def matches(patterns: list[re.Pattern[str]], text: str, location: str | None) -> bool:
    """Whether any pattern matches the raw or the readable text, or the redirect target."""
    readable = page_text(text)
    return any(p.search(text) or p.search(readable) or (location and p.search(location)) for p in patterns)


def find_fingerprint(text: str, location: str | None) -> Fingerprint | None:
    """The built-in block page this is, by wording or by a redirect to the censor's host."""
    host = (urlsplit(location).hostname or "").lower() if location else ""
    readable = page_text(text)
    for fp in FINGERPRINTS:
        if host and any(host == h or host.endswith("." + h) for h in fp.hosts):
            return fp
        if any(p.search(text) or p.search(readable) for p in fp.patterns):
            return fp
    return None


def has_markers(text: str, location: str | None) -> bool:
    """Block-page words in the readable text or the redirect target (not evidence alone)."""
    return bool(MARKERS.search(page_text(text)) or (location and MARKERS.search(location)))


def title(text: str) -> str | None:
    """The page's ``<title>``, readable and at most 200 characters."""
    found = _TITLE.search(text[:65536])
    if found is None:
        return None
    return _SPACE.sub(" ", html.unescape(found.group(1))).strip()[:200] or None


def simhash(text: str) -> str:
    """A 64-bit similarity fingerprint of the readable text's words (16 hex): near pages, near hashes.

    Charikar's simhash over word 3-shingles; the Hamming distance of two (``simhash_distance``) is small
    for the same page with a changed date or counter and large for a different page.
    """
    words = _WORD.findall(page_text(text).lower())
    shingles = [" ".join(words[i : i + 3]) for i in range(max(1, len(words) - 2))] if words else [""]
    weights = [0] * 64
    for shingle in shingles:
        h = int.from_bytes(hashlib.blake2b(shingle.encode(), digest_size=8).digest(), "big")
        for bit in range(64):
            weights[bit] += 1 if h >> bit & 1 else -1
    value = sum(1 << bit for bit in range(64) if weights[bit] > 0)
    return f"{value:016x}"


def simhash_distance(a: str, b: str) -> int | None:
    """Bits that differ between two ``simhash`` values; ``None`` if either is not one."""
    try:
        return bin(int(a, 16) ^ int(b, 16)).count("1") if len(a) == len(b) == 16 else None
    except ValueError:
        return None
