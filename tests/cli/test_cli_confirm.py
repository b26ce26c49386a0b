"""Confirming destructive commands: --yes, a person at a terminal, or a refusal."""

from __future__ import annotations

import asyncio
import io

import pytest
import typer

from testgate.cli.local import confirmer
from testgate.errors import ConfirmationRequired


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_yes_confirms_explicitly_without_asking(monkeypatch) -> None:
    monkeypatch.setattr(typer, "confirm", lambda *a, **k: pytest.fail("asked"))

    assert asyncio.run(confirmer(True)("Delete it?")) == "explicit"


@pytest.mark.parametrize(("answer", "outcome"), [(True, "accepted"), (False, "declined")])
def test_a_person_at_a_terminal_is_asked(monkeypatch, answer, outcome) -> None:
    monkeypatch.setattr("sys.stdin", Terminal())
    monkeypatch.setattr(typer, "confirm", lambda *a, **k: answer)

    assert asyncio.run(confirmer(False)("Delete it?")) == outcome


def test_without_a_terminal_the_confirmation_is_refused_and_says_how_to_confirm(monkeypatch) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO())

    with pytest.raises(ConfirmationRequired, match="Re-run with --yes"):
        asyncio.run(confirmer(False)("Delete it?"))
