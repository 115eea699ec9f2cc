"""The languages reachwatch speaks to people: English, Russian and Kazakh (Cyrillic), as gettext catalogs.

Messages are written in English in the code (``_("...")``); ``locale/<lang>/LC_MESSAGES/reachwatch.po``
holds each translation, compiled to ``.mo`` by ``scripts/compile_catalogs.py`` (``msgfmt``; a test keeps
the compiled files in step and every message translated). Operators are often more at home in Russian
or Kazakh than in English, and a page about what is blocked must be read correctly, not guessed at.

Which language a page is in: ``?lang=`` if given, else the ``web.language`` setting unless it is
``auto``, else the browser's ``Accept-Language`` (quality values honoured), else English.
"""

from __future__ import annotations

import gettext
from functools import cache
from pathlib import Path

DOMAIN = "reachwatch"
LOCALE_DIR = Path(__file__).resolve().parent / "locale"
LANGUAGES = ("en", "ru", "kk")
DEFAULT = "en"
# each language's own name, for the language switch
NATIVE_NAMES = {"en": "English", "ru": "Русский", "kk": "Қазақша"}


@cache
def translations(lang: str) -> gettext.NullTranslations:
    """The catalog for ``lang`` (English: the messages as written)."""
    if lang == DEFAULT or lang not in LANGUAGES:
        return gettext.NullTranslations()
    return gettext.translation(DOMAIN, localedir=str(LOCALE_DIR), languages=[lang])


def from_accept_language(header: str | None) -> str | None:
    """The best of ``LANGUAGES`` for an ``Accept-Language`` header, or None when none is acceptable."""
    if not header:
        return None
    best: tuple[float, int, str] | None = None
    for position, part in enumerate(header.split(",")[:32]):  # a header of thousands of ranges: enough
        tag, _, params = part.strip().partition(";")
        quality = 1.0
        for param in params.split(";"):
            name, _, value = param.strip().partition("=")
            if name == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        primary = tag.strip().lower().split("-")[0]
        if primary in LANGUAGES and quality > 0 and (best is None or (quality, -position) > best[:2]):
            best = (quality, -position, primary)
    return best[2] if best else None


def choose(query: str | None, configured: str, accept_language: str | None) -> str:
    """The page's language: ``?lang=``, else the configured one (unless ``auto``), else the browser's."""
    if query in LANGUAGES:
        return query
    if configured in LANGUAGES:
        return configured
    return from_accept_language(accept_language) or DEFAULT
