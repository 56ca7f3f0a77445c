"""The import rules of docs/ARCHITECTURE.md hold (import-linter contracts in pyproject.toml)."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_the_import_contracts_hold():
    result = subprocess.run(
        [sys.executable, "-c", "from importlinter.cli import lint_imports_command; lint_imports_command()"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert "0 broken" in result.stdout


def test_every_contract_is_described_in_the_architecture_doc():
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]
    doc = (ROOT / "docs" / "ARCHITECTURE.md").read_text()
    for contract in config["contracts"]:
        assert f"`{contract['id']}`" in doc, (
            f"docs/ARCHITECTURE.md does not explain contract {contract['id']}"
        )
