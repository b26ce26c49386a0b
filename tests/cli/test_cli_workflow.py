"""``testgate workflow``: apply, list, get, definition, schema and delete."""

from __future__ import annotations

import json

INVALID = """\
kind: TestWorkflow
metadata: {name: Not_A_Slug}
spec:
  steps:
    - name: build
      shell: make
      timeout: soon
"""


def test_applying_the_examples_creates_workflows_that_list_as_json(cli) -> None:
    for example in ("smoke.yaml", "pytest.yaml", "secret-param.yaml"):
        cli.apply(example)

    listed = cli.json("workflow", "list")

    assert [w["name"] for w in listed["workflows"]] == ["pytest", "secret-param", "smoke"]
    assert listed["count"] == 3


def test_applying_again_updates_the_workflow(cli) -> None:
    cli.apply("smoke.yaml")

    again = cli("workflow", "apply", "-f", str(cli.examples / "smoke.yaml"))

    assert again.exit_code == 0
    assert "workflow smoke updated" in again.stderr


def test_an_invalid_definition_is_refused_with_each_field_path_and_exit_1(cli) -> None:
    result = cli("workflow", "apply", "-f", "-", input=INVALID)

    assert result.exit_code == 1
    assert "metadata.name: must be lowercase" in result.stderr
    assert "spec.steps[0].timeout: 'soon' is not a duration" in result.stderr
    assert "Traceback" not in result.output


def test_a_relative_content_directory_becomes_absolute_next_to_the_yaml_file(cli) -> None:
    cli.apply("pytest.yaml")

    definition = cli.ok("workflow", "definition", "pytest").stdout

    assert f'directory: "{cli.examples / "pytest-suite"}"' in definition
    assert "# A real pytest suite" in definition  # the rest of the file is kept as written


def test_a_listing_can_be_narrowed_by_a_label_selector(cli) -> None:
    cli.apply("smoke.yaml")
    cli.apply("pytest.yaml")

    listed = cli.json("workflow", "list", "--selector", "tier=smoke")

    assert [w["name"] for w in listed["workflows"]] == ["smoke"]


def test_get_shows_the_config_parameters_and_steps(cli) -> None:
    cli.apply("secret-param.yaml")

    table = cli.ok("workflow", "get", "secret-param").stdout
    detail = cli.json("workflow", "get", "secret-param")

    assert "api_key: string (sensitive)" in table
    assert detail["step_names"] == ["use the key"]


def test_an_unknown_workflow_is_a_red_error_without_a_traceback(cli) -> None:
    result = cli("workflow", "get", "nope")

    assert result.exit_code == 1
    assert "error: workflow 'nope' not found in environment 'dev'" in result.stderr
    assert "Traceback" not in result.output


def test_an_unknown_environment_is_not_found(cli) -> None:
    result = cli("workflow", "list", "--env", "prod")

    assert result.exit_code == 1
    assert "environment 'prod' not found" in result.stderr


def test_delete_without_yes_and_without_a_terminal_is_refused_and_keeps_the_workflow(cli) -> None:
    cli.apply("smoke.yaml")

    refused = cli("workflow", "delete", "smoke")

    assert refused.exit_code == 1
    assert "stdin is not a terminal" in refused.stderr
    assert "--yes" in refused.stderr
    assert [w["name"] for w in cli.json("workflow", "list")["workflows"]] == ["smoke"]


def test_delete_with_yes_removes_the_workflow(cli) -> None:
    cli.apply("smoke.yaml")

    deleted = cli("workflow", "delete", "smoke", "--yes")

    assert deleted.exit_code == 0
    assert "deleted workflow 'smoke'" in deleted.stderr
    assert cli.json("workflow", "list")["workflows"] == []


def test_schema_prints_the_workflow_json_schema(cli) -> None:
    schema = json.loads(cli.ok("workflow", "schema").stdout)

    assert schema["title"] == "TestWorkflow"
    assert "metadata" in schema["properties"]


def test_a_missing_file_is_a_usage_error(cli) -> None:
    result = cli("workflow", "apply", "-f", "/nonexistent/workflow.yaml")

    assert result.exit_code == 2
    assert "cannot read" in result.stderr
