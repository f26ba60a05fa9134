"""The house rules that keep the code base in shape, run as part of the suite."""

from __future__ import annotations

import pkgutil
import subprocess
import sys
import tomllib
from pathlib import Path

import vault

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def _run(*cmd: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=900)


def test_ruff_is_clean() -> None:
    result = _run(str(BIN / "ruff"), "check", "src", "tests")
    assert result.returncode == 0, result.stdout + result.stderr


def test_mypy_strict_is_clean() -> None:
    result = _run(str(BIN / "mypy"))  # strict = true in pyproject.toml
    assert result.returncode == 0, result.stdout + result.stderr


def test_import_contracts_hold() -> None:
    result = _run(str(BIN / "lint-imports"))
    assert result.returncode == 0, result.stdout + result.stderr


def test_contracts_cover_every_core_module() -> None:
    """A new top-level module must be added to the click/huey contracts, or it escapes them."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    contracts = {c["name"]: c for c in config["tool"]["importlinter"]["contracts"]}
    modules = {f"vault.{m.name}" for m in pkgutil.iter_modules(vault.__path__)} - {"vault.__main__"}
    click_sources = set(contracts["Only vault.cli imports click"]["source_modules"])
    huey_sources = set(contracts["Only vault.jobs imports huey"]["source_modules"])
    assert modules - {"vault.cli"} <= click_sources, modules - click_sources
    assert modules - {"vault.jobs"} <= huey_sources, modules - huey_sources


def test_layers_name_every_core_package() -> None:
    """Every folder and top-level module of the core sits in one layer of the layers
    contract (docs/architecture.md), so a new one cannot escape the import rules."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    contracts = {c["name"]: c for c in config["tool"]["importlinter"]["contracts"]}
    layers = contracts["Layers of the core"]["layers"]
    named = {part.strip() for layer in layers for part in layer.split("|")}
    modules = {m.name for m in pkgutil.iter_modules(vault.__path__)} - {"__main__", "migrations"}
    assert modules == named, (modules - named, named - modules)


def test_core_imports_without_textual() -> None:
    """`import vault` (and its CLI) must work on a machine where textual is not importable."""
    code = (
        "import sys\n"
        "class Block:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] in ('textual', 'vault_tui'):\n"
        "            raise ImportError('blocked: ' + name)\n"
        "sys.meta_path.insert(0, Block())\n"
        "import vault, vault.cli.main, vault.operations.backup, vault.operations.restore\n"
        "import vault.operations.verify, vault.journal\n"
        "assert not any(m.startswith('textual') for m in sys.modules)\n"
        "print('ok')\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0 and result.stdout.strip() == "ok", result.stderr
