"""JUnit XML parsing: real reports from many tools, hostile XML refused, sizes bounded."""

from __future__ import annotations

import codecs
import re
from collections import Counter
from pathlib import Path

import pytest

from testgate.config import Settings
from testgate.errors import InvalidInput, LimitExceeded
from testgate.platform import junit
from testgate.platform.junit import parse_junit, report_text

CORPUS = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "junit"
CORPUS_FILES = sorted(p for p in CORPUS.rglob("*") if p.is_file())

# Files in the corpus that are not a JUnit report one may safely read, and why they are refused.
REFUSED = {
    "testXxe-xxe.xml": "uses a DTD/entities, which are refused",
    "testXxe-oob.xml": "uses a DTD/entities, which are refused",
    "LICENSE": "not well-formed XML",
    "README.md": "not well-formed XML",
}

# (total, passed, failed, errored, skipped) as the report bodies state them. Where a file's header
# disagrees with its body, the body wins, as in the Jenkins plugin: JENKINS-42438 declares skipped="2"
# over three <skipped/> cases, errror-details declares tests="2" over one case, gh-237 counts reruns.
EXPECTED = {
    "junit-report-errror-details.xml": (1, 0, 0, 1, 0),
    "junit-report-nested-testsuites.xml": (3, 2, 0, 1, 0),
    "junit-report-empty-testcasename.xml": (1, 0, 1, 0, 0),
    "junit-report-bad-duration.xml": (2, 2, 0, 0, 0),
    "junit-report-huge.xml": (7580, 5131, 19, 0, 2430),
    "eclipse-plugin-test-report.xml": (3366, 3366, 0, 0, 0),
    "junit-report-1472.xml": (2653, 2652, 1, 0, 0),
    "JENKINS-42438_junit-report-1.xml": (11, 8, 0, 0, 3),
    "junit-report-20090516.xml": (8, 5, 0, 3, 0),
    "junit-report-6700.xml": (1, 0, 0, 1, 0),
    "TEST-null.xml": (1, 0, 0, 1, 0),
    "JENKINS-30413.xml": (2, 1, 1, 0, 0),
    "SKIPPED_MESSAGE_skippedTestResult.xml": (1, 0, 0, 0, 1),
    "SKIPPED_MESSAGE_afterSkippedResult.xml": (1, 0, 0, 1, 0),
    "junit-report-testsuite-time-attrs.xml": (8, 8, 0, 0, 0),
    "junit-report-testsuite-various-timestamps.xml": (12, 12, 0, 0, 0),
    "JENKINS-48583_TESTS-TestSuites.xml": (3, 3, 0, 0, 0),
    "gh-237_TEST-io.olamy.FlakyTest.xml": (1, 1, 0, 0, 0),
    "gh-237_TEST-io.olamy.AlwaysFailTest.xml": (1, 0, 1, 0, 0),
    "pipeline_ageReset-1.xml": (1, 0, 1, 0, 0),
}


def counts(results: list[junit.ParsedResult]) -> tuple[int, int, int, int, int]:
    c = Counter(r.status for r in results)
    return len(results), c["passed"], c["failed"], c["errored"], c["skipped"]


def by_name(name: str) -> bytes:
    return next(p for p in CORPUS_FILES if p.name == name).read_bytes()


def test_the_corpus_is_there_with_its_attack_files() -> None:
    names = {p.name for p in CORPUS_FILES}
    assert len(CORPUS_FILES) >= 50
    assert set(REFUSED) <= names
    assert set(EXPECTED) <= names


@pytest.mark.parametrize("path", CORPUS_FILES, ids=lambda p: p.name)
def test_every_corpus_file_parses_or_is_refused_for_a_named_reason(path: Path) -> None:
    data = path.read_bytes()
    if path.name in REFUSED:
        with pytest.raises(InvalidInput, match=REFUSED[path.name]):
            parse_junit(data, source=path.name)
        return
    results = parse_junit(data, source=path.name)
    assert results
    for r in results:
        assert r.status in junit.STATUSES
        assert r.name
        assert 0 <= r.duration_ms <= junit.MAX_DURATION_MS
        assert len(r.message) <= junit.MAX_MESSAGE
        assert len(r.trace) <= junit.MAX_TRACE
    if path.name in EXPECTED:
        assert counts(results) == EXPECTED[path.name]


def test_xxe_files_are_refused_without_reaching_out(tmp_path: Path) -> None:
    # CWE-611 XXE: external entities are never resolved; the DTD is refused before any is declared.
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP-SECRET")
    attack = (
        f'<?xml version="1.0"?><!DOCTYPE testsuite [<!ENTITY x SYSTEM "file://{secret}">]>'
        '<testsuite><testcase name="t"><failure message="&x;"/></testcase></testsuite>'
    ).encode()
    with pytest.raises(InvalidInput, match="DTD/entities") as caught:
        parse_junit(attack, source="attack.xml")
    assert "TOP-SECRET" not in str(caught.value)
    assert str(caught.value).startswith("attack.xml: ")


def test_billion_laughs_is_refused() -> None:
    # CWE-776 entity expansion ("billion laughs"): refused at the DTD, nothing is expanded.
    lines = ['<!ENTITY lol0 "lol">']
    lines += [f'<!ENTITY lol{i} "{("&lol" + str(i - 1) + ";") * 10}">' for i in range(1, 10)]
    bomb = f"<?xml version='1.0'?><!DOCTYPE testsuite [{''.join(lines)}]><testsuite>&lol9;</testsuite>"
    with pytest.raises(InvalidInput, match="DTD/entities"):
        parse_junit(bomb.encode())


def test_a_doctype_without_entities_is_refused_too() -> None:
    # CWE-611: no JUnit producer writes a DTD, so any DOCTYPE is refused rather than inspected.
    with pytest.raises(InvalidInput, match="DTD/entities"):
        parse_junit(b'<!DOCTYPE testsuite SYSTEM "http://example.invalid/junit.dtd"><testsuite/>')


def test_malformed_xml_is_refused_with_the_parser_message() -> None:
    with pytest.raises(InvalidInput, match="not well-formed XML: mismatched tag: line 1"):
        parse_junit(b"<testsuite><testcase></testsuite>", source="bad.xml")


def test_an_unknown_declared_encoding_is_refused() -> None:
    with pytest.raises(InvalidInput, match="cannot be read: unknown encoding: klingon"):
        parse_junit(b'<?xml version="1.0" encoding="klingon"?><testsuite/>')


def test_a_document_that_is_not_junit_is_refused() -> None:
    with pytest.raises(InvalidInput, match=r"root element is <html>"):
        parse_junit(b"<html><body/></html>")


def test_data_larger_than_the_junit_limit_is_refused(settings: Settings) -> None:
    limit = settings.runner.max_junit_bytes
    data = b"<testsuite>" + b" " * limit + b"</testsuite>"
    with pytest.raises(LimitExceeded, match=f"the limit is {limit}"):
        parse_junit(data, source="big.xml", max_bytes=limit)


def test_a_report_with_too_many_cases_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(junit, "MAX_CASES", 10)
    data = b"<testsuite>" + b'<testcase name="t"/>' * 11 + b"</testsuite>"
    with pytest.raises(LimitExceeded, match="more than 10 test cases"):
        parse_junit(data)


def test_nested_suites_name_each_case_by_its_innermost_suite() -> None:
    results = parse_junit(by_name("junit-report-nested-testsuites.xml"))
    assert [(r.suite, r.name, r.status) for r in results] == [
        ("test.fs.FileSystemTest", "testPrefix", "passed"),
        ("test.3rdlevel", junit.SUITE_CASE, "errored"),
        ("test.db.DatabaseTest", "testTable", "passed"),
    ]
    assert results[1].message == "bla bla"
    assert results[1].trace.startswith("java.lang.IllegalStateException: bla bla")


def test_an_empty_test_name_gets_a_placeholder_and_the_type_becomes_the_message() -> None:
    (result,) = parse_junit(by_name("junit-report-empty-testcasename.xml"))
    assert result.name == junit.UNNAMED
    assert result.classname == "test.TestJUnit5FailingInBeforeAll"
    assert result.message == "org.opentest4j.AssertionFailedError"
    assert "Failure in @BeforeAll method" in result.trace
    assert result.duration_ms == 16


def test_bad_durations_count_as_zero_and_thousands_separators_are_read() -> None:
    first, second = parse_junit(by_name("junit-report-bad-duration.xml"))
    assert (first.duration_ms, second.duration_ms) == (0, 100_000)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("1,234.5", 1_234_500),
        ("abc", 0),
        ("", 0),
        (None, 0),
        ("-345345", 0),
        ("nan", 0),
        ("inf", junit.MAX_DURATION_MS),
        ("1e300", junit.MAX_DURATION_MS),
        (" 0.002 ", 2),
    ],
)
def test_durations_are_tolerant(raw: str | None, expected: int) -> None:
    assert junit.duration_ms(raw) == expected


def test_a_missing_classname_falls_back_to_the_suite_name() -> None:
    (result,) = parse_junit(b'<testsuite name="S"><testcase name="t"/></testsuite>')
    assert (result.suite, result.classname, result.name) == ("S", "S", "t")


def test_messages_and_traces_are_bounded() -> None:
    message, trace = "m" * 10_000, "t" * 200_000
    data = f'<testsuite><testcase name="t"><failure message="{message}">{trace}</failure></testcase></testsuite>'
    (result,) = parse_junit(data.encode())
    assert len(result.message) <= junit.MAX_MESSAGE
    assert len(result.trace) <= junit.MAX_TRACE
    assert result.trace.endswith("more characters cut]")


def test_a_skip_body_becomes_its_message() -> None:
    (result,) = parse_junit(by_name("SKIPPED_MESSAGE_skippedTestResult.xml"))
    assert result.status == "skipped"
    assert result.message.startswith("Given skip This Test")


def test_a_flaky_pass_stays_passed_and_says_it_was_rerun() -> None:
    (result,) = parse_junit(by_name("gh-237_TEST-io.olamy.FlakyTest.xml"))
    assert result.status == "passed"
    assert result.message == "flaky: passed after 2 failed attempt(s); first: obvious fail"
    assert result.trace.startswith("junit.framework.AssertionFailedError: obvious fail")


def test_a_failure_that_failed_its_reruns_too_stays_failed() -> None:
    (result,) = parse_junit(by_name("gh-237_TEST-io.olamy.AlwaysFailTest.xml"))
    assert result.status == "failed"
    assert result.message == "built to fail [also failed 3 rerun(s)]"
    assert result.trace.startswith("junit.framework.AssertionFailedError: built to fail")


def test_the_file_attribute_is_kept_and_windows_line_ends_are_normalised() -> None:
    data = (
        b'<testsuites><testsuite name="s"><testcase classname="c" name="n" file="tests/test_x.py">'
        b'<error type="E">line one&#13;\nline two</error></testcase></testsuite></testsuites>'
    )
    (result,) = parse_junit(data)
    assert (result.file, result.status, result.message) == ("tests/test_x.py", "errored", "E")
    assert result.trace == "line one\nline two"


def test_a_latin1_report_is_decoded_from_its_declaration() -> None:
    data = '<?xml version="1.0" encoding="ISO-8859-1"?><testsuite><testcase name="café"/></testsuite>'
    (result,) = parse_junit(data.encode("latin-1"))
    assert result.name == "café"


LATIN1 = (
    '<?xml version="1.0" encoding="ISO-8859-1"?><testsuite name="s"><testcase classname="c" name="café"/></testsuite>'
)


@pytest.mark.parametrize(
    ("data", "why"),
    [
        (LATIN1.encode("iso-8859-1"), "the declared encoding"),
        (codecs.BOM_UTF16_LE + LATIN1.replace("ISO-8859-1", "UTF-16").encode("utf-16-le"), "a UTF-16 byte order mark"),
        (codecs.BOM_UTF8 + LATIN1.replace("ISO-8859-1", "UTF-8").encode(), "a UTF-8 byte order mark"),
        (LATIN1.replace(' encoding="ISO-8859-1"', "").encode(), "no declaration: UTF-8"),
        (codecs.BOM_UTF32_LE + LATIN1.replace("ISO-8859-1", "UTF-32").encode("utf-32-le"), "a UTF-32 byte order mark"),
        (LATIN1.replace("ISO-8859-1", "windows-1252").encode("cp1252"), "Windows-1252, declared"),
    ],
    ids=["latin-1", "utf-16", "utf-8-bom", "undeclared", "utf-32", "cp1252"],
)
def test_a_report_reads_as_text_in_the_encoding_it_declares_and_parses_back_the_same(data: bytes, why: str) -> None:
    text = report_text(data, "j.xml")

    (result,) = parse_junit(text.encode(), source="j.xml")  # uploads carry the text on as UTF-8
    assert result.name == "café", why


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b'<?xml version="1.0" encoding="klingon-8"?><testsuite/>', "an encoding testgate does not read, 'klingon-8'"),
        # punycode's decoder takes time growing with the square of the input: a declaration may not choose it.
        (b'<?xml version="1.0" encoding="punycode"?>-' + b"a" * 1_000_000, "does not read, 'punycode'"),
        (b'<?xml version="1.0" encoding="idna"?><testsuite/>', "does not read, 'idna'"),
        (b'<?xml version="1.0"?><testsuite name="\xe9"/>', "is not utf-8 text"),
    ],
)
def test_a_report_in_no_readable_encoding_is_invalid_input(data: bytes, message: str) -> None:
    with pytest.raises(InvalidInput, match=re.escape(message)):
        report_text(data, "j.xml")
