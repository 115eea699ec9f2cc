# ruff: noqa: RUF001 - Russian and Kazakh text: Cyrillic letters are meant
"""Block pages: decoded like a browser would, patterns case-insensitive Unicode, the built-in set with a
test page each, comparison with the reference's page, and patterns that cannot match as written."""

from __future__ import annotations

import time
from io import StringIO
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reachwatch.cli import main
from reachwatch.config.targets.http import pattern_problem
from reachwatch.failures import Failure, Stage, Technique, VantageState, Verdict
from reachwatch.formats import blockpage
from reachwatch.model import FactValue, Observation, ProbeResult
from reachwatch.state import Outcome
from reachwatch.verdict import judge

PAGES = Path(__file__).parent / "testdata" / "blockpages"
RU = "Доступ к ресурсу заблокирован по решению суда"


@pytest.mark.parametrize(
    ("body", "content_type", "charset"),
    [
        (RU.encode("utf-8"), "text/html; charset=utf-8", "utf-8"),
        (RU.encode("cp1251"), "text/html; charset=windows-1251", "cp1251"),
        (RU.encode("cp1251"), 'text/html; charset="CP1251"', "cp1251"),
        (b'<meta charset="windows-1251">' + RU.encode("cp1251"), "text/html", "cp1251"),
        (
            b'<meta http-equiv="Content-Type" content="text/html; charset=koi8-r">' + RU.encode("koi8-r"),
            None,
            "koi8-r",
        ),
        (RU.encode("utf-8"), None, "utf-8"),  # undeclared, valid UTF-8
        (b"\xef\xbb\xbf" + RU.encode("utf-8"), None, "utf-8-sig"),
        # undeclared and not UTF-8: detected (a longer text, as a real page is)
        ((RU + ". " + "Уважаемый абонент, обратитесь к провайдеру. " * 5).encode("cp1251"), None, "cp1251"),
        # a charset Python does not know falls through to the next step
        (RU.encode("utf-8"), "text/html; charset=x-unknown", "utf-8"),
    ],
)
def test_the_body_is_decoded_with_the_charset_a_browser_would_use(
    body: bytes, content_type: str | None, charset: str
) -> None:
    text, used = blockpage.decode_body(body, content_type)
    assert used == charset
    assert "заблокирован" in text


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=3000), st.none() | st.text(max_size=60))
def test_any_body_and_content_type_decode_without_raising(body: bytes, content_type: str | None) -> None:
    text, _ = blockpage.decode_body(body, content_type)
    blockpage.find_fingerprint(text, None)
    blockpage.has_markers(text, None)
    assert len(blockpage.simhash(text)) == 16


def test_operator_patterns_match_decoded_text_case_insensitively_and_entities() -> None:
    patterns = blockpage.compile_patterns(["заблокирован", "ACCESS DENIED"])
    for body, ctype in (
        (RU.encode("utf-8"), "text/html; charset=utf-8"),
        (RU.upper().encode("cp1251"), "text/html; charset=windows-1251"),
        (
            b"&#1079;&#1072;&#1073;&#1083;&#1086;&#1082;&#1080;&#1088;&#1086;&#1074;&#1072;&#1085;",
            None,
        ),
        (b"<p>Access  Denied</p>", None),  # case, and the reader's single space
    ):
        text, _ = blockpage.decode_body(body, ctype)
        assert blockpage.matches(patterns, text.replace("  ", " "), None), body
    assert blockpage.matches(patterns, "", "http://isp.example/ЗАБЛОКИРОВАН")
    assert not blockpage.matches(patterns, "обычная страница", None)


@pytest.mark.parametrize(
    ("page", "name"),
    [
        ("ru-149fz.utf-8.html", "ru-149fz"),
        ("ru-149fz.cp1251.html", "ru-149fz"),
        ("kz-restricted.html", "kz-restricted"),
        ("vendor-fortiguard.html", "vendor-fortiguard"),
        ("vendor-paloalto.html", "vendor-paloalto"),
        ("vendor-netsweeper.html", "vendor-netsweeper"),
        ("vendor-bluecoat.html", "vendor-bluecoat"),
        ("vendor-sophos.html", "vendor-sophos"),
    ],
)
def test_every_built_in_fingerprint_recognises_its_test_page(page: str, name: str) -> None:
    text, _ = blockpage.decode_body((PAGES / page).read_bytes(), "text/html")
    found = blockpage.find_fingerprint(text, None)
    assert found is not None and found.name == name


@pytest.mark.parametrize(
    "text",
    [
        "Доступ к информационному ресурсу ограничен на основании Федерального закона от 27.07.2006 № 149-ФЗ",
        "Ресурс заблокирован. Основание: 149-ФЗ, ст. 15.1; ограничен по решению Роскомнадзора",
    ],
)
def test_the_rkn_wording_is_recognised_without_the_registry_link(text: str) -> None:
    found = blockpage.find_fingerprint(f"<p>{text}</p>", None)
    assert found is not None and found.name == "ru-149fz"


def test_every_fingerprint_has_a_test_page() -> None:
    tested = {p.name.split(".")[0] for p in PAGES.iterdir() if not p.name.startswith("ordinary")}
    assert {fp.name for fp in blockpage.FINGERPRINTS} <= tested


@pytest.mark.parametrize("page", ["ordinary-news.cp1251.html", "ordinary-shop.html"])
def test_ordinary_pages_about_blocking_are_no_fingerprint_only_markers(page: str) -> None:
    text, _ = blockpage.decode_body((PAGES / page).read_bytes(), None)
    assert blockpage.find_fingerprint(text, None) is None
    assert blockpage.has_markers(text, None)


def test_a_redirect_to_a_censors_host_is_a_block_page() -> None:
    found = blockpage.find_fingerprint("", "http://warning.rt.ru/?id=17&url=example.org")
    assert found is not None and found.name == "ru-149fz"
    assert blockpage.find_fingerprint("", "https://www.example.org/login") is None


def test_simhash_is_near_for_the_same_page_and_far_for_a_block_page() -> None:
    article = " ".join(f"word{i} text{i % 7} body{i % 3}" for i in range(300))
    same = article.replace("word5 ", "word5b ", 1)
    block = (PAGES / "ru-149fz.utf-8.html").read_text(encoding="utf-8")
    near = blockpage.simhash_distance(blockpage.simhash(article), blockpage.simhash(same))
    far = blockpage.simhash_distance(blockpage.simhash(article), blockpage.simhash(block))
    assert near is not None and far is not None and near <= 6 < 20 <= far


def _page(success: bool = True, **facts: FactValue) -> ProbeResult:
    return ProbeResult(
        target="site",
        kind="http",
        started_at=time.time(),
        duration_s=0.2,
        success=success,
        failure=None if success else Failure.HTTP_UNEXPECTED_STATUS_CODE,
        stage=None if success else Stage.HTTP,
        facts=facts,
    )


def _reference(**facts: FactValue) -> Observation:
    return Observation(reference="abroad", target="site", observed_at=time.time(), success=True, facts=facts)


REAL = {"status": 200, "title": "News", "body_bytes": 50_000, "simhash": "0f0f0f0f0f0f0f0f"}
BLOCK = {"status": 200, "title": "Доступ ограничен", "body_bytes": 900, "simhash": "f0f0f0f0f0f0f0f0"}


@pytest.mark.parametrize(
    ("result", "reference", "expected"),
    [
        # markers, and the page is not what the reference fetched: the censor's page
        (
            _page(**BLOCK, blockpage_markers=True),
            _reference(**REAL),
            Outcome(Verdict.BLOCKED, Technique.HTTP_BLOCKPAGE),
        ),
        (
            _page(False, **{**BLOCK, "status": 403}, blockpage_markers=True),
            _reference(**REAL),
            Outcome(Verdict.BLOCKED, Technique.HTTP_BLOCKPAGE),
        ),
        # the same page as the reference's (an article about blocking): reachable
        (_page(**REAL, blockpage_markers=True), _reference(**REAL), Outcome(Verdict.REACHABLE)),
        # a different page without markers (a redesign): reachable
        (_page(**BLOCK), _reference(**REAL), Outcome(Verdict.REACHABLE)),
        # markers but no reference, or a reference that failed: nothing to compare with
        (_page(**BLOCK, blockpage_markers=True), None, Outcome(Verdict.REACHABLE)),
        (
            _page(**BLOCK, blockpage_markers=True),
            Observation(reference="abroad", target="site", observed_at=time.time(), success=False),
            Outcome(Verdict.REACHABLE),
        ),
    ],
)
def test_a_page_with_markers_that_differs_from_the_references_is_a_block_page(
    result: ProbeResult, reference: Observation | None, expected: Outcome
) -> None:
    outcome = judge(result, role=None, vantage=VantageState.ONLINE, reference=reference)
    assert outcome == expected
    if expected.verdict is Verdict.BLOCKED:
        assert outcome.reference is reference and outcome.evidence["reference_title"] == "News"


@pytest.mark.parametrize(
    ("pattern", "problem"),
    [
        ("заблокирован", None),
        ("access denied", None),
        ("Ð·Ð°Ð±Ð»Ð¾Ðº", "UTF-8 read as latin-1"),
        (r"\xd0\xb7\xd0\xb0", "escapes bytes"),
        ("(blocked)?", "empty string"),
        ("", "empty string"),
    ],
)
def test_patterns_that_cannot_match_as_written_are_named(pattern: str, problem: str | None) -> None:
    found = pattern_problem(pattern)
    assert (found is None) if problem is None else (found is not None and problem in found)


def test_validate_warns_in_one_line_and_exits_0(tmp_path: Path) -> None:
    config = tmp_path / "c.yaml"
    config.write_text(
        "targets:\n"
        "  - name: site\n    kind: http\n    url: http://example.org/\n"
        "    blockpage_patterns: ['Ð·Ð°Ð±Ð»Ð¾Ðº', 'заблокирован']\n"
    )
    out = StringIO()
    assert main(["validate", str(config)], out, StringIO()) == 0
    lines = out.getvalue().splitlines()
    assert len(lines) == 2 and "warning" in lines[0] and "blockpage_patterns[0]" in lines[0]
    assert "write 'заблок' instead" in lines[0] and lines[1].endswith("OK (targets and controls: 1)")
