"""The README's quickstart stays true: every command in it runs, with the exit code it promises.

The block is the ```console fence after the ``<!-- quickstart`` marker; each ``$ `` line is one command,
and a trailing ``# exits N`` comment gives its expected exit code (0 otherwise).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
EXPECTED = re.compile(r"#\s*exits (\d+)")
VENV_BIN = re.compile(r"(\$PWD/)?\.venv/bin/")


def quickstart() -> list[tuple[str, int]]:
    """The quickstart's commands with their expected exit codes, in order."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    block = re.search(r"<!-- quickstart.*?-->\s*```console\n(.*?)```", readme, re.S)
    assert block is not None, "README.md has no quickstart block"
    commands = []
    for line in block.group(1).splitlines():
        if line.startswith("$ "):
            expected = EXPECTED.search(line)
            commands.append((line[2:], int(expected.group(1)) if expected else 0))
    return commands


def test_the_quickstart_has_the_commands_people_need() -> None:
    text = " ".join(command for command, _ in quickstart())

    for needed in ("workflow apply", "workflow run", "--watch", "execution results", "token create"):
        assert needed in text


def test_every_quickstart_command_exits_as_the_readme_says(tmp_path: Path) -> None:
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("TESTGATE_")},
        "TESTGATE_DATA_DIR": str(tmp_path / "data"),
        "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
    }
    for command, expected in quickstart():
        # The README says .venv/bin/; run the testgate of the interpreter running these tests.
        runnable = VENV_BIN.sub(f"{BIN}/", command)
        done = subprocess.run(
            runnable, shell=True, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120, check=False
        )
        assert done.returncode == expected, f"{command}\n{done.stdout}\n{done.stderr}"
        assert "Traceback" not in done.stderr, f"{command}\n{done.stderr}"
