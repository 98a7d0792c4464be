"""The type checker over the three packages, as the test suite runs it (settings in pyproject.toml, [tool.mypy])."""

from __future__ import annotations

import re
import subprocess
import sys

from ray_app.testing.stack import REPO


def test_mypy_finds_no_type_errors_in_the_three_packages() -> None:
    checked = subprocess.run([sys.executable, "-m", "mypy"], cwd=REPO, capture_output=True, text=True, timeout=900)
    assert checked.returncode == 0, checked.stdout[-6000:] + checked.stderr[-2000:]
    files = re.search(r"no issues found in (\d+) source files", checked.stdout)
    python_files = sum(
        1 for package in ("ray_app", "spark_jobs", "serve_deployments") for _ in (REPO / package).rglob("*.py")
    )
    assert files and int(files.group(1)) == python_files, checked.stdout
