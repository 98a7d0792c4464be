"""Print the shape of the code: files and lines per package, which package imports which, the longest functions.

Used for the before/after numbers of a refactoring: `python scripts/codemap.py [--json]`.
"""

from __future__ import annotations

import ast
import json
import sys
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("ray_app", "spark_jobs", "serve_deployments")


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
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


def survey() -> dict[str, object]:
    files: dict[str, int] = {}
    edges: dict[str, set[str]] = defaultdict(set)
    functions: list[tuple[int, str]] = []
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            source = path.read_text()
            module = _module_name(path)
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
        "imports": {group: sorted(targets) for group, targets in sorted(edges.items())},
        "longest_functions": [{"name": name, "lines": length} for length, name in functions[:10]],
    }


def main() -> None:
    report = survey()
    if "--json" in sys.argv:
        print(json.dumps(report))
        return
    print(f"files {report['files']}, lines {report['lines']}: {report['lines_by_package']}")
    print("imports (group -> groups it imports):")
    for group, targets in report["imports"].items():  # type: ignore[union-attr]
        print(f"  {group:32} -> {', '.join(targets)}")
    print("longest functions:")
    for row in report["longest_functions"]:  # type: ignore[union-attr]
        print(f"  {row['lines']:4}  {row['name']}")


if __name__ == "__main__":
    main()
