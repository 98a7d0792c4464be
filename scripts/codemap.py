"""Print the shape of the code: files and lines per package, which package imports which, the longest functions.

Used for the before/after numbers of a refactoring: `python scripts/codemap.py [--json] [--root CHECKOUT]` (another
checkout, e.g. a `git worktree` of an older commit, measured by the same rules).
"""

from __future__ import annotations

import ast
import json
import sys
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("ray_app", "spark_jobs", "serve_deployments")
# the layers of docs/architecture.md, by module (older names included, so an older checkout is measured alike)
PLATFORM = {
    "config",
    "schemas",
    "documents",
    "times",
    "markets",
    "kafka_clients",
    "kafka_io",
    "kafka_topics",
    "es_indices",
    "ray_cluster",
    "jvm_artifacts",
    "lifecycle",
    "errors",
    "metrics",
}


def layer(module: str) -> str:
    """cli, operations, stages, platform, local stack or test doubles."""
    parts = module.split(".")
    if parts[0] != "ray_app" or len(parts) == 1:
        return "stages"
    second = parts[1]
    if second in {"cli", "__main__"}:
        return "cli"
    if second in PLATFORM:
        return "platform"
    return {"operations": "operations", "stack": "local stack", "testing": "test doubles"}.get(second, "stages")


def _module_name(path: Path, root: Path = ROOT) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _group(module: str) -> str:
    """A module's group: the top package, or its first sub-package/module inside ray_app; entry points
    (``__main__`` modules) are their own."""
    if module.endswith("__main__"):
        return module
    parts = module.split(".")
    if parts[0] == "ray_app" and len(parts) > 1:
        return ".".join(parts[:2])
    return parts[0]


def _outside_main_block(tree: ast.Module) -> list[ast.AST]:
    """Every node except those of ``if __name__ == "__main__":`` (an entry point's alias, not a dependency)."""
    nodes: list[ast.AST] = []
    pending: list[ast.AST] = [tree]
    while pending:
        node = pending.pop()
        if isinstance(node, ast.If) and "__name__" in ast.unparse(node.test):
            continue
        nodes.append(node)
        pending.extend(ast.iter_child_nodes(node))
    return nodes


def survey(root: Path = ROOT) -> dict[str, object]:
    files: dict[str, int] = {}
    edges: dict[str, set[str]] = defaultdict(set)
    functions: list[tuple[int, str]] = []
    for package in PACKAGES:
        for path in sorted((root / package).rglob("*.py")):
            source = path.read_text()
            module = _module_name(path, root)
            files[module] = source.count("\n")
            tree = ast.parse(source)
            for node in _outside_main_block(tree):
                targets: list[str] = []
                if isinstance(node, ast.Import):
                    targets = [alias.name for alias in node.names]
                elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                    targets = [node.module]
                for target in targets:
                    if target.split(".")[0] in PACKAGES and _group(target) != _group(module):
                        edges[_group(module)].add(_group(target))
                if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                    length = (node.end_lineno or node.lineno) - node.lineno + 1
                    functions.append((length, f"{module}.{node.name}"))
    functions.sort(reverse=True)
    return {
        "files": len(files),
        "lines": sum(files.values()),
        "lines_by_package": {p: sum(n for m, n in files.items() if m.split(".")[0] == p) for p in PACKAGES},
        "by_layer": {
            name: {
                "files": sum(1 for m in files if layer(m) == name),
                "lines": sum(n for m, n in files.items() if layer(m) == name),
            }
            for name in ("cli", "operations", "stages", "platform", "local stack", "test doubles")
        },
        "tests": {
            "files": len(list((root / "tests").rglob("*.py"))),
            "lines": sum(p.read_text().count("\n") for p in (root / "tests").rglob("*.py")),
        },
        "fmt_skip": sum(
            p.read_text().count("fmt: skip")
            for d in (*PACKAGES, "tests", "bench", "scripts")
            for p in (root / d).rglob("*.py")
        ),
        "imports": {group: sorted(targets) for group, targets in sorted(edges.items())},
        "longest_functions": [{"name": name, "lines": length} for length, name in functions[:10]],
    }


def main() -> None:
    root = Path(sys.argv[sys.argv.index("--root") + 1]).resolve() if "--root" in sys.argv else ROOT
    report = survey(root)
    if "--json" in sys.argv:
        print(json.dumps(report))
        return
    print(f"files {report['files']}, lines {report['lines']}: {report['lines_by_package']}")
    print(
        "by layer: "
        + ", ".join(f"{name} {v['files']} files / {v['lines']} lines" for name, v in report["by_layer"].items())
    )  # type: ignore[attr-defined]
    print(f"tests: {report['tests']}; fmt: skip markers: {report['fmt_skip']}")
    print("imports (group -> groups it imports):")
    for group, targets in report["imports"].items():  # type: ignore[union-attr]
        print(f"  {group:32} -> {', '.join(targets)}")
    print("longest functions:")
    for row in report["longest_functions"]:  # type: ignore[union-attr]
        print(f"  {row['lines']:4}  {row['name']}")


if __name__ == "__main__":
    main()
