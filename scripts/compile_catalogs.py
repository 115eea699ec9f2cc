"""Keep the status page's gettext catalogs in step with the code (GNU gettext: xgettext, msgcmp, msgfmt).

    python scripts/compile_catalogs.py           # regenerate reachwatch.pot, compile every .po to .mo
    python scripts/compile_catalogs.py --check   # exit 1 if the .pot or a .mo is stale, or a message
                                                 # lacks a translation (tests/core/test_statuspage.py)

The messages are written in English in ``reachwatch/statuspage_html.py`` (``_``, ``N_``, ``ngettext``);
``locale/reachwatch.pot`` lists them, ``locale/<lang>/LC_MESSAGES/reachwatch.po`` translates them
(edited by hand; new messages: ``msgmerge --update --no-wrap <po> <pot>``, then translate and rerun).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LOCALE = ROOT / "daemon" / "reachwatch" / "locale"
SOURCES = [ROOT / "daemon" / "reachwatch" / "statuspage_html.py"]
LANGUAGES = ("ru", "kk")


def pot_text() -> str:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "reachwatch.pot"
        subprocess.run(
            ["xgettext", "--language=Python", "--keyword=_", "--keyword=N_", "--keyword=ngettext:1,2",
             "--from-code=UTF-8", "--no-location", "--sort-output", "--no-wrap", "--omit-header",
             "-o", str(out), *map(str, SOURCES)],
            check=True,
        )  # fmt: skip
        return out.read_text(encoding="utf-8")


def compiled(po: Path) -> bytes:
    with tempfile.TemporaryDirectory() as tmp:
        mo = Path(tmp) / "reachwatch.mo"
        result = subprocess.run(
            ["msgfmt", "--check", "--statistics", "-o", str(mo), str(po)],
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode != 0:
            raise SystemExit(f"{po}: {result.stderr.strip()}")
        # every message translated: no "untranslated" or "fuzzy" in msgfmt's count
        if "untranslated" in result.stderr or "fuzzy" in result.stderr:
            raise SystemExit(f"{po}: {result.stderr.strip()}")
        return mo.read_bytes()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--check", action="store_true")
    check = parser.parse_args().check
    problems = []
    pot = LOCALE / "reachwatch.pot"
    text = pot_text()
    if check and pot.read_text(encoding="utf-8") != text:
        problems.append(f"{pot} is stale: run scripts/compile_catalogs.py")
    elif not check:
        pot.write_text(text, encoding="utf-8")
    for lang in LANGUAGES:
        po = LOCALE / lang / "LC_MESSAGES" / "reachwatch.po"
        cmp = subprocess.run(["msgcmp", str(po), str(pot)], capture_output=True, text=True, check=False)
        if cmp.returncode != 0:
            problems.append(f"{po}: messages missing: {cmp.stderr.strip()}")
            continue
        mo = po.with_suffix(".mo")
        data = compiled(po)
        if check and (not mo.exists() or mo.read_bytes() != data):
            problems.append(f"{mo} is stale: run scripts/compile_catalogs.py")
        elif not check:
            mo.write_bytes(data)
    for problem in problems:
        print(problem, file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
