"""JUnit uploads over REST: multipart files or JSON, recorded as a finished execution; unsafe XML refused."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from testgate.config import Settings

API = "/api/v1/organizations/acme/environments/dev"
FAILING = b"""<?xml version="1.0" encoding="UTF-8"?>
<testsuites>
  <testsuite name="api">
    <testcase classname="api.Users" name="creates"/>
    <testcase classname="api.Users" name="deletes"><failure message="expected 204">trace</failure></testcase>
    <testcase classname="api.Users" name="skips"><skipped/></testcase>
  </testsuite>
</testsuites>
"""
PASSING = b'<testsuite name="ui"><testcase classname="ui.Login" name="works"/></testsuite>'
XXE = b"""<?xml version="1.0"?>
<!DOCTYPE testsuite [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<testsuite name="evil"><testcase classname="x" name="&xxe;"/></testsuite>
"""


async def test_a_multipart_upload_records_a_failed_execution_with_its_counts(
    client: httpx.AsyncClient, admin: dict[str, str]
) -> None:
    files = [("files", ("api.xml", FAILING, "application/xml")), ("files", ("ui.xml", PASSING, "application/xml"))]
    data = {"workflow": "nightly", "tags": ["branch=main", "ci=github"]}

    response = await client.post(f"{API}/results", files=files, data=data, headers=admin)

    assert response.status_code == 201, response.text
    summary = response.json()
    assert response.headers["location"] == f"{API}/executions/{summary['id']}"
    assert summary["status"] == "failed"
    assert summary["source"] == "upload"
    assert summary["tags"] == {"branch": "main", "ci": "github"}
    assert summary["tests"] == {"total": 4, "passed": 2, "failed": 1, "skipped": 1, "errored": 0}


async def test_a_report_in_the_encoding_an_older_tool_declares_is_read_as_declared(
    client: httpx.AsyncClient, admin: dict[str, str]
) -> None:
    latin1 = (
        '<?xml version="1.0" encoding="ISO-8859-1"?>'
        '<testsuite name="s"><testcase classname="c" name="café"/></testsuite>'
    )
    files = [("files", ("old.xml", latin1.encode("iso-8859-1"), "application/xml"))]

    uploaded = await client.post(f"{API}/results", files=files, data={"workflow": "legacy"}, headers=admin)
    assert uploaded.status_code == 201, uploaded.text
    results = await client.get(f"{API}/executions/{uploaded.json()['id']}/results", headers=admin)

    assert [r["name"] for r in results.json()["results"]] == ["café"]


async def test_an_upload_with_a_dtd_is_refused_and_nothing_is_stored(
    client: httpx.AsyncClient, admin: dict[str, str]
) -> None:
    files = [("files", ("ok.xml", PASSING, "application/xml")), ("files", ("evil.xml", XXE, "application/xml"))]

    response = await client.post(f"{API}/results", files=files, data={"workflow": "nightly"}, headers=admin)
    listed = await client.get(f"{API}/executions", headers=admin)

    # CWE-611: DTDs and external entities are refused before anything is resolved.
    assert response.status_code == 422
    assert "DTD" in response.json()["detail"]
    assert listed.json()["executions"] == []


async def test_a_json_upload_records_a_passing_execution(client: httpx.AsyncClient, admin: dict[str, str]) -> None:
    body = {"workflow": "nightly", "files": [{"name": "ui.xml", "content": PASSING.decode()}]}

    response = await client.post(f"{API}/results", json=body, headers=admin)

    assert response.status_code == 201
    assert response.json()["status"] == "passed"


async def test_a_malformed_multipart_upload_names_the_bad_field(
    client: httpx.AsyncClient, admin: dict[str, str]
) -> None:
    files = [("files", ("ui.xml", PASSING, "application/xml"))]

    bad_tags = await client.post(
        f"{API}/results", files=files, data={"workflow": "nightly", "tags": ["ok=1", "nope"]}, headers=admin
    )
    no_name = await client.post(f"{API}/results", files=files, data={}, headers=admin)
    not_utf8 = await client.post(
        f"{API}/results",
        files=[("files", ("x.xml", b'<?xml version="1.0"?><x name="\xe9"/>', "application/xml"))],
        data={"workflow": "n"},
        headers=admin,
    )

    assert bad_tags.status_code == 422
    assert [e["path"] for e in bad_tags.json()["errors"]] == ["tags[1]"]
    assert no_name.status_code == 422
    assert [(e["path"], e["message"]) for e in no_name.json()["errors"]] == [("workflow", "Field required")]
    assert not_utf8.status_code == 422
    assert not_utf8.json()["detail"] == "file 'x.xml' is not utf-8 text (send the report in the encoding it declares)"


async def test_a_json_body_over_the_size_limit_is_refused_as_a_problem(
    client: httpx.AsyncClient, admin: dict[str, str], settings: Settings
) -> None:
    settings.max_upload_bytes = 1024
    body = {"workflow": "n", "files": [{"name": "big.xml", "content": " " * (300 * 1024)}]}

    async def chunks() -> AsyncIterator[bytes]:
        yield b'{"ids": ["'
        for _ in range(1100):  # past TESTGATE_HTTP__MAX_BODY_BYTES (1 MiB), with no Content-Length
            yield b"x" * 1024
        yield b'"]}'

    declared = await client.post(f"{API}/results", json=body, headers=admin)
    streamed = await client.post(f"{API}/wait", content=chunks(), headers={**admin, "Content-Type": "application/json"})

    assert declared.status_code == 413
    assert declared.headers["content-type"] == "application/problem+json"
    assert "content-length" not in streamed.request.headers
    assert streamed.status_code == 413
    assert streamed.json()["type"] == "https://testgate.dev/problems/limit-exceeded"


async def test_an_upload_over_the_size_limit_is_refused(client: httpx.AsyncClient, admin: dict[str, str]) -> None:
    huge = b"<testsuite>" + b" " * (21 * 1024 * 1024) + b"</testsuite>"

    response = await client.post(
        f"{API}/results", files=[("files", ("big.xml", huge, "application/xml"))], data={"workflow": "n"}, headers=admin
    )

    assert response.status_code == 413
    assert response.json()["type"] == "https://testgate.dev/problems/limit-exceeded"


async def test_only_the_upload_route_reads_an_upload_sized_body(
    client: httpx.AsyncClient, admin: dict[str, str]
) -> None:
    # TESTGATE_HTTP__MAX_BODY_BYTES bounds every other route: a 2 MiB tag patch was read and parsed whole.
    tags = {"k": "v" * (2 * 1024 * 1024)}

    patch = await client.patch(f"{API}/executions/nightly%231/tags", json={"tags": tags}, headers=admin)
    upload = await client.post(
        f"{API}/results",
        json={"workflow": "n", "files": [{"name": "a.xml", "content": "<testsuite/>" + " " * 2**21}]},
        headers=admin,
    )

    assert patch.status_code == 413, patch.text
    assert "the limit is 1048576" in patch.json()["detail"]
    assert upload.status_code == 201, upload.text


@pytest.mark.parametrize(
    ("files", "data", "path", "message"),
    [
        ([("report", ("a.xml", PASSING, "application/xml"))], {"workflow": "n"}, "report", "field named files"),
        ([("tags", ("a.xml", PASSING, "application/xml"))], {"workflow": "n"}, "tags", "field named files"),
        (
            [("files", ("a.xml", PASSING, "application/xml"))],
            {"workflow": "n", "files": "x"},
            "files",
            "expected a file",
        ),
        ([("files", ("a.xml", PASSING, "application/xml"))], {"workflow": ["n", "m"]}, "workflow", "more than once"),
        (
            [("files", ("a.xml", PASSING, "application/xml"))],
            {"workflow": "n", "tags": ["k=v", "k=w"]},
            "tags[1]",
            "given twice",
        ),
        ([("files", ("a.xml", PASSING, "application/xml"))], {"workflow": "n", "colour": "red"}, "colour", "unknown"),
    ],
)
async def test_a_form_part_out_of_place_is_refused_and_nothing_is_recorded(
    client: httpx.AsyncClient,
    admin: dict[str, str],
    files: list[Any],
    data: dict[str, Any],
    path: str,
    message: str,
) -> None:
    # A file under another name was ingested, a second workflow field overrode the first, a repeated tag
    # key kept its last value: each silently did something the sender did not name.
    response = await client.post(f"{API}/results", files=files, data=data, headers=admin)

    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert [(e["path"], message in e["message"]) for e in response.json()["errors"]] == [(path, True)]
    listed = await client.get(f"{API}/executions", headers=admin)
    assert listed.json()["executions"] == []
