"""Preparing a definition for ``workflow apply``: a relative content directory becomes absolute."""

from __future__ import annotations

from pathlib import Path

from testgate.cli.definition import resolve_directory

BASE = Path("/srv/suites")


def test_a_relative_directory_is_resolved_against_the_base_and_the_rest_is_kept() -> None:
    text = "# suite\nspec:\n  content:\n    directory: ./unit   # here\n  steps: []\n"

    resolved = resolve_directory(text, BASE)

    assert resolved == '# suite\nspec:\n  content:\n    directory: "/srv/suites/unit"   # here\n  steps: []\n'


def test_a_quoted_path_with_spaces_stays_one_value() -> None:
    resolved = resolve_directory("spec: {content: {directory: 'my suite'}}", BASE)

    assert resolved == 'spec: {content: {directory: "/srv/suites/my suite"}}'


def test_an_absolute_directory_is_left_alone() -> None:
    text = "spec: {content: {directory: /opt/suite}}"

    assert resolve_directory(text, BASE) == text


def test_a_document_without_a_directory_or_with_bad_yaml_is_left_for_the_server_to_judge() -> None:
    for text in ("spec: {steps: []}", "spec: [unclosed", "- a list", "spec: {content: {directory: [1]}}"):
        assert resolve_directory(text, BASE) == text
