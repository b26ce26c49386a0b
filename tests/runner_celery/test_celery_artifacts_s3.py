"""Workers with artifacts in object storage: no filesystem is shared with the control plane that reads them."""

from __future__ import annotations

import hashlib

import pytest
from tests.conftest import S3
from tests.runner_celery.conftest import Deploy, control_plane, ready

from testgate.platform import artifacts

pytestmark = [pytest.mark.postgres, pytest.mark.rabbitmq]

WORKER = "s3@tests"


async def test_a_worker_keeps_artifacts_in_s3_that_the_control_plane_reads_back(deploy: Deploy, s3: S3) -> None:
    deployment, workers = await deploy()
    deployment.artifacts = s3.settings()
    workers.start(WORKER)
    await ready(deployment, WORKER)
    assert deployment.worker_data_dir != deployment.data_dir

    async with control_plane(deployment) as cp:
        execution_id = await cp.start(
            [{"name": "report", "shell": "mkdir -p reports && seq 1 500 > reports/numbers.txt"}],
            name="numbers",
            artifacts={"paths": ["reports/**"]},
        )
        done = await cp.finished(execution_id)
        async with cp.platform.db.session() as session:
            row = await artifacts.artifact_row(session, execution_id, "reports/numbers.txt")
            found = await artifacts.read_artifact(
                cp.platform, session, execution_id, "reports/numbers.txt", grep="^25[0-2]$"
            )

    stored, metadata = s3.get(f"{execution_id}/reports/numbers.txt")
    assert done.row.status == "passed"
    assert "artifacts: kept 1 file(s) matching reports/**" in done.texts
    assert stored == "".join(f"{i}\n" for i in range(1, 501)).encode()
    assert metadata == {"sha256": hashlib.sha256(stored).hexdigest()} == {"sha256": row.sha256}
    assert (found.content, found.matches, found.total_lines) == ("250:250\n251:251\n252:252\n", 3, 500)
    # Neither side wrote artifacts to a directory: the bucket is the only place they are.
    assert not (deployment.data_dir / "artifacts").exists()
    assert not (deployment.worker_data_dir / "artifacts").exists()
