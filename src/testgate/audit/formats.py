"""How one audit event is written out: a JSON record, a CSV row, an OCSF API Activity event."""

from __future__ import annotations

import ipaddress
import json
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Any, Protocol

from testgate import __version__

OCSF_VERSION = "1.1.0"
OCSF_CLASS_UID = 6003  # API Activity
OCSF_CATEGORY_UID = 6  # Application Activity
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MILLISECOND = timedelta(milliseconds=1)

CSV_COLUMNS = (
    "id",
    "seq",
    "time",
    "organization_id",
    "environment_id",
    "environment",
    "actor_type",
    "actor_id",
    "actor_name",
    "transport",
    "action",
    "resources",
    "outcome",
    "reason",
    "confirmation",
    "request_id",
    "source_address",
    "user_agent",
    "arguments",
    "prev_hash",
    "hash",
)
# Spreadsheets run a cell starting with one of these as a formula (OWASP "CSV injection").
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")

ACTIVITY_NAMES = {1: "Create", 2: "Read", 3: "Update", 4: "Delete", 99: "Other"}
TYPE_NAMES = {activity: f"API Activity: {name}" for activity, name in ACTIVITY_NAMES.items()}
# Shared by every event (never mutated): one object less to build per event.
PRODUCT = {"name": "testgate", "vendor_name": "testgate", "version": __version__}
SERVICE = {"name": "testgate"}
# The verb of an action ("workflow.run" -> "run") decides its OCSF activity.
_VERBS = {
    1: ("create", "upload", "run", "issue", "register"),
    2: ("list", "get", "read", "logs", "results", "metrics", "schema", "definition", "url", "wait", "export", "verify"),
    3: ("update", "apply", "abort", "tags", "rotate"),
    4: ("delete", "bulk_delete", "purge", "revoke"),
}
ACTIVITY_OF_VERB = {verb: activity for activity, verbs in _VERBS.items() for verb in verbs}
_USER_TYPE_IDS = {"user": 1, "oauth": 1, "local": 1, "system": 3}


class StoredEvent(Protocol):
    """The fields of a stored audit event (an ``AuditEventRow`` or a row selected from its table)."""

    @property
    def seq(self) -> int: ...
    @property
    def event_id(self) -> str: ...
    @property
    def time(self) -> datetime: ...
    @property
    def organization_id(self) -> str: ...
    @property
    def environment_id(self) -> str | None: ...
    @property
    def actor_type(self) -> str: ...
    @property
    def actor_id(self) -> str | None: ...
    @property
    def actor_name(self) -> str: ...
    @property
    def transport(self) -> str: ...
    @property
    def action(self) -> str: ...
    @property
    def resources(self) -> list[Any]: ...
    @property
    def outcome(self) -> str: ...
    @property
    def reason(self) -> str: ...
    @property
    def confirmation(self) -> str | None: ...
    @property
    def request_id(self) -> str | None: ...
    @property
    def source_address(self) -> str | None: ...
    @property
    def user_agent(self) -> str | None: ...
    @property
    def arguments(self) -> dict[str, Any]: ...
    @property
    def prev_hash(self) -> str: ...
    @property
    def hash(self) -> str: ...


def event_record(row: StoredEvent, environment: str | None = None) -> dict[str, Any]:
    """The JSON record of an event (a JSON Lines export line, a line of the audit file)."""
    return {
        "id": row.event_id,
        "seq": row.seq,
        "time": row.time.isoformat(),
        "organization_id": row.organization_id,
        "environment_id": row.environment_id,
        "environment": environment,
        "actor": {"type": row.actor_type, "id": row.actor_id, "name": row.actor_name},
        "transport": row.transport,
        "action": row.action,
        "resources": row.resources,
        "outcome": row.outcome,
        "reason": row.reason,
        "confirmation": row.confirmation,
        "request_id": row.request_id,
        "source_address": row.source_address,
        "user_agent": row.user_agent,
        "arguments": row.arguments,
        "prev_hash": row.prev_hash,
        "hash": row.hash,
    }


def csv_cell(value: Any) -> str:
    """A CSV cell: JSON for structures, text otherwise; a would-be formula is quoted with ``'``."""
    if value is None:
        return ""
    if isinstance(value, int):
        return str(value)
    if isinstance(value, dict | list):
        text = json.dumps(value, ensure_ascii=False, sort_keys=True, separators=(",", ":"))
    elif isinstance(value, datetime):
        text = value.isoformat()
    else:
        text = str(value)
    return "'" + text if text.startswith(_FORMULA_START) else text


def csv_row(row: StoredEvent, environment: str | None = None) -> list[str]:
    """The CSV cells of an event, in ``CSV_COLUMNS`` order."""
    values = (
        row.event_id,
        row.seq,
        row.time,
        row.organization_id,
        row.environment_id,
        environment,
        row.actor_type,
        row.actor_id,
        row.actor_name,
        row.transport,
        row.action,
        row.resources,
        row.outcome,
        row.reason,
        row.confirmation,
        row.request_id,
        row.source_address,
        row.user_agent,
        row.arguments,
        row.prev_hash,
        row.hash,
    )
    return [csv_cell(value) for value in values]


def activity_id(action: str) -> int:
    """The OCSF API Activity ``activity_id`` of an action: Create 1, Read 2, Update 3, Delete 4, Other 99."""
    return ACTIVITY_OF_VERB.get(action.rpartition(".")[2], 99)


@lru_cache(maxsize=1024)
def _endpoint(address: str | None) -> tuple[tuple[str, str], ...]:
    if not address:
        return ()
    try:
        return (("ip", str(ipaddress.ip_address(address))),)
    except ValueError:
        return (("hostname", address),)  # e.g. a test client or a Unix socket peer


def _resource(resource: dict[str, Any]) -> dict[str, Any]:
    found = {"type": resource.get("type"), "uid": resource.get("id")}
    if resource.get("name"):
        found["name"] = resource["name"]
    return found


def ocsf_event(row: StoredEvent, environment: str | None = None) -> dict[str, Any]:
    """The event as an OCSF 1.1.0 API Activity (class 6003) event; absent attributes are left out."""
    activity = activity_id(row.action)
    success = row.outcome == "allowed"
    user: dict[str, Any] = {"name": row.actor_name, "type": row.actor_type}
    user["type_id"] = _USER_TYPE_IDS.get(row.actor_type, 99)
    if row.actor_id is not None:
        user["uid"] = row.actor_id
    api: dict[str, Any] = {"operation": row.action, "service": SERVICE}
    if row.request_id is not None:
        api["request"] = {"uid": row.request_id}
    event: dict[str, Any] = {
        "class_uid": OCSF_CLASS_UID,
        "class_name": "API Activity",
        "category_uid": OCSF_CATEGORY_UID,
        "category_name": "Application Activity",
        "activity_id": activity,
        "activity_name": ACTIVITY_NAMES[activity],
        "type_uid": OCSF_CLASS_UID * 100 + activity,
        "type_name": TYPE_NAMES[activity],
        "time": (row.time - EPOCH) // _MILLISECOND,
        "severity_id": 1,
        "severity": "Informational",
        "status_id": 1 if success else 2,
        "status": "Success" if success else "Failure",
        "actor": {"user": user},
        "api": api,
        "src_endpoint": dict(_endpoint(row.source_address)),
        "resources": [_resource(r) for r in row.resources],
        "metadata": {"product": PRODUCT, "version": OCSF_VERSION, "uid": row.event_id},
        "unmapped": {
            "organization_id": row.organization_id,
            "environment_id": row.environment_id,
            "environment": environment,
            "transport": row.transport,
            "outcome": row.outcome,
            "confirmation": row.confirmation,
            "arguments": row.arguments,
            "seq": row.seq,
            "prev_hash": row.prev_hash,
            "hash": row.hash,
        },
    }
    if row.reason:
        event["status_detail"] = row.reason
    if row.user_agent is not None:
        event["http_request"] = {"user_agent": row.user_agent}
    return event
