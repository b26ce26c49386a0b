"""The Celery side shared by the control plane and workers: the app, queue routing, sealed secrets.

Routing: an execution whose workflow sets no ``target.match`` goes to ``<prefix>.default``; one that
sets labels goes to ``<prefix>.match.<k=v,…>`` (labels sorted by key). A worker started with labels
consumes ``<prefix>.default`` and one queue for every non-empty subset of its labels, so it takes
exactly the executions whose labels it all has. Workers advertise at most ``MAX_LABELS`` labels
(2^4 - 1 = 15 label queues), and a target naming more than that can match no worker.

Sensitive config values travel only in the task message, sealed with Fernet (AES-128-CBC and
HMAC-SHA256) under a key the broker and the database never see, and bound to their execution id.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import secrets
from collections.abc import Iterable, Mapping
from itertools import combinations
from pathlib import Path
from typing import Any

from celery import Celery
from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from testgate.config import Settings
from testgate.errors import FieldError, InvalidInput, RunnerError

TASK = "testgate.run_execution"
MAX_LABELS = 4
MAX_QUEUE_NAME = 255  # AMQP's short string
KEY_FILE = "celery-secrets.key"
_LABEL_KEY = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9._/-]{0,61}[A-Za-z0-9])?$")
_LABEL_VALUE = re.compile(r"^[A-Za-z0-9._/-]{1,63}$")


def check_labels(labels: Mapping[str, str], what: str) -> dict[str, str]:
    """``labels`` if every key and value is one a queue name can carry unambiguously."""
    for key, value in labels.items():
        if not _LABEL_KEY.match(key):
            raise RunnerError(f"{what}: label key {key!r} is not valid (letters, digits, '._/-', at most 63)")
        if not isinstance(value, str) or not _LABEL_VALUE.match(value):
            raise RunnerError(f"{what}: label {key}={value!r} is not valid (letters, digits, '._/-', 1 to 63)")
    return dict(labels)


def default_queue(prefix: str) -> str:
    return f"{prefix}.default"


def label_queue(prefix: str, labels: Mapping[str, str]) -> str:
    """The queue of one label set; a name too long for AMQP becomes a digest of the same text."""
    text = ",".join(f"{key}={labels[key]}" for key in sorted(labels))
    name = f"{prefix}.match.{text}"
    if len(name.encode()) > MAX_QUEUE_NAME:
        name = f"{prefix}.match.sha256-{hashlib.sha256(text.encode()).hexdigest()}"
    return name


def target_queue(prefix: str, match: Mapping[str, str]) -> str:
    """Where an execution targeting ``match`` waits for a worker.

    A target no worker can ever take is the workflow's fault, not the runner's: ``InvalidInput`` (a 422
    that names the field, not a 503 a client would retry).
    """
    if not match:
        return default_queue(prefix)
    try:
        check_labels(match, "target.match")
    except RunnerError as exc:
        raise InvalidInput(
            "this workflow's target cannot be run", errors=[FieldError("spec.target.match", str(exc))]
        ) from None
    if len(match) > MAX_LABELS:
        why = f"names {len(match)} labels; a worker advertises at most {MAX_LABELS}, so none could take it"
        raise InvalidInput("this workflow's target cannot be run", errors=[FieldError("spec.target.match", why)])
    return label_queue(prefix, match)


def worker_queues(prefix: str, labels: Mapping[str, str]) -> list[str]:
    """The default queue and one queue per non-empty subset of ``labels``."""
    check_labels(labels, "worker")
    if len(labels) > MAX_LABELS:
        raise RunnerError(f"a worker advertises at most {MAX_LABELS} labels (got {len(labels)})")
    items = sorted(labels.items())
    subsets = [dict(chosen) for size in range(1, len(items) + 1) for chosen in combinations(items, size)]
    return [default_queue(prefix), *(label_queue(prefix, subset) for subset in subsets)]


def parse_labels(items: Iterable[str]) -> dict[str, str]:
    """``["os=linux", "gpu=true"]`` -> ``{"os": "linux", "gpu": "true"}``, checked."""
    labels: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep:
            raise RunnerError(f"label {item!r} is not key=value")
        labels[key.strip()] = value.strip()
    return check_labels(labels, "worker")


class SecretBox:
    """Seals an execution's sensitive values for the task message; only holders of the key open them."""

    def __init__(self, keys: list[bytes]) -> None:
        if not keys:
            raise RunnerError("no key to seal sensitive values with")
        try:
            # The first key seals; every key opens, so a new key can be rolled out before the old is dropped.
            self._fernet = MultiFernet([Fernet(key) for key in keys])
        except ValueError:
            raise RunnerError("celery.secrets_key: not a Fernet key (32 url-safe base64-encoded bytes)") from None

    @classmethod
    def from_settings(cls, settings: Settings, *, create: bool) -> SecretBox:
        """The configured keys, else the key file in the data directory (created when ``create``)."""
        configured = settings.celery.secrets_key
        if configured is not None:
            return cls([k.strip().encode() for k in configured.get_secret_value().split(",") if k.strip()])
        return cls([_key_file(settings.data_dir / KEY_FILE, create=create)])

    def seal(self, execution_id: str, values: Mapping[str, str]) -> str:
        payload = json.dumps({"execution_id": execution_id, "values": dict(values)})
        return self._fernet.encrypt(payload.encode()).decode()

    def open(self, token: str, execution_id: str) -> dict[str, str]:
        """The values sealed for ``execution_id``; a RunnerError for another key or another execution."""
        try:
            payload = json.loads(self._fernet.decrypt(token.encode()))
        except (InvalidToken, ValueError):
            raise RunnerError(
                "the sensitive values in the task message cannot be opened: this worker's secrets key "
                "differs from the control plane's (TESTGATE_CELERY__SECRETS_KEY)"
            ) from None
        if payload.get("execution_id") != execution_id:
            # A sealed value copied into another execution's message must not be usable there.
            raise RunnerError("the sensitive values in the task message were sealed for another execution")
        return {str(k): str(v) for k, v in payload.get("values", {}).items()}


def _key_file(path: Path, *, create: bool) -> bytes:
    """Read the key file (mode 0600), or create it with a new key when ``create``."""
    if create and not path.exists():
        _create_key_file(path)
    try:
        mode = path.stat().st_mode
        key = path.read_bytes().strip()
    except FileNotFoundError:
        raise RunnerError(
            f"no secrets key: set TESTGATE_CELERY__SECRETS_KEY, or share {path} (mode 0600) with the control plane"
        ) from None
    if mode & 0o077:
        raise RunnerError(f"{path} is readable by other users; chmod 600 it")
    return key


def _create_key_file(path: Path) -> None:
    """Write a new key beside ``path`` and link it into place: readers never see a partial file."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    draft = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    descriptor = os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "wb") as handle:
        handle.write(Fernet.generate_key())
    try:
        os.link(draft, path)
    except FileExistsError:
        pass  # another process created it first: everyone uses theirs
    finally:
        draft.unlink()


def create_celery(settings: Settings) -> Celery:
    """A Celery app for this deployment; it connects only when it first publishes or consumes."""
    config = settings.celery
    if config.broker_url is None:
        raise RunnerError("the celery executor needs a broker: set TESTGATE_CELERY__BROKER_URL (amqp://… or redis://…)")
    app = Celery("testgate", broker=config.broker_url.get_secret_value(), set_as_current=False)
    app.conf.update(_conf(settings))
    return app


def _conf(settings: Settings) -> dict[str, Any]:
    config = settings.celery
    prefix = config.queue_prefix
    return {
        # JSON only: a pickle message from whoever reaches the broker would run code in the worker.
        "task_serializer": "json",
        "accept_content": ["json"],
        "task_ignore_result": True,
        # The message stays on the broker until the execution finished, and returns there when the
        # worker process dies; the worker then settles what a redelivery finds (runner.worker).
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        "worker_prefetch_multiplier": 1,
        "worker_cancel_long_running_tasks_on_connection_loss": False,
        "task_default_queue": default_queue(prefix),
        "task_create_missing_queues": True,
        "control_exchange": prefix,
        "event_exchange": f"{prefix}.events",
        "broker_connection_retry_on_startup": True,
        "broker_connection_timeout": min(4.0, config.publish_timeout),
        "broker_transport_options": dict(config.broker_transport_options),
        # A submit retries briefly, then fails visibly (bounded again by publish_timeout).
        "task_publish_retry_policy": {"max_retries": 2, "interval_start": 0, "interval_step": 0.5, "interval_max": 1},
        "worker_hijack_root_logger": False,
        "enable_utc": True,
    }
