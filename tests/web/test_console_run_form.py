"""The run form: required parameters say so, and a refused run comes back with what was typed and why."""

from __future__ import annotations

import re

import httpx
import pytest
from tests.web.conftest import MakeUser, SignIn, hidden

from testgate.access.principal import Permission
from testgate.operations.context import Call
from testgate.operations.dispatch import dispatch
from testgate.platform.context import Platform

PARAMETERS = """\
kind: TestWorkflow
metadata: {name: deploy}
spec:
  config:
    target: {type: string, description: "where to deploy"}
    region: {type: string, default: eu}
    password: {type: string, sensitive: true}
    retries: {type: integer}
    mode: {type: string, enum: [fast, slow]}
  steps:
    - name: deploy
      shell: echo deploying
"""


@pytest.fixture
async def run_form(
    client: httpx.AsyncClient, make_user: MakeUser, signed_in: SignIn, platform: Platform, call: Call
) -> str:
    """The deploy workflow's page, as ada (run permission in dev) sees it."""
    await dispatch(platform, call, "workflow.create", {"definition": PARAMETERS})
    await make_user("ada@example.com", grants={"dev": Permission.RUN})
    await signed_in(client, "ada@example.com")
    return (await client.get("/ui/acme/dev/workflows/deploy")).text


def _field(page: str, name: str) -> str:
    match = re.search(rf'<(?:input|select) name="{re.escape(name)}"[^>]*>', page)
    assert match, f"no field {name}"
    return match[0]


async def test_a_parameter_without_a_default_is_a_required_field_of_the_run_form(run_form: str) -> None:
    page = run_form
    for name in ("target", "password", "retries", "mode"):
        assert " required" in _field(page, f"config.{name}"), name
    assert " required" not in _field(page, "config.region")


async def test_a_refused_run_shows_the_form_again_with_what_was_typed_but_secrets_and_each_fields_problem(
    client: httpx.AsyncClient, run_form: str, platform: Platform, call: Call
) -> None:
    form = run_form
    typed = {
        "csrf": hidden(form, "csrf"),
        "config.target": "staging-7",
        "config.region": "us",
        "config.password": "hunter2-secret",
        "config.retries": "",
        "config.mode": "slow",
        "tags": "branch=main, bad key=x",
    }
    answer = await client.post("/ui/acme/dev/workflows/deploy/run", data=typed)
    assert answer.status_code == 422
    assert answer.headers["content-type"].startswith("text/html")
    page = answer.text
    assert 'id="run-form"' in page
    assert 'value="staging-7"' in _field(page, "config.target")
    assert 'value="us"' in _field(page, "config.region")
    assert "hunter2-secret" not in page
    assert 'aria-invalid="true"' in _field(page, "config.retries")
    assert 'aria-invalid="true"' in _field(page, "config.password")
    assert 'aria-invalid="true"' not in _field(page, "config.target")
    assert "<option selected>slow</option>" in page
    assert "required (no default)" in page
    assert 'value="branch=main, bad key=x"' in _field(page, "tags")
    assert (await dispatch(platform, call, "execution.list", {"workflow": "deploy"})).executions == []


async def test_tags_the_run_form_cannot_read_come_back_in_the_form_with_their_problem(
    client: httpx.AsyncClient, run_form: str
) -> None:
    form = run_form
    typed = {"csrf": hidden(form, "csrf"), "config.target": "t", "config.password": "p", "config.retries": "1"}
    answer = await client.post("/ui/acme/dev/workflows/deploy/run", data=typed | {"tags": "nightly"})
    assert answer.status_code == 422
    assert 'aria-invalid="true"' in _field(answer.text, "tags")
    assert 'value="nightly"' in _field(answer.text, "tags")
    assert 'value="t"' in _field(answer.text, "config.target")
