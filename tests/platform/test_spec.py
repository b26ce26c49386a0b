"""The workflow spec: Testkube-like shape, strict validation with field paths, safe YAML."""

from __future__ import annotations

import json

import pytest
import yaml

from testgate.errors import InvalidInput
from testgate.platform import spec

GOOD = """
kind: TestWorkflow
apiVersion: testworkflows.testkube.io/v1
metadata:
  name: e2e
  labels: {team: qa, tier: smoke}
  description: end to end
spec:
  config:
    browser: {type: string, default: chromium, enum: [chromium, firefox]}
    retries: {type: integer, default: 2}
    api_key: {type: string, sensitive: true}
  env:
    - {name: CI, value: "true"}
  content:
    files:
      - {path: tests/run.sh, content: "echo hi", mode: 0o755}
    git: {uri: "file:///srv/repo.git", revision: main}
  steps:
    - name: install
      run: {command: [pip], args: [install, -r, requirements.txt]}
      timeout: 5m
    - name: test
      shell: pytest --browser {{ config.browser }} --retries {{config.retries}}
      workingDir: tests
      env: {API_KEY: "{{ config.api_key }}"}
      timeout: 1h30m
    - name: cleanup
      shell: rm -rf tmp
      condition: always
  artifacts: {paths: ["reports/**"]}
  results: {junit: ["reports/*.xml"]}
"""


def _errors(text: str) -> list[str]:
    with pytest.raises(InvalidInput) as info:
        spec.parse(text, max_bytes=100_000)
    return [str(e) for e in info.value.errors] or [info.value.message]


def test_a_testkube_shaped_workflow_validates_with_durations_in_seconds() -> None:
    workflow = spec.parse(GOOD, max_bytes=100_000)
    assert workflow.metadata.labels == {"team": "qa", "tier": "smoke"}
    assert [s.timeout for s in workflow.spec.steps] == [300.0, 5400.0, None]
    assert workflow.spec.steps[1].working_dir == "tests"
    assert workflow.spec.env == {"CI": "true"}
    assert workflow.spec.steps[2].condition == "always"


def test_a_bad_field_is_named_by_its_path() -> None:
    bad = GOOD.replace("timeout: 1h30m", "timeout: soon")
    assert _errors(bad) == ["spec.steps[1].timeout: 'soon' is not a duration such as 30s, 5m or 1h30m"]


def test_unknown_fields_are_refused_at_every_level() -> None:
    assert _errors(GOOD.replace("kind: TestWorkflow", "kind: TestWorkflow\nextra: 1")) == ["extra: unknown field"]
    errors = _errors(GOOD.replace("condition: always", "condition: always\n      retry: 3"))
    assert errors == ["spec.steps[2].retry: unknown field"]


def test_a_step_needs_exactly_one_of_shell_or_run() -> None:
    errors = _errors(GOOD.replace("shell: rm -rf tmp", "shell: x\n      run: {command: [y]}"))
    assert errors == ["spec.steps[2]: a step needs exactly one of 'shell' or 'run'"]


def test_paths_must_stay_inside_the_workspace() -> None:
    assert "must not contain '..'" in _errors(GOOD.replace("workingDir: tests", "workingDir: ../etc"))[0]
    assert "relative" in _errors(GOOD.replace('paths: ["reports/**"]', 'paths: ["/etc/passwd"]'))[0]


def test_templates_must_name_declared_parameters() -> None:
    assert "config.nope" in " ".join(_errors(GOOD.replace("config.browser", "config.nope")))


def test_a_sensitive_parameter_cannot_carry_a_default() -> None:
    errors = _errors(GOOD.replace("sensitive: true}", "sensitive: true, default: hunter2}"))
    assert errors == ["spec.config.api_key: a sensitive parameter cannot have a default; pass its value when running"]


def test_names_and_kinds_are_checked() -> None:
    assert _errors(GOOD.replace("name: e2e", "name: E2E_Suite"))[0].startswith("metadata.name:")
    assert _errors(GOOD.replace("kind: TestWorkflow", "kind: Deployment"))[0].startswith("kind:")


def test_yaml_aliases_are_refused_so_a_billion_laughs_cannot_expand() -> None:
    bomb = "a: &a [x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]\nc: [*b, *b, *b]\n"
    with pytest.raises(InvalidInput, match="aliases are not allowed"):
        spec.parse(bomb, max_bytes=100_000)


def test_yaml_tags_that_build_python_objects_are_refused() -> None:
    with pytest.raises(InvalidInput, match="not valid YAML"):
        spec.parse("!!python/object/apply:os.system ['true']", max_bytes=100_000)


def test_a_definition_over_the_size_limit_is_refused_before_parsing() -> None:
    with pytest.raises(InvalidInput, match="larger than 1024 bytes"):
        spec.parse(GOOD + "#" * 2000, max_bytes=1024)


def test_a_document_that_is_not_a_mapping_is_refused() -> None:
    with pytest.raises(InvalidInput, match="must be a mapping"):
        spec.parse("- just\n- a list\n", max_bytes=1000)


def test_config_values_are_coerced_by_type_and_enum() -> None:
    params = spec.parse(GOOD, max_bytes=100_000).spec.config
    assert params["retries"].coerce("3") == 3
    with pytest.raises(ValueError, match="expected an integer, got 'three'"):
        params["retries"].coerce("three")
    with pytest.raises(ValueError, match="one of chromium, firefox"):
        params["browser"].coerce("safari")
    assert spec.ConfigParameter(type="boolean").coerce("yes") is True


def test_rendering_substitutes_config_values() -> None:
    assert spec.render("run {{ config.a }} {{config.b}}", {"a": "x", "b": True}) == "run x true"


def test_the_published_json_schema_describes_the_document_and_refuses_extras() -> None:
    schema = spec.json_schema()
    assert schema["title"] == "TestWorkflow"
    assert set(schema["required"]) == {"metadata", "spec"}
    assert schema["additionalProperties"] is False
    text = json.dumps(schema)
    for field in ("workingDir", "condition", "sensitive", "junit"):
        assert field in text


def test_the_canonical_document_round_trips() -> None:
    workflow = spec.parse(GOOD, max_bytes=100_000)
    again = spec.parse(spec.to_yaml(workflow), max_bytes=100_000)
    assert again == workflow


@pytest.mark.parametrize(
    ("value", "seconds"), [("90s", 90.0), ("5m", 300.0), ("1h30m", 5400.0), (12, 12.0), ("1.5s", 1.5)]
)
def test_durations_parse_go_style_strings_and_numbers(value: str | int, seconds: float) -> None:
    assert spec.parse_duration(value) == seconds


@pytest.mark.parametrize("value", ["", "5ms", "0s", "-1", "8d", True])
def test_bad_durations_are_refused(value: str | bool) -> None:
    with pytest.raises(ValueError, match=r"duration|more than 0"):
        spec.parse_duration(value)


@pytest.mark.parametrize(
    ("kind", "value", "message"),
    [
        ("integer", "three", "expected an integer, got 'three'"),
        ("integer", True, "expected an integer, got True"),
        ("number", "1e", "expected a number, got '1e'"),
        ("boolean", "maybe", "expected a boolean (true or false), got 'maybe'"),
        ("string", [1], "expected a string, got [1]"),
        ("integer", "x" * 100, "expected an integer, got '" + "x" * 56 + "..."),
        # A step would be handed nan or inf (``sleep inf`` never ends), and PostgreSQL's JSON refuses NaN.
        ("number", "nan", "expected a number, got 'nan'"),
        ("number", "-inf", "expected a number, got '-inf'"),
        ("number", "1e400", "expected a number, got '1e400'"),
        ("number", float("inf"), "expected a number, got inf"),
        # A fraction was cut to an integer without a word.
        ("integer", 2.5, "expected an integer, got 2.5"),
        ("integer", float("nan"), "expected an integer, got nan"),
    ],
)
def test_a_config_value_of_the_wrong_kind_says_what_was_expected_once(kind: str, value: object, message: str) -> None:
    with pytest.raises(ValueError, match=r"^expected ") as refused:
        spec.ConfigParameter(type=kind).coerce(value)  # type: ignore[arg-type]
    assert str(refused.value) == message


@pytest.mark.parametrize(
    ("step", "field"),
    [
        ({"name": "s", "shell": "echo {{ config.nope }}"}, "steps[0].shell"),
        ({"name": "s", "run": {"command": ["echo"], "args": ["a", "{{config.nope}}"]}}, "steps[0].run.args[1]"),
        ({"name": "s", "shell": "true", "env": {"X": "{{ config.nope }}"}}, "steps[0].env.X"),
    ],
)
def test_an_undeclared_config_value_is_named_with_the_field_that_uses_it(step: dict[str, object], field: str) -> None:
    document = {"kind": "TestWorkflow", "metadata": {"name": "w"}, "spec": {"steps": [step]}}
    with pytest.raises(InvalidInput) as refused:
        spec.validate(document)
    (error,) = refused.value.errors
    assert error.message == f"{field} uses {{{{ config.nope }}}}, which spec.config does not declare"


@pytest.mark.parametrize(
    ("parameter", "message"),
    [
        ({"type": "number", "default": float("inf")}, "the default: expected a number, got inf"),
        ({"type": "integer", "default": 2.5}, "the default: expected an integer, got 2.5"),
        ({"type": "boolean", "default": "maybe"}, "the default: expected a boolean (true or false), got 'maybe'"),
        ({"enum": ["chrome", "firefox"], "default": "safari"}, "the default: must be one of chrome, firefox"),
    ],
)
def test_a_default_no_run_could_take_is_refused_when_the_definition_is_saved(
    parameter: dict[str, object], message: str
) -> None:
    # Saved, it made every run that left the parameter out fail on the workflow's own default.
    document = {"kind": "TestWorkflow", "metadata": {"name": "w"}, "spec": {"config": {"p": parameter}}}
    document["spec"]["steps"] = [{"name": "s", "shell": "true"}]  # type: ignore[index]
    with pytest.raises(InvalidInput) as refused:
        spec.parse(yaml.safe_dump(document), max_bytes=100_000)
    assert [(e.path, e.message) for e in refused.value.errors] == [("spec.config.p.default", message)]
    # A workflow stored before the check still loads (and runs when the value is given).
    assert spec.validate(document).spec.config["p"].default == parameter["default"]
