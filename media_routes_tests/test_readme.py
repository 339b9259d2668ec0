"""The README's commands are what CI runs and what the CLI offers."""

from __future__ import annotations

import re

from media_routes_tests.conftest import REPO


def _bash_blocks(text: str) -> list[str]:
    return [b.strip() for b in re.findall(r"```bash\n(.*?)```", text, flags=re.S)]


def test_ci_runs_the_readme_test_command() -> None:
    readme = (REPO / "README.md").read_text()
    section = readme.split("## Run the tests", 1)[1]
    test_cmd = _bash_blocks(section)[0]
    assert "pytest" in test_cmd
    ci = (REPO / ".ci" / "run").read_text()
    assert test_cmd in ci.splitlines()


def test_readme_demo_command_uses_the_cli() -> None:
    readme = (REPO / "README.md").read_text()
    demo_cmd = _bash_blocks(readme.split("## Quick start", 1)[1])[0]
    assert "pip install -e ." in demo_cmd and demo_cmd.endswith("media-routes demo")
