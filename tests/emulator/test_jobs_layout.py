"""The emulator's layering, checked on the source: it never imports the provider, and the job package does not
import ``core`` (which builds the state holding the job engine), so the two cannot form an import circle."""

from __future__ import annotations

import ast
from pathlib import Path

import airflow_provider_tencent_ci.emulator as emulator_pkg

EMULATOR = Path(emulator_pkg.__file__).parent


def imported_modules(path: Path) -> set[str]:
    """Absolute names of the modules ``path`` imports (relative imports resolved against its package)."""
    package = ".".join(path.relative_to(EMULATOR.parent.parent).with_suffix("").parts[:-1])
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text("utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = package.split(".")
            if node.level:
                base = base[: len(base) - node.level + 1]
                module = ".".join([*base, node.module] if node.module else base)
            else:
                module = node.module or ""
            names.add(module)
            names.update(f"{module}.{alias.name}" for alias in node.names)
    return names


def test_emulator_never_imports_the_provider_nor_airflow() -> None:
    for path in EMULATOR.rglob("*.py"):
        for name in imported_modules(path):
            assert not name.startswith("airflow.") and name != "airflow", (path, name)
            if name.startswith("airflow_provider_tencent_ci"):
                assert name.startswith("airflow_provider_tencent_ci.emulator"), (path, name)


def test_job_package_does_not_import_core() -> None:
    core = "airflow_provider_tencent_ci.emulator.core"
    for path in (EMULATOR / "jobs").glob("*.py"):
        assert not any(n == core or n.startswith(core + ".") for n in imported_modules(path)), path
