"""Reading a workflow definition for ``workflow apply``: from a file or stdin, with local paths made absolute.

A relative ``spec.content.directory`` means "next to this YAML file" to the person who wrote it, but the
server copies the directory from wherever it runs; so the CLI rewrites it as an absolute path before
sending. Only that one scalar is replaced in the text: comments and layout are kept as written.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import typer
import yaml
from yaml.nodes import MappingNode, Node, ScalarNode


def read(file: str) -> tuple[str, Path]:
    """The definition's text and the directory its relative paths are relative to (``-``: stdin, cwd)."""
    if file == "-":
        return sys.stdin.read(), Path.cwd()
    path = Path(file)
    try:
        return path.read_text(encoding="utf-8"), path.resolve().parent
    except (OSError, UnicodeDecodeError) as exc:
        raise typer.BadParameter(f"cannot read {file}: {exc}", param_hint="--file") from None


def _child(node: Node | None, key: str) -> Node | None:
    if not isinstance(node, MappingNode):
        return None
    for name, value in node.value:
        if isinstance(name, ScalarNode) and name.value == key:
            return value  # type: ignore[no-any-return]
    return None


def _directory_node(text: str) -> ScalarNode | None:
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError:
        return None  # the server reports the YAML error, with its line
    node = _child(_child(_child(root, "spec"), "content"), "directory")
    return node if isinstance(node, ScalarNode) and node.tag == "tag:yaml.org,2002:str" else None


def resolve_directory(text: str, base: Path) -> str:
    """``text`` with a relative ``spec.content.directory`` replaced by its absolute path under ``base``."""
    node = _directory_node(text)
    if node is None or not node.value or Path(node.value).is_absolute():
        return text
    absolute = (base / node.value).resolve()
    start, end = node.start_mark.index, node.end_mark.index
    return text[:start] + json.dumps(str(absolute)) + text[end:]
