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
