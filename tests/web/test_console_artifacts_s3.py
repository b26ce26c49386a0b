"""The console with artifacts in S3-compatible storage: the preview reads the object, the download streams it."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import httpx
import pytest
from tests.conftest import S3
from tests.web.conftest import MakeUser, SignIn

from testgate.access.principal import Permission
from testgate.config import Settings
from testgate.operations.context import Call
from testgate.operations.dispatch import dispatch
from testgate.platform.context import Platform

REPORT = """\
kind: TestWorkflow
metadata: {name: report}
spec:
  steps:
    - name: write
      shell: mkdir -p out && for i in 1 2 3; do echo "result $i"; done > "out/résumé.txt"
  artifacts: {paths: ["out/*"]}
"""


@pytest.fixture
def settings(settings: Settings, s3: S3) -> Settings:
    return settings.model_copy(update={"artifacts": s3.settings()})


async def test_an_artifact_in_object_storage_previews_and_downloads_as_a_streamed_attachment(
    client: httpx.AsyncClient,
    make_user: MakeUser,
    signed_in: SignIn,
    executor: Any,
    platform: Platform,
    call: Call,
    s3: S3,
) -> None:
    await make_user("ada@example.com", grants={"dev": Permission.READ})
    await signed_in(client, "ada@example.com")
    await dispatch(platform, call, "workflow.create", {"definition": REPORT})
    run = await dispatch(platform, call, "workflow.run", {"name": "report"})
    await dispatch(platform, call, "execution.wait", {"ids": [run.id], "timeout": 30})
    base = f"/ui/acme/dev/executions/{run.id}/artifacts/{quote('out/résumé.txt')}"

    preview = await client.get(base)
    download = await client.get(base + "?download=1")

    assert preview.status_code == 200
    assert "result 2" in preview.text
    assert download.status_code == 200
    assert download.content == s3.get(f"{run.id}/out/résumé.txt")[0] == b"result 1\nresult 2\nresult 3\n"
    # RFC 6266 / RFC 5987: a name that is not plain ASCII travels percent-encoded as filename*.
    assert download.headers["content-disposition"] == "attachment; filename*=utf-8''r%C3%A9sum%C3%A9.txt"
    assert download.headers["content-length"] == "27"
    assert download.headers["content-security-policy"] == "sandbox; default-src 'none'"
    assert not platform.settings.artifacts_dir.exists()
