"""A workflow's run parameters (``spec.config``): their kinds, defaults and the coercion of given values.

A value given for a run (``--config name=value``, a tool's ``config``) is checked and converted here;
a default is checked the same way when a definition is saved (``spec.parse``), so no run fails on the
workflow's own default.
"""

from __future__ import annotations

import math
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, model_validator
from pydantic.alias_generators import to_camel


class SpecModel(BaseModel):
    """The workflow document's models: unknown fields refused, camelCase aliases, immutable."""

    model_config = ConfigDict(extra="forbid", alias_generator=to_camel, populate_by_name=True, frozen=True)


class ConfigParameter(SpecModel):
    """A parameter a run may set: ``--config name=value``."""

    type: Literal["string", "integer", "number", "boolean"] = "string"
    default: str | int | float | bool | None = None
    description: str = ""
    sensitive: bool = False
    enum: list[str] | None = None

    @model_validator(mode="after")
    def _no_secret_default(self) -> ConfigParameter:
        # A default would be stored with the workflow; secrets are only ever given at run time.
        if self.sensitive and self.default is not None:
            raise ValueError("a sensitive parameter cannot have a default; pass its value when running")
        return self

    def default_problem(self) -> str | None:
        """Why a run could not take the default, if it could not. Checked when a definition is saved, not
        when a stored one is read: a workflow saved before this check must still load and run."""
        if self.default is None:
            return None
        try:
            self.coerce(self.default)
        except ValueError as exc:
            return f"the default: {exc}"
        return None

    def coerce(self, value: Any) -> str | int | float | bool:
        """Check and convert one value given for this parameter."""
        try:
            result: str | int | float | bool
            if isinstance(value, bool) and self.type in ("integer", "number"):
                raise ValueError("a boolean is not a number")
            if self.type == "integer":
                if isinstance(value, float) and not value.is_integer():
                    raise ValueError("a fraction is not an integer")
                result = int(value)
            elif self.type == "number":
                result = float(value)
                if not math.isfinite(result):
                    raise ValueError("not a finite number")
            elif self.type == "boolean":
                result = _as_bool(value)
            elif isinstance(value, str | int | float) and not isinstance(value, bool):
                result = str(value)
            else:
                raise ValueError("not a string")
        except (TypeError, ValueError, OverflowError):
            raise ValueError(f"expected {_KINDS[self.type]}, got {_shown(value)}") from None
        if self.enum is not None and str(result) not in self.enum:
            raise ValueError(f"must be one of {', '.join(self.enum)}")
        return result


_KINDS = {"string": "a string", "integer": "an integer", "number": "a number", "boolean": "a boolean (true or false)"}


def _shown(value: Any) -> str:
    """A value as an error message quotes it: its JSON-ish repr, cut to 60 characters."""
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _as_bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("true", "1", "yes", "on"):
        return True
    if text in ("false", "0", "no", "off"):
        return False
    raise ValueError("not a boolean")
