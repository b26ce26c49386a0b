"""The workflow spec: a Testkube-like ``kind: TestWorkflow`` YAML document, validated by pydantic.

Unknown fields are refused and every error names its field path (``spec.steps[1].timeout: ...``).
YAML is loaded with the safe loader, after a size check, and aliases are refused (no billion laughs).
"""

from __future__ import annotations

import json
import re
from typing import Annotated, Any, Literal

import yaml
from pydantic import Field, ValidationError, field_validator, model_validator

from testgate.errors import FieldError, InvalidInput, validation_message
from testgate.ids import is_slug
from testgate.platform import labels, nul
from testgate.platform.parameters import ConfigParameter
from testgate.platform.parameters import SpecModel as _Model

_DURATION = re.compile(r"^(?:(\d+(?:\.\d+)?)h)?(?:(\d+(?:\.\d+)?)m(?!s))?(?:(\d+(?:\.\d+)?)s)?$")
_TEMPLATE = re.compile(r"\{\{\s*config\.([A-Za-z_][A-Za-z0-9_-]*)\s*\}\}")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
MAX_STEPS = 100


def parse_duration(value: float | int | str) -> float:
    """Seconds from a number or a Go-style duration (``90s``, ``5m``, ``1h30m``)."""
    if isinstance(value, bool):
        raise ValueError("expected a duration such as 30s, 5m or 1h30m")
    if isinstance(value, int | float):
        seconds = float(value) if not isinstance(value, int) or abs(value) <= 10**9 else float("inf")
    else:
        match = _DURATION.match(value.strip())
        if not value.strip() or not match:
            raise ValueError(f"{value!r} is not a duration such as 30s, 5m or 1h30m")
        h, m, s = (float(g) if g else 0.0 for g in match.groups())
        seconds = h * 3600 + m * 60 + s
    if seconds <= 0 or seconds > 7 * 86400:
        raise ValueError("must be more than 0 and at most 7 days")
    return seconds


Duration = Annotated[float, Field(json_schema_extra={"examples": ["30s", "5m", "1h30m", 120]})]


class ContentFile(_Model):
    path: str = Field(min_length=1, max_length=1024)
    content: str = Field(max_length=1024 * 1024)
    mode: int | None = Field(default=None, ge=0, le=0o777, description="file mode, e.g. 0755 or '0o755'")

    @field_validator("mode", mode="before")
    @classmethod
    def _octal(cls, value: Any) -> Any:
        if isinstance(value, str):
            try:
                return int(value.removeprefix("0o"), 8)
            except ValueError:
                raise ValueError(f"{value!r} is not an octal file mode") from None
        return value

    @field_validator("path")
    @classmethod
    def _relative(cls, value: str) -> str:
        return _relative_path(value)


class GitContent(_Model):
    uri: str = Field(min_length=1, max_length=2048)
    revision: str | None = Field(default=None, max_length=255, pattern=r"^[A-Za-z0-9._/-]+$")
    paths: list[str] | None = None

    @field_validator("uri")
    @classmethod
    def _scheme(cls, value: str) -> str:
        if not re.match(r"^(https?|ssh|git|file)://", value) and not re.match(r"^[\w.-]+@[\w.-]+:", value):
            raise ValueError("must be an https://, ssh://, git://, file:// or user@host: repository URL")
        if value.startswith("-"):
            raise ValueError("must not start with '-'")
        return value


class Content(_Model):
    """Where the workspace's files come from; several sources may be combined."""

    files: list[ContentFile] = Field(default_factory=list, max_length=1000)
    directory: str | None = Field(default=None, max_length=4096)
    git: GitContent | None = None


class RunSpec(_Model):
    command: list[str] = Field(min_length=1)
    args: list[str] = Field(default_factory=list)


class Step(_Model):
    """One step: a ``shell`` script, or ``run.command`` + ``args`` (no shell)."""

    name: str = Field(min_length=1, max_length=200)
    shell: str | None = None
    run: RunSpec | None = None
    working_dir: str | None = None
    env: dict[str, str] = Field(default_factory=dict)
    timeout: Duration | None = None
    condition: Literal["always", "passed", "failed"] = "passed"

    @field_validator("timeout", mode="before")
    @classmethod
    def _duration(cls, value: Any) -> Any:
        return None if value is None else parse_duration(value)

    @field_validator("working_dir")
    @classmethod
    def _workdir(cls, value: str | None) -> str | None:
        return None if value is None else _relative_path(value)

    @field_validator("env", mode="before")
    @classmethod
    def _env(cls, value: Any) -> Any:
        return _env_mapping(value)

    @model_validator(mode="after")
    def _one_action(self) -> Step:
        if (self.shell is None) == (self.run is None):
            raise ValueError("a step needs exactly one of 'shell' or 'run'")
        return self


class Artifacts(_Model):
    paths: list[str] = Field(default_factory=list, max_length=100)

    @field_validator("paths")
    @classmethod
    def _globs(cls, value: list[str]) -> list[str]:
        return [_relative_path(p) for p in value]


class Results(_Model):
    junit: list[str] = Field(default_factory=list, max_length=100)

    @field_validator("junit")
    @classmethod
    def _globs(cls, value: list[str]) -> list[str]:
        return [_relative_path(p) for p in value]


class Target(_Model):
    """Which workers may run this workflow (``target.match``: every label must match)."""

    match: dict[str, str] = Field(default_factory=dict)


class Spec(_Model):
    config: dict[str, ConfigParameter] = Field(default_factory=dict)
    env: dict[str, str] = Field(default_factory=dict)
    content: Content | None = None
    steps: list[Step] = Field(min_length=1, max_length=MAX_STEPS)
    artifacts: Artifacts | None = None
    results: Results | None = None
    target: Target | None = None

    @field_validator("env", mode="before")
    @classmethod
    def _env(cls, value: Any) -> Any:
        return _env_mapping(value)

    @field_validator("config")
    @classmethod
    def _names(cls, value: dict[str, ConfigParameter]) -> dict[str, ConfigParameter]:
        for name in value:
            if not re.match(r"^[A-Za-z_][A-Za-z0-9_-]*$", name):
                raise ValueError(f"{name!r} is not a valid parameter name")
        return value

    @model_validator(mode="after")
    def _templates_known(self) -> Spec:
        for index, step in enumerate(self.steps):
            for field, text in _step_texts(step):
                for name in _TEMPLATE.findall(text):
                    if name not in self.config:
                        raise ValueError(
                            f"steps[{index}].{field} uses {{{{ config.{name} }}}}, which spec.config does not declare"
                        )
        return self


class Metadata(_Model):
    name: str = Field(min_length=1, max_length=63)
    labels: dict[str, str] = Field(default_factory=dict)
    description: str = Field(default="", max_length=4000)

    @field_validator("name")
    @classmethod
    def _slug(cls, value: str) -> str:
        if not is_slug(value):
            raise ValueError("must be lowercase letters, digits and '-' (like a DNS label)")
        return value

    @field_validator("labels")
    @classmethod
    def _labels(cls, value: dict[str, str]) -> dict[str, str]:
        return labels.check_labels(value)


class Workflow(_Model):
    """A whole workflow document."""

    kind: Literal["TestWorkflow"] = "TestWorkflow"
    api_version: str | None = Field(default=None, alias="apiVersion")
    metadata: Metadata
    spec: Spec


def _relative_path(value: str) -> str:
    if not value or value.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:", value):
        raise ValueError(f"{value!r} must be a path relative to the workspace")
    if ".." in re.split(r"[/\\]", value):
        raise ValueError(f"{value!r} must not contain '..'")
    if "\x00" in value:
        raise ValueError("must not contain NUL")
    return value


def _env_mapping(value: Any) -> Any:
    """Accept ``{NAME: value}`` or Testkube's ``[{name: NAME, value: value}]``; values become strings."""
    if isinstance(value, list):
        mapping: dict[str, Any] = {}
        for item in value:
            if not isinstance(item, dict) or set(item) - {"name", "value"} or "name" not in item:
                raise ValueError("each env entry needs 'name' and 'value'")
            mapping[str(item["name"])] = item.get("value", "")
        value = mapping
    if isinstance(value, dict):
        for name in value:
            if not isinstance(name, str) or not _ENV_NAME.match(name):
                raise ValueError(f"{name!r} is not a valid environment variable name")
        return {k: _scalar_text(v) for k, v in value.items()}
    return value


def _scalar_text(value: Any) -> Any:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    return value


def _step_texts(step: Step) -> list[tuple[str, str]]:
    """Every text of a step that may use ``{{ config.name }}``, with its field path within the step."""
    texts = [("shell", step.shell or ""), ("workingDir", step.working_dir or "")]
    texts += [(f"env.{key}", value) for key, value in step.env.items()]
    if step.run:
        texts += [(f"run.command[{i}]", part) for i, part in enumerate(step.run.command)]
        texts += [(f"run.args[{i}]", part) for i, part in enumerate(step.run.args)]
    return texts


def render(text: str, values: dict[str, Any]) -> str:
    """Replace ``{{ config.name }}`` with the run's value for ``name``."""
    return _TEMPLATE.sub(lambda m: format_value(values[m.group(1)]), text)


def format_value(value: Any) -> str:
    """How a config value appears in commands and environment variables."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _path(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


class _NoAliasLoader(yaml.SafeLoader):
    """The safe loader, refusing anchors and aliases (they serve only to amplify)."""

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            event: Any = self.peek_event()  # type: ignore[no-untyped-call]
            raise yaml.YAMLError(f"YAML aliases are not allowed (line {event.start_mark.line + 1})")
        return super().compose_node(parent, index)


def load_yaml(text: str, *, max_bytes: int) -> Any:
    """Safely parse one YAML document of at most ``max_bytes``."""
    if len(text.encode()) > max_bytes:
        raise InvalidInput(f"the workflow definition is larger than {max_bytes} bytes")
    try:
        return yaml.load(text, Loader=_NoAliasLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as exc:
        raise InvalidInput(f"the workflow definition is not valid YAML: {exc}") from None


def validate(document: Any) -> Workflow:
    """Validate a parsed document; raise ``InvalidInput`` naming each field path."""
    if not isinstance(document, dict):
        raise InvalidInput("the workflow definition must be a mapping with kind, metadata and spec")
    if bad := [FieldError(_path(loc), nul.MESSAGE) for loc in nul.locations(document)]:
        raise InvalidInput("the workflow definition is invalid", errors=bad)
    try:
        return Workflow.model_validate(document)
    except ValidationError as exc:
        errors = [FieldError(_path(e["loc"]), validation_message(e)) for e in exc.errors()]
        raise InvalidInput("the workflow definition is invalid", errors=errors) from None


def parse(text: str, *, max_bytes: int) -> Workflow:
    """Parse and validate a YAML workflow definition (a new or changed one: its defaults are checked too)."""
    workflow = validate(load_yaml(text, max_bytes=max_bytes))
    bad = [
        FieldError(f"spec.config.{name}.default", problem)
        for name, parameter in workflow.spec.config.items()
        if (problem := parameter.default_problem()) is not None
    ]
    if bad:
        raise InvalidInput("the workflow definition is invalid", errors=bad)
    return workflow


def to_document(workflow: Workflow) -> dict[str, Any]:
    """The canonical JSON-able form stored with the workflow."""
    return workflow.model_dump(mode="json", by_alias=True, exclude_none=True)


def to_yaml(workflow: Workflow) -> str:
    return yaml.safe_dump(to_document(workflow), sort_keys=False, allow_unicode=True)


def json_schema() -> dict[str, Any]:
    """The published JSON Schema of a workflow document."""
    schema = Workflow.model_json_schema(by_alias=True)
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["$id"] = "https://testgate.dev/schemas/testworkflow.json"
    schema["title"] = "TestWorkflow"
    return schema


def schema_text() -> str:
    return json.dumps(json_schema(), indent=2)
