"""ruff holds for all code, as configured in pyproject.toml ([tool.ruff]): the linter and the formatter, over every
Python file of the repository (the packages, the tests, the benchmarks, the scripts)."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

from ray_app.testing.stack import REPO

RUFF = [sys.executable, "-m", "ruff"]
MOST_FMT_SKIPS = 40  # the formatter is turned off only where it would break a table apart


def test_ruff_check_finds_nothing() -> None:
    checked = subprocess.run([*RUFF, "check", "--no-cache", "."], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert checked.returncode == 0, checked.stdout[-6000:] + checked.stderr[-2000:]


def test_every_file_is_formatted() -> None:
    checked = subprocess.run(
        [*RUFF, "format", "--check", "--no-cache", "."], cwd=REPO, capture_output=True, text=True, timeout=300
    )
    assert checked.returncode == 0, checked.stdout[-6000:] + checked.stderr[-2000:]


def _python_files() -> list[Path]:
    listed = subprocess.run(["git", "ls-files", "*.py"], cwd=REPO, capture_output=True, text=True, check=True)
    return [REPO / name for name in listed.stdout.split()] if listed.stdout else list(REPO.rglob("*.py"))


def test_the_formatter_is_seldom_turned_off() -> None:
    skips = sum(path.read_text().count("fmt: skip") for path in _python_files() if path.is_file())
    assert skips <= MOST_FMT_SKIPS
    assert all(ast.parse(path.read_text()) for path in _python_files() if path.is_file())
