"""Secrets never reach a log line or an audit record: keys, token shapes and registered values."""

from __future__ import annotations

import enum
import io
import logging
import secrets
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

import pytest
import structlog
from sqlalchemy import text

from testgate import logconfig
from testgate.access import tokens
from testgate.audit.redaction import REDACTED, forget_secret, redact_event, register_secret, scrub_text
from testgate.errors import InvalidInput, NotFound
from testgate.operations.dispatch import dispatch

if TYPE_CHECKING:
    from tests.audit.conftest import Chain

FLOW = """
kind: TestWorkflow
metadata: {name: smoke}
spec:
  config:
    token: {sensitive: true}
    level: {default: "1"}
  steps: [{name: one, shell: echo one}]
"""


@pytest.fixture
def captured() -> Iterator[io.StringIO]:
    """structlog and stdlib logging rendered as JSON lines into a buffer by ``logconfig.configure``."""
    buffer = io.StringIO()
    root = logging.getLogger()
    saved = (root.handlers[:], root.level)
    logconfig.configure("json", "DEBUG", stream=buffer)
    try:
        yield buffer
    finally:
        root.handlers[:], level = saved
        root.setLevel(level)
        structlog.reset_defaults()


def _event(**fields: Any) -> Mapping[str, Any]:
    return redact_event(None, "info", {"event": "x", **fields})


@pytest.mark.parametrize(
    "key",
    ["authorization", "Authorization", "cookie", "set-cookie", "x-api-key", "password", "secret", "client_secret",
     "token", "refresh_token", "access_token", "db_password"],
)  # fmt: skip
def test_values_under_secret_keys_are_replaced_whole(key: str) -> None:
    assert _event(**{key: "anything at all"})[key] == REDACTED
    assert _event(headers={key: "anything at all"})["headers"][key] == REDACTED


def test_ordinary_keys_are_left_alone() -> None:
    assert _event(token_prefix="tgp_AbCd", tokens_revoked=3, user="alice") == {
        "event": "x",
        "token_prefix": "tgp_AbCd",
        "tokens_revoked": 3,
        "user": "alice",
    }


@pytest.mark.parametrize(
    ("secret", "kept"),
    [
        (tokens.generate(), 8),  # tgp_ + 4: the prefix testgate shows for a token anyway
        ("tgr_" + secrets.token_urlsafe(32), 8),
        ("eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.c2lnbmF0dXJl", 3),
    ],
)
def test_token_shaped_strings_keep_only_a_short_prefix(secret: str, kept: int) -> None:
    masked = scrub_text(f"calling with {secret} now")
    assert masked == f"calling with {secret[:kept]}{REDACTED} now"


def test_bearer_credentials_and_url_passwords_are_masked() -> None:
    assert scrub_text("Authorization: Bearer abc.def-ghi") == f"Authorization: Bearer {REDACTED}"
    assert scrub_text("postgresql://app:s3cret@db:5432/tg") == f"postgresql://app:{REDACTED}@db:5432/tg"


def test_a_registered_secret_is_masked_until_it_is_forgotten() -> None:
    value = "workflow-secret-" + secrets.token_hex(4)
    register_secret(value)
    try:
        assert scrub_text(f"echo {value}") == f"echo {REDACTED}"
        assert _event(step={"env": [f"X={value}"]})["step"] == {"env": [f"X={REDACTED}"]}
    finally:
        forget_secret(value)
    assert scrub_text(f"echo {value}") == f"echo {value}"


class LoggingExecutor:
    """An executor double that behaves like a careless runner: it logs what it is handed.

    Like the real runner it registers the sensitive values before touching them.
    """

    def __init__(self) -> None:
        self.log = structlog.get_logger("testgate.runner")

    async def start(self) -> None:
        return None

    async def submit(self, execution_id: str, secret_values: Mapping[str, str]) -> None:
        for value in secret_values.values():
            register_secret(value)
        self.log.info("starting execution", execution_id=execution_id, environment=dict(secret_values))
        self.log.debug(f"command line: run-tests --token {secret_values['token']}")

    async def abort(self, execution_id: str) -> bool:
        return False

    async def close(self) -> None:
        return None


async def _all_audit_text(chain: Chain) -> str:
    async with chain.platform.db.session() as session:
        rows = (await session.execute(text("SELECT * FROM audit_events"))).all()
    return "\n".join(repr(tuple(row)) for row in rows)


async def test_no_planted_secret_reaches_the_logs_or_any_audit_column(chain: Chain, captured: io.StringIO) -> None:
    api_token = tokens.generate()
    refresh = "tgr_" + secrets.token_urlsafe(32)
    password = "correct-horse-battery-" + secrets.token_hex(4)
    sensitive = "hunter2-" + secrets.token_hex(6)
    planted = (api_token, refresh, password, sensitive)
    chain.platform.executor = LoggingExecutor()
    call = chain.call(environment="dev")
    try:
        await dispatch(chain.platform, call, "workflow.create", {"definition": FLOW})
        # A token pasted into an ordinary parameter, and the sensitive one.
        await dispatch(
            chain.platform, call, "workflow.run", {"name": "smoke", "config": {"token": sensitive, "level": api_token}}
        )
        with pytest.raises(InvalidInput):
            await dispatch(
                chain.platform, call, "workflow.run", {"name": "smoke", "password": password, "refresh_token": refresh}
            )
        with pytest.raises(NotFound):
            await dispatch(chain.platform, call, "workflow.get", {"name": api_token})
        log = structlog.get_logger("testgate.http")
        log.info("request", headers={"Authorization": f"Bearer {api_token}", "Cookie": f"session={refresh}"})
        log.info("login attempt", user="alice", password=password)
        log.warning(f"refresh failed for {refresh}")
        logging.getLogger("uvicorn.access").info('"GET /cb?refresh=%s HTTP/1.1" 200', refresh)
        try:
            raise RuntimeError(f"upstream rejected {api_token} while running with {sensitive}")
        except RuntimeError:
            log.exception("crash")
            logging.getLogger("uvicorn.error").exception("ASGI callable failed")
    finally:
        forget_secret(sensitive)
    output = captured.getvalue()
    audit = await _all_audit_text(chain)
    assert "starting execution" in output
    assert output.count("RuntimeError: upstream rejected tgp_") == 2
    assert len(await chain.events()) == 4
    for secret in planted:
        assert secret not in output, secret
        assert secret not in audit, secret


class _Level(enum.IntEnum):
    HIGH = 3


class _Settings(dict[str, Any]):
    pass


def test_the_recorders_one_pass_cleaning_matches_redacting_then_scrubbing() -> None:
    """``recorder.cleaned`` (the audit row's arguments) is ``scrub(redact(x), keys=False)``, value for value."""
    from testgate.audit.recorder import cleaned, redact
    from testgate.audit.redaction import scrub

    api_token = tokens.generate()
    registered = "sekrit-" + secrets.token_hex(6)
    samples: list[Any] = [
        {},
        {"id": "01m974dq01grk8mzrbndaeand8", "limit": 50, "ratio": 0.5, "all": True, "none": None},
        {"Password": "p", "X-Api-Key": "k", "nested": {"client_secret": "s", "list": [1, {"refresh_token": "r"}]}},
        {"query": f"Bearer {api_token}", "url": "https://u:pw@example.com/x", "note": f"uses {registered}"},
        {"tuple": ("a", api_token), "set": {registered}, "level": _Level.HIGH, "obj": object.__name__},
        _Settings(token="t", plain=api_token),
        [api_token, {"token": 1}, [registered]],
        api_token,
        7,
        None,
    ]
    register_secret(registered)
    try:
        for sample in samples:
            expected = scrub(redact(sample), keys=False)
            assert cleaned(sample) == expected, sample
            assert type(cleaned(sample)) is type(expected)
    finally:
        forget_secret(registered)
    assert cleaned({"api_token": "x", "config": {"id": api_token}}) == {
        "api_token": "***",
        "config": {"id": api_token[:8] + REDACTED},
    }


def test_the_quick_look_before_the_token_pattern_never_skips_a_token() -> None:
    """``scrub_text`` skips the token pattern when none of its shapes' beginnings appear (in any case):
    over many texts, with and without tokens in every case, the result is the pattern's own."""
    import random

    from testgate.audit.redaction import _TOKENS, _mask

    rng = random.Random(7)
    pieces = [
        tokens.generate(),
        "tgr_" + secrets.token_urlsafe(16),
        "eyJhbGciOi.eyJzdWIiOi.sig",
        "Bearer abc.def",
        "BEARER xyz",
        "bEaReR q",
        "https://user:pw@host/x",
        "TGP_" + "A" * 20,
        "EYJ.x.y",
        "01m974dq01grk8mzrbndaeand8",
        "smoke#12",
        "wrk/4.1.0",
        "plain words",
        "tgp_short",
        ":// no userinfo",
    ]
    for _ in range(3000):
        text = " ".join(rng.choice(pieces) for _ in range(rng.randint(0, 4)))
        text = "".join(c.upper() if rng.random() < 0.1 else c for c in text)
        assert scrub_text(text) == _TOKENS.sub(_mask, text), text


def test_a_secret_field_left_empty_is_recorded_as_not_given() -> None:
    """An invitation without a password records ``"password": null``, not a mask hiding that none was set."""
    from testgate.audit.recorder import cleaned, redact

    arguments = {"email": "ada@example.com", "password": None, "token": "", "nested": {"secret": None}}
    for clean in (cleaned, redact):
        assert clean(arguments) == {
            "email": "ada@example.com",
            "password": None,
            "token": "***",
            "nested": {"secret": None},
        }
