"""Import boundaries (issue #12, item 7): deploy/ and the package stand alone.

* nothing under ``deploy/`` or ``media_routes/`` imports the test suite (``media_routes_tests``): the test
  doubles the rehearsal needs live in ``media_routes.testing``;
* nothing in ``media_routes/`` outside ``media_routes/testing/`` imports ``media_routes.testing``: the pipeline,
  CLI and Dagster definitions never run on a stub.

Real imports only, read with :mod:`ast` (``import x``, ``from x import y``, relative imports resolved, and
``importlib.import_module("x")`` / ``__import__("x")`` with a literal name); a comment or docstring naming a
test file is not an import.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
TESTS = "media_routes_tests"
TESTING = "media_routes.testing"


def _package_of(path: Path, root: Path = REPO) -> str:
    """The dotted package a module file belongs to (``media_routes/testing/x.py`` -> ``media_routes.testing``)."""
    return ".".join(path.relative_to(root).with_suffix("").parts[:-1])


def imported_modules(path: Path, root: Path = REPO) -> Iterator[tuple[int, str]]:
    """(line, absolute module name) of every import in ``path``; ``from m import a`` yields ``m`` and ``m.a``."""
    tree = ast.parse(path.read_text(), filename=str(path))
    package = _package_of(path, root).split(".")
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else []  # level 1: this package
            module = ".".join([*base, *([node.module] if node.module else [])])
            yield node.lineno, module
            for alias in node.names:
                yield node.lineno, f"{module}.{alias.name}"
        elif isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant):
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else ""
            if name in ("import_module", "__import__") and isinstance(node.args[0].value, str):
                yield node.lineno, node.args[0].value


def _is_under(module: str, package: str) -> bool:
    return module == package or module.startswith(package + ".")


def _python_files(root: Path, *folders: str) -> list[Path]:
    return sorted(p for folder in folders for p in (root / folder).rglob("*.py") if "__pycache__" not in p.parts)


def offending_imports(files: list[Path], package: str, root: Path = REPO) -> list[str]:
    """``path:line: import of module`` for every import statement in ``files`` that reaches into ``package``."""
    found: dict[tuple[Path, int], str] = {}
    for path in files:
        for line, module in imported_modules(path, root):
            if _is_under(module, package):
                found.setdefault((path, line), module)
    return [f"{path.relative_to(root)}:{line}: imports {module}" for (path, line), module in sorted(found.items())]


def test_deploy_and_the_package_never_import_the_test_suite() -> None:
    files = _python_files(REPO, "deploy", "media_routes")
    assert REPO / "deploy" / "rehearse.py" in files and REPO / "media_routes" / "testing" / "rehearsal.py" in files
    assert offending_imports(files, TESTS) == []


def test_production_code_never_imports_the_test_doubles() -> None:
    files = [p for p in _python_files(REPO, "media_routes") if not _is_under(_package_of(p), TESTING)]
    assert REPO / "media_routes" / "definitions.py" in files
    assert REPO / "media_routes" / "testing" / "rehearsal.py" not in files
    assert offending_imports(files, TESTING) == []


def test_the_deploy_entry_point_is_seen_importing_the_rehearsal() -> None:
    modules = {m for _, m in imported_modules(REPO / "deploy" / "rehearse.py")}
    assert "media_routes.testing.rehearsal" in modules  # the walker does see the imports that are there


@pytest.mark.parametrize(
    ("source", "found"),
    [
        ("import media_routes_tests.stubs\n", True),
        ("from media_routes_tests.conftest import write_campaign\n", True),
        ("from media_routes_tests import services\n", True),
        ("def f():\n    import media_routes_tests as t\n", True),
        ("import importlib\nimportlib.import_module('media_routes_tests.services')\n", True),
        ("# media_routes_tests/test_rehearsal.py runs this\n", False),
        ('"""See media_routes_tests/conftest.py."""\n', False),
        ("import media_routes_testsuite\n", False),
        ("from media_routes.testing import rehearsal\n", False),
    ],
)
def test_the_check_sees_real_imports_only(tmp_path: Path, source: str, found: bool) -> None:
    (tmp_path / "deploy").mkdir()
    (tmp_path / "deploy" / "x.py").write_text(source)
    assert bool(offending_imports(_python_files(tmp_path, "deploy"), TESTS, tmp_path)) is found


def test_relative_imports_are_resolved(tmp_path: Path) -> None:
    pkg = tmp_path / "media_routes" / "defs"
    pkg.mkdir(parents=True)
    (pkg / "a.py").write_text("from ..testing.stubs import google_stub\nfrom . import b\nfrom .c import d\n")
    (pkg / "__init__.py").write_text("from ..testing import rehearsal\n")
    modules = {m for _, m in imported_modules(pkg / "a.py", tmp_path)}
    assert {"media_routes.testing.stubs.google_stub", "media_routes.defs.b", "media_routes.defs.c.d"} <= modules
    assert "media_routes.testing.rehearsal" in {m for _, m in imported_modules(pkg / "__init__.py", tmp_path)}
    files = _python_files(tmp_path, "media_routes")
    assert offending_imports(files, TESTING, tmp_path) == [
        "media_routes/defs/__init__.py:1: imports media_routes.testing",
        "media_routes/defs/a.py:1: imports media_routes.testing.stubs",
    ]
