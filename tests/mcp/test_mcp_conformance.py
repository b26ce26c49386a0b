"""The official MCP conformance suite against a live testgate server, at both protocol eras.

    conformance server --url <proxy>/organizations/acme/environments/dev/mcp --suite all --spec-version <era>

The suite (pinned, installed once into ``.tools/`` by ``tests/tooling.py``) runs every server scenario of
the era against the real application on a loopback port. It sends no credentials, so a ``HeaderProxy``
in front adds an API token and passes everything else through - the client's ``Host`` included, so
dns-rebinding-protection judges testgate, not the proxy. The results are held against
``conformance_baseline.toml``: an unlisted failure is a regression, a listed scenario or check that
passes (or that the suite no longer has) is a stale entry, and both fail the test.
"""

from __future__ import annotations

import json
import re
import subprocess
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import anyio
import pytest
from tests.conftest import service_unavailable
from tests.mcp.proxy import HeaderProxy, rewrite_head
from tests.tooling import CONFORMANCE, NODE22, ToolUnavailable, ensure, node_env

ERAS = ("2025-11-25", "2026-07-28")
BASELINE = Path(__file__).with_name("conformance_baseline.toml")
RUN_TIMEOUT = 120.0
SCENARIO_TIMEOUT_MS = 20_000
FAILING = frozenset({"FAILURE", "ERROR"})
# One results folder per scenario run: server-<scenario>-<ISO time with dashes>Z
_RUN_DIR = re.compile(r"server-(?P<scenario>.+)-\d{4}-\d{2}-\d{2}T\d{2}-\d{2}-\d{2}-\d{3}Z")
_LISTED = re.compile(r"^\s+- (?P<scenario>\S+) \[", re.MULTILINE)

Checks = list[dict[str, Any]]


@dataclass(frozen=True)
class Expected:
    """A baseline entry: the whole scenario fails (``reason``), or only the named ``checks`` do."""

    reason: str | None
    checks: Mapping[str, str]
    eras: frozenset[str] | None

    def applies_at(self, era: str) -> bool:
        return self.eras is None or era in self.eras


def load_baseline(text: str) -> dict[str, Expected]:
    """The baseline's entries by scenario; every entry must say why it is there."""
    entries: dict[str, Expected] = {}
    for scenario, entry in tomllib.loads(text).get("scenarios", {}).items():
        reason, checks, eras = entry.get("reason"), entry.get("checks", {}), entry.get("eras")
        if (reason is None) == (not checks):
            raise ValueError(f"{scenario}: give either a reason for the whole scenario or failing checks")
        if not all(isinstance(why, str) and why.strip() for why in [*checks.values(), reason or "-"]):
            raise ValueError(f"{scenario}: every entry needs a reason")
        entries[scenario] = Expected(reason, dict(checks), frozenset(eras) if eras is not None else None)
    return entries


def results_of(directory: Path) -> dict[str, Checks]:
    """The checks each scenario reported, from the suite's ``--output-dir``."""
    results: dict[str, Checks] = {}
    for checks in directory.glob("*/checks.json"):
        match = _RUN_DIR.fullmatch(checks.parent.name)
        if match is not None:
            results[match["scenario"]] = json.loads(checks.read_text())
    return results


def _failure(scenario: str, check: dict[str, Any]) -> str:
    message = check.get("errorMessage") or check.get("description") or ""
    return f"regression: {scenario} / {check['id']}: {message}"


def judge(era: str, listed: set[str], results: Mapping[str, Checks], baseline: Mapping[str, Expected]) -> list[str]:
    """Everything wrong with one era's run: regressions, stale baseline entries, scenarios without results."""
    problems: list[str] = []
    for scenario in sorted(listed):
        if scenario not in results:
            problems.append(f"missing: {scenario} produced no results")
            continue
        failed = {check["id"]: check for check in results[scenario] if check["status"] in FAILING}
        expected = baseline.get(scenario)
        if expected is None or not expected.applies_at(era):
            problems += [_failure(scenario, check) for check in failed.values()]
        elif expected.reason is not None:
            if not failed:
                problems.append(f"stale: {scenario} passes at {era}; remove it from the baseline")
        else:
            problems += [_failure(scenario, check) for name, check in failed.items() if name not in expected.checks]
            problems += [
                f"stale: {scenario} / {name} passes or is gone at {era}; remove it from the baseline"
                for name in expected.checks
                if name not in failed
            ]
    for scenario, expected in baseline.items():
        if expected.eras is not None and era in expected.eras and scenario not in listed:
            problems.append(f"stale: {scenario} is not in the suite at {era}; remove it from the baseline")
    return problems


def unknown_entries(listed: Mapping[str, set[str]], baseline: Mapping[str, Expected]) -> list[str]:
    """Baseline entries for scenarios the suite runs at none of the eras (renamed or removed)."""
    everywhere = set().union(*listed.values())
    return [
        f"stale: {scenario} is not in the suite at {', '.join(sorted(listed))}; remove it from the baseline"
        for scenario in sorted(baseline)
        if scenario not in everywhere
    ]


@dataclass(frozen=True)
class Suite:
    """The installed conformance CLI, the environment to run it in, and its server scenarios per era."""

    command: list[str]
    env: dict[str, str]
    listed: dict[str, set[str]]


@pytest.fixture(scope="module")
def suite() -> Suite:
    """Install (once) Node 22 and the pinned suite; a missing npm or registry counts as an absent service."""
    try:
        ensure(NODE22)
        command = [str(ensure(CONFORMANCE))]
        env = node_env()
    except ToolUnavailable as exc:
        service_unavailable("npm registry (MCP conformance suite)", str(exc))
    listed = {}
    for era in ERAS:
        done = subprocess.run(
            [*command, "list", "--server", "--spec-version", era],
            capture_output=True,
            text=True,
            env=env,
            timeout=60,
            check=True,
        )
        listed[era] = {match["scenario"] for match in _LISTED.finditer(done.stdout)}
        assert listed[era], done.stdout
    return Suite(command, env, listed)


@pytest.fixture(scope="module")
def baseline() -> dict[str, Expected]:
    return load_baseline(BASELINE.read_text())


@pytest.mark.slow
@pytest.mark.parametrize("era", ERAS)
async def test_testgate_passes_every_applicable_conformance_scenario(
    era: str, suite: Suite, baseline: dict[str, Expected], live: Any, admin: str, tmp_path: Path
) -> None:
    upstream = urlsplit(live.base)
    assert upstream.hostname is not None
    assert upstream.port is not None
    output = tmp_path / "results"
    async with HeaderProxy((upstream.hostname, upstream.port), {"Authorization": f"Bearer {admin}"}) as proxy:
        url = f"{proxy.base}/organizations/acme/environments/dev/mcp"
        arguments = ["server", "--url", url, "--suite", "all", "--spec-version", era]
        arguments += ["--timeout", str(SCENARIO_TIMEOUT_MS), "--output-dir", str(output)]
        with anyio.fail_after(RUN_TIMEOUT):
            done = await anyio.run_process([*suite.command, *arguments], env=suite.env, check=False)
    log = (done.stdout + done.stderr).decode(errors="replace")
    # 0: everything passed, 1: some check failed; anything else means the suite itself broke.
    assert done.returncode in (0, 1), log[-4000:]
    problems = judge(era, suite.listed[era], results_of(output), baseline)
    assert not problems, "\n".join(problems)


def test_every_baseline_entry_names_a_scenario_the_suite_still_runs(
    suite: Suite, baseline: dict[str, Expected]
) -> None:
    assert unknown_entries(suite.listed, baseline) == []


# The judging itself, on made-up results.

RUN = {
    "tools-list": [{"id": "tools-list", "status": "SUCCESS"}],
    "tools-call-image": [{"id": "tools-call-image", "status": "FAILURE", "errorMessage": "unknown tool"}],
    "caching": [
        {"id": "hints-tools", "status": "SUCCESS"},
        {"id": "hints-templates", "status": "FAILURE", "errorMessage": "-32601"},
    ],
}
FIXTURE_TOOL = Expected("fixture tool", {}, None)


def test_a_run_that_matches_its_baseline_has_no_problems() -> None:
    baseline = {"tools-call-image": FIXTURE_TOOL, "caching": Expected(None, {"hints-templates": "known"}, None)}
    assert judge("2026-07-28", set(RUN), RUN, baseline) == []


def test_an_unlisted_failure_is_a_regression() -> None:
    problems = judge("2026-07-28", set(RUN), RUN, {"tools-call-image": FIXTURE_TOOL})
    assert problems == ["regression: caching / hints-templates: -32601"]


def test_a_listed_scenario_or_check_that_passes_is_stale() -> None:
    baseline = {
        "tools-call-image": FIXTURE_TOOL,
        "tools-list": FIXTURE_TOOL,
        "caching": Expected(None, {"hints-templates": "known", "hints-tools": "known"}, None),
    }
    assert judge("2026-07-28", set(RUN), RUN, baseline) == [
        "stale: caching / hints-tools passes or is gone at 2026-07-28; remove it from the baseline",
        "stale: tools-list passes at 2026-07-28; remove it from the baseline",
    ]


def test_an_entry_for_another_era_does_not_excuse_a_failure() -> None:
    baseline = {"tools-call-image": Expected("fixture tool", {}, frozenset({"2025-11-25"}))}
    problems = judge("2026-07-28", {"tools-call-image"}, RUN, baseline)
    assert problems == ["regression: tools-call-image / tools-call-image: unknown tool"]


def test_a_listed_scenario_the_suite_no_longer_has_is_stale() -> None:
    pinned = {"gone": Expected("fixture tool", {}, frozenset({"2026-07-28"}))}
    assert judge("2026-07-28", set(), {}, pinned) == [
        "stale: gone is not in the suite at 2026-07-28; remove it from the baseline"
    ]
    assert unknown_entries({"2025-11-25": {"ping"}}, {"gone": FIXTURE_TOOL}) == [
        "stale: gone is not in the suite at 2025-11-25; remove it from the baseline"
    ]


def test_a_scenario_without_results_is_a_problem() -> None:
    assert judge("2026-07-28", {"ping"}, {}, {}) == ["missing: ping produced no results"]


def test_every_baseline_entry_gives_its_reason() -> None:
    entries = load_baseline(BASELINE.read_text())
    assert entries
    with pytest.raises(ValueError, match="reason"):
        load_baseline('[scenarios.ping]\nreason = " "\n')
    with pytest.raises(ValueError, match="either"):
        load_baseline("[scenarios.ping]\neras = []\n")


def test_the_proxy_sets_its_header_and_passes_the_rest_of_the_head_as_sent() -> None:
    # The Host stays the client's, so the server's DNS-rebinding check sees what the suite sent.
    head = b"POST /mcp HTTP/1.1\r\nHost: evil.example\r\nauthorization: Basic x\r\nContent-Length: 5\r\n\r\n"
    rewritten, length, chunked = rewrite_head(head, {"Authorization": "Bearer tgp_t"})
    assert rewritten == (
        b"POST /mcp HTTP/1.1\r\nHost: evil.example\r\nContent-Length: 5\r\nAuthorization: Bearer tgp_t\r\n\r\n"
    )
    assert (length, chunked) == (5, False)
    assert rewrite_head(b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n", {})[1:] == (None, True)
