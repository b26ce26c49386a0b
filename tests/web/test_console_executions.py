"""The execution pages on large runs: every failure reachable, every line of a long log reachable."""

from __future__ import annotations

import html
import re
from typing import Any

import httpx
from tests.web.conftest import MakeUser, SignIn

from testgate.access.principal import Permission
from testgate.operations.context import Call
from testgate.operations.dispatch import dispatch
from testgate.platform.context import Platform

CHATTY = """\
kind: TestWorkflow
metadata: {name: chatty}
spec:
  steps:
    - name: talk
      shell: seq 1 4500 | sed 's/^/out-/'
"""


def _junit(passed: int, failed: int = 0, errored: int = 0) -> str:
    """A report of ``passed`` passing tests, then ``failed`` failures and ``errored`` errors at its end."""
    cases = [f'<testcase classname="big" name="passes_{i}" time="0.001"/>' for i in range(passed)]
    cases += [
        f'<testcase classname="big" name="fails_{i}"><failure message="boom {i}">trace {i}</failure></testcase>'
        for i in range(failed)
    ]
    cases += [
        f'<testcase classname="big" name="errs_{i}"><error message="crash {i}">stack {i}</error></testcase>'
        for i in range(errored)
    ]
    return f'<testsuite name="big" tests="{len(cases)}">{"".join(cases)}</testsuite>'


async def _upload(platform: Platform, call: Call, report: str) -> Any:
    files = [{"name": "junit.xml", "content": report}]
    return await dispatch(platform, call, "results.upload", {"workflow": "ci", "files": files})


async def test_the_executions_list_counts_errored_tests_apart_from_failed_ones(
    client: httpx.AsyncClient, make_user: MakeUser, signed_in: SignIn, platform: Platform, call: Call
) -> None:
    await make_user("ada@example.com", grants={"dev": Permission.READ})
    await signed_in(client, "ada@example.com")
    await _upload(platform, call, _junit(3, failed=1, errored=2))
    page = await client.get("/ui/acme/dev/executions")
    assert '<span class="bad">1 failed</span>' in page.text
    assert '<span class="bad">2 errored</span>' in page.text
    assert "3 failed" not in page.text


def _next(page: str, anchor: str) -> str:
    match = re.search(rf'<a rel="next" href="([^"]*)" id="{anchor}">', page)
    assert match, f"no {anchor} link"
    return html.unescape(match[1])


async def test_a_large_runs_page_lists_its_failures_first_and_pages_through_every_other_test(
    client: httpx.AsyncClient, make_user: MakeUser, signed_in: SignIn, platform: Platform, call: Call
) -> None:
    await make_user("ada@example.com", grants={"dev": Permission.READ})
    await signed_in(client, "ada@example.com")
    run = await _upload(platform, call, _junit(1200, failed=15, errored=4))
    base = f"/ui/acme/dev/executions/{run.id}"
    page = await client.get(base)
    assert page.status_code == 200
    assert page.text.count('<li class="result r-failed') == 15  # all after the first 500 in report order
    assert page.text.count('<li class="result r-errored') == 4
    assert "boom 14" in page.text
    assert "stack 3" in page.text
    assert 'class="result r-passed' not in page.text
    assert "Failed and errored tests first: 19 of 1219." in page.text
    everything = await client.get(base, params={"tests": ""})
    assert everything.text.count('class="result r-passed') == 500
    listed = 500
    href = _next(everything.text, "results-next")
    while True:
        more = await client.get(base + href)
        listed += more.text.count('<li class="result r-')
        if 'id="results-next"' not in more.text:
            break
        href = _next(more.text, "results-next")
    assert listed == 1219
    passed = await client.get(base, params={"tests": "passed"})
    assert 'class="result r-failed' not in passed.text
    assert 'value="passed" checked' in passed.text


def _seqs(page: str) -> set[int]:
    return set(map(int, re.findall(r'data-seq="(\d+)"', page)))


def _link(page: str, anchor: str) -> str | None:
    match = re.search(rf'href="([^"]*)" id="{anchor}"', page)
    return html.unescape(match[1]) if match else None


async def test_every_line_of_a_long_log_is_reachable_from_the_execution_page_a_page_at_a_time(
    client: httpx.AsyncClient,
    make_user: MakeUser,
    signed_in: SignIn,
    platform: Platform,
    call: Call,
    executor: Any,
) -> None:
    await dispatch(platform, call, "workflow.create", {"definition": CHATTY})
    await make_user("ada@example.com", grants={"dev": Permission.READ})
    await signed_in(client, "ada@example.com")
    run = await dispatch(platform, call, "workflow.run", {"name": "chatty"})
    await dispatch(platform, call, "execution.wait", {"ids": [run.id], "timeout": 60})
    base = f"/ui/acme/dev/executions/{run.id}"
    page = (await client.get(base)).text
    total = re.search(r"Showing lines \d+\N{EN DASH}\d+ of (\d+)\.", page)
    assert total
    assert "out-4500\n" in page
    assert "out-1\n" not in page
    seen = _seqs(page)
    while earlier := _link(page, "log-earlier"):
        page = (await client.get(base + earlier)).text
        assert "data-stream" not in page
        seen |= _seqs(page)
    assert "out-1\n" in page
    assert seen == set(range(1, int(total[1]) + 1))
    later = _link(page, "log-later")
    assert later
    forward = (await client.get(base + later)).text
    assert min(_seqs(forward)) == max(_seqs(page)) + 1
