"""Imports go one way (STYLE §1): nothing in apps/ imports the project package above it."""

import ast
from pathlib import Path

APPS = Path(__file__).resolve().parent.parent / "apps"


def imported_modules(path: Path):
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.module


def test_no_module_under_apps_imports_xrouter_project():
    offenders = sorted(
        f"{path.relative_to(APPS.parent)}: {module}"
        for path in APPS.rglob("*.py")
        for module in imported_modules(path)
        if module == "xrouter_project" or module.startswith("xrouter_project.")
    )
    assert offenders == []


def test_the_audit_log_sits_at_the_bottom():
    """apps/audit is imported by accounts, keys and the rest; it imports none of them (issue: operations)."""
    offenders = sorted(
        f"{path.relative_to(APPS.parent)}: {module}"
        for path in (APPS / "audit").rglob("*.py")
        for module in imported_modules(path)
        if module.startswith("apps.") and not module.startswith("apps.audit")
    )
    assert offenders == []
