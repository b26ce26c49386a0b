"""Queue routing by labels, and the sealing of sensitive values in task messages (no services needed)."""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography.fernet import Fernet
from pydantic import ValidationError

from testgate.config import CelerySettings, Settings
from testgate.errors import InvalidInput, RunnerError
from testgate.runner.celery_app import (
    KEY_FILE,
    MAX_QUEUE_NAME,
    SecretBox,
    create_celery,
    parse_labels,
    target_queue,
    worker_queues,
)


def test_a_worker_consumes_the_default_queue_and_one_per_subset_of_its_labels() -> None:
    assert worker_queues("tg", {"os": "linux", "gpu": "true"}) == [
        "tg.default",
        "tg.match.gpu=true",
        "tg.match.os=linux",
        "tg.match.gpu=true,os=linux",
    ]
    assert len(worker_queues("tg", {f"k{i}": "v" for i in range(4)})) == 1 + 15


@pytest.mark.parametrize(
    ("target", "worker", "matches"),
    [
        ({}, {}, True),
        ({}, {"gpu": "true"}, True),
        ({"gpu": "true"}, {"gpu": "true", "os": "linux"}, True),
        ({"os": "linux", "gpu": "true"}, {"gpu": "true", "os": "linux", "arch": "arm64"}, True),
        ({"gpu": "true"}, {}, False),
        ({"gpu": "true"}, {"gpu": "false"}, False),
        ({"gpu": "true", "os": "linux"}, {"gpu": "true"}, False),
    ],
)
def test_an_execution_reaches_exactly_the_workers_that_have_all_its_labels(
    target: dict[str, str], worker: dict[str, str], matches: bool
) -> None:
    assert (target_queue("tg", target) in worker_queues("tg", worker)) is matches


def test_a_target_longer_than_an_amqp_name_gets_a_digest_both_sides_agree_on() -> None:
    labels = {f"key{i}": "v" * 63 for i in range(4)}

    name = target_queue("tg", labels)

    assert name.startswith("tg.match.sha256-")
    assert len(name) <= MAX_QUEUE_NAME
    assert name in worker_queues("tg", labels)


@pytest.mark.parametrize(
    ("labels", "message"),
    [
        ({"os": "linux,gpu=true"}, "not valid"),
        ({"bad key": "x"}, "not valid"),
        ({"os": ""}, "not valid"),
        ({f"k{i}": "v" for i in range(5)}, "at most 4"),
    ],
)
def test_labels_that_could_route_ambiguously_are_refused(labels: dict[str, str], message: str) -> None:
    with pytest.raises(RunnerError, match=message):
        worker_queues("tg", labels)
    # A workflow's target no worker could take is its author's to fix: invalid input (422), not a 503 to retry.
    with pytest.raises(InvalidInput) as refused:
        target_queue("tg", labels)
    assert [e.path for e in refused.value.errors] == ["spec.target.match"]
    assert message in refused.value.errors[0].message


def test_worker_labels_parse_from_key_value_options() -> None:
    assert parse_labels(["os=linux", "gpu=true"]) == {"os": "linux", "gpu": "true"}
    with pytest.raises(RunnerError, match="not key=value"):
        parse_labels(["gpu"])


def test_sealed_values_open_only_for_their_execution_and_with_the_key() -> None:
    box = SecretBox([Fernet.generate_key()])
    token = box.seal("exec-1", {"password": "hunter2"})

    assert "hunter2" not in token
    assert box.open(token, "exec-1") == {"password": "hunter2"}
    with pytest.raises(RunnerError, match="another execution"):
        box.open(token, "exec-2")
    with pytest.raises(RunnerError, match="secrets key differs"):
        SecretBox([Fernet.generate_key()]).open(token, "exec-1")


def test_a_new_key_seals_while_the_old_one_still_opens(tmp_path: Path) -> None:
    old, new = Fernet.generate_key(), Fernet.generate_key()
    sealed_before = SecretBox([old]).seal("e", {"a": "1"})
    rolled = Settings(data_dir=tmp_path, celery=CelerySettings(secrets_key=f"{new.decode()}, {old.decode()}"))

    box = SecretBox.from_settings(rolled, create=False)

    assert box.open(sealed_before, "e") == {"a": "1"}
    assert SecretBox([new]).open(box.seal("e", {"b": "2"}), "e") == {"b": "2"}


def test_the_key_file_is_created_once_private_and_shared(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data")
    control = SecretBox.from_settings(settings, create=True)
    worker = SecretBox.from_settings(settings, create=False)

    assert (settings.data_dir / KEY_FILE).stat().st_mode & 0o777 == 0o600
    assert worker.open(control.seal("e", {"k": "v"}), "e") == {"k": "v"}


def test_a_worker_without_the_key_or_with_a_readable_key_file_refuses(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data")
    with pytest.raises(RunnerError, match="no secrets key"):
        SecretBox.from_settings(settings, create=False)

    SecretBox.from_settings(settings, create=True)
    (settings.data_dir / KEY_FILE).chmod(0o644)
    with pytest.raises(RunnerError, match="chmod 600"):
        SecretBox.from_settings(settings, create=False)


def test_a_secrets_key_that_is_not_a_fernet_key_is_refused(tmp_path: Path) -> None:
    # Refused with the settings (exit 2 naming TESTGATE_CELERY__SECRETS_KEY), and by the box itself.
    with pytest.raises(ValidationError, match="each key must be a Fernet key"):
        CelerySettings(secrets_key="not-a-key")  # type: ignore[arg-type]
    with pytest.raises(RunnerError, match="not a Fernet key"):
        SecretBox([b"not-a-key"])


def test_the_celery_executor_needs_a_broker_url(tmp_path: Path) -> None:
    with pytest.raises(RunnerError, match="TESTGATE_CELERY__BROKER_URL"):
        create_celery(Settings(data_dir=tmp_path))


def test_messages_are_json_and_acknowledged_late(tmp_path: Path) -> None:
    app = create_celery(Settings(data_dir=tmp_path, celery=CelerySettings(broker_url="memory://")))

    conf = app.conf
    assert (conf.task_serializer, conf.accept_content) == ("json", ["json"])
    assert (conf.task_acks_late, conf.task_reject_on_worker_lost, conf.worker_prefetch_multiplier) == (True, True, 1)
