"""The layers point one way (README, Layout): cli -> stages -> platform. Read from the code's import statements."""

from __future__ import annotations

import ast
from pathlib import Path

from ray_app.testing.stack import REPO

PACKAGES = ("ray_app", "spark_jobs", "serve_deployments")
PLATFORM = (
    "ray_app.config",
    "ray_app.schemas",
    "ray_app.documents",
    "ray_app.times",
    "ray_app.kafka_clients",
    "ray_app.kafka_topics",
    "ray_app.es_indices",
    "ray_app.ray_cluster",
    "ray_app.jvm_artifacts",
    "ray_app.lifecycle",
    "ray_app.errors",
    "ray_app.metrics",
    "ray_app.alerts",
    "ray_app.markets",
)
TEST_DOUBLES = ("tests", "ray_app.testing")


def _module(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _is_main_block(node: ast.AST) -> bool:
    return (
        isinstance(node, ast.If)
        and isinstance(node.test, ast.Compare)
        and isinstance(node.test.left, ast.Name)
        and node.test.left.id == "__name__"
    )


def _imports(tree: ast.Module) -> set[str]:
    """Every module a file imports, at the top or inside functions, except in its `if __name__ == "__main__"` block
    (an entry point's alias for a CLI command)."""
    found: set[str] = set()
    pending: list[ast.AST] = [tree]
    while pending:
        node = pending.pop()
        if _is_main_block(node):
            continue
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
        pending.extend(ast.iter_child_nodes(node))
    return found


def _graph() -> dict[str, set[str]]:
    graph = {}
    for package in PACKAGES:
        for path in (REPO / package).rglob("*.py"):
            graph[_module(path)] = _imports(ast.parse(path.read_text()))
    return graph


def _within(module: str, prefixes: tuple[str, ...] | str) -> bool:
    prefixes = (prefixes,) if isinstance(prefixes, str) else prefixes
    return any(module == prefix or module.startswith(prefix + ".") for prefix in prefixes)


def _offenders(rule) -> list[str]:
    return sorted(
        f"{module} imports {target}"
        for module, targets in _graph().items()
        for target in targets
        if rule(module, target)
    )


def test_only_the_cli_and_its_entry_point_import_the_cli() -> None:
    assert (
        _offenders(lambda m, t: _within(t, "ray_app.cli") and not _within(m, "ray_app.cli") and m != "ray_app.__main__")
        == []
    )


def test_one_entry_point_spelling() -> None:
    """`ray-app <command>` and `python -m ray_app <command>`: no other `__main__` module, no module that runs as a
    script."""
    mains = sorted(_module(path) for package in PACKAGES for path in (REPO / package).rglob("__main__.py"))
    assert mains == ["ray_app.__main__"]
    scripts = [
        _module(path)
        for package in PACKAGES
        for path in (REPO / package).rglob("*.py")
        if not _within(_module(path), "ray_app.testing")
        and any(_is_main_block(node) for node in ast.parse(path.read_text()).body)
    ]
    assert scripts == []


def test_no_stage_imports_the_local_stack() -> None:
    """The production Spark job included: what cluster nodes need (JVM artifacts) is the platform's. Only the CLI
    and the operations on the whole platform (bring-up, status, down) drive the local stack."""
    assert (
        _offenders(
            lambda m, t: (
                _within(t, "ray_app.stack")
                and not _within(m, ("ray_app.stack", "ray_app.cli", "ray_app.operations", "ray_app.testing"))
            )
        )
        == []
    )


def test_the_operations_are_driven_only_by_the_cli() -> None:
    assert (
        _offenders(
            lambda m, t: _within(t, "ray_app.operations") and not _within(m, ("ray_app.operations", "ray_app.cli"))
        )
        == []
    )


def test_every_live_part_runs_a_stage_by_the_one_contract() -> None:
    """Each live part names a function of (settings, stop) that returns a report with ``ok`` and ``line()``."""
    import inspect

    from ray_app.live.parts import PARTS

    for part in PARTS:
        parameters = list(inspect.signature(part.stage()).parameters)
        assert parameters[:2] == ["settings", "stop"], part.name


def test_no_production_module_imports_test_doubles() -> None:
    assert _offenders(lambda m, t: _within(t, TEST_DOUBLES) and not _within(m, "ray_app.testing")) == []


def test_the_platform_imports_only_the_platform() -> None:
    ours = PACKAGES
    assert _offenders(lambda m, t: _within(m, PLATFORM) and _within(t, ours) and not _within(t, PLATFORM)) == []


def test_tests_are_in_their_folders_and_import_only_helpers() -> None:
    """Tests live in ``tests/unit/`` (no engine) or ``tests/engines/`` (the session's stack), helpers in
    ``tests/support/`` or ``ray_app.testing``; conftest.py holds pytest fixtures only, which pytest injects by name."""
    tests = REPO / "tests"
    assert sorted(path.name for path in tests.glob("*.py")) == ["__init__.py", "conftest.py"]
    for folder in ("unit", "engines"):
        for path in (tests / folder).glob("*.py"):
            assert path.name.startswith(("test_", "conftest", "__init__")), path
            imported = _imports(ast.parse(path.read_text()))
            assert [t for t in imported if _within(t, "tests") and not _within(t, "tests.support")] == [], path


def _prints_or_exits(tree: ast.Module) -> list[str]:
    """Calls to print or sys.exit, and imports of typer or of rich's console and live views, outside the file's
    `if __name__ == "__main__"` block."""
    found: list[str] = []
    pending: list[ast.AST] = [tree]
    while pending:
        node = pending.pop()
        if _is_main_block(node):
            continue
        if isinstance(node, ast.Call):
            name = ast.unparse(node.func)
            if name in {"print", "sys.exit", "exit", "os._exit"}:
                found.append(f"{name}() at line {node.lineno}")
        pending.extend(ast.iter_child_nodes(node))
    found += [f"imports {t}" for t in _imports(tree) if _within(t, ("typer", "rich.console", "rich.live"))]
    return found


def test_only_the_cli_prints_or_exits() -> None:
    """Library code raises domain errors; the CLI turns them into messages and exit codes."""
    offenders = {}
    for package in PACKAGES:
        for path in (REPO / package).rglob("*.py"):
            module = _module(path)
            if _within(module, ("ray_app.cli", "ray_app.testing")) or module.endswith("__main__"):
                continue
            if found := _prints_or_exits(ast.parse(path.read_text())):
                offenders[module] = found
    assert offenders == {}


def test_the_rules_see_real_imports() -> None:
    """The graph is not empty by mistake: the CLI mounts the stages, and the Spark job uses the platform."""
    graph = _graph()
    assert "ray_app.cli.stream" in graph["ray_app.cli.commands"]
    assert (
        "ray_app.jvm_artifacts"
        in {t.rsplit(".", 1)[0] for t in graph["spark_jobs.session"]} | graph["spark_jobs.session"]
    )
