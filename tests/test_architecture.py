"""The rooms keep their shape (docs/architecture.md): no two modules import each other, directly or in a loop (lazy
imports and type-only imports count too), and every catalog change goes through the mirror's writer."""

import ast
import re
from pathlib import Path

ROOT = Path(__file__).parents[1]


def modules() -> dict[str, Path]:
    found = {}
    for folder, package in ((ROOT / "hubmirror", "hubmirror"), (ROOT / "plugins", "hubmirror.plugins")):
        for path in folder.rglob("*.py"):
            parts = list(path.relative_to(folder).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            found[".".join([package, *parts])] = path
    return found


def import_graph() -> dict[str, set[str]]:
    """Module -> the hubmirror modules it imports anywhere in its text. `from package import submodule` is an import
    of the submodule (its package's __init__ runs first, but that is the package's own business)."""
    mods = modules()

    def owner(name: str) -> str | None:
        while name and name not in mods:
            name = name.rpartition(".")[0]
        return name or None

    graph = {}
    for name, path in mods.items():
        edges = set()
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    base = ".".join([*package.split(".")[:len(package.split(".")) - node.level + 1], *filter(None, [base])])
                subs = [f"{base}.{alias.name}" for alias in node.names if f"{base}.{alias.name}" in mods]
                targets = subs if len(subs) == len(node.names) else [base, *subs]
            else:
                continue
            edges |= {owner(t) for t in targets if t.startswith("hubmirror")} - {None, name}
        graph[name] = edges
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in graph:
        if v not in index:
            visit(v)
    return found


def test_no_two_modules_import_each_other():
    graph = import_graph()
    assert "hubmirror.fetch.files" in graph["hubmirror.admit"]  # the graph sees real edges
    assert cycles(graph) == []


def test_the_cycle_finder_finds_a_loop():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_catalog_changes_go_through_the_mirror_writer():
    writes = re.compile(r"catalog\.(record_revisions|record_scans|record_benchmark|record_index|allow|revoke|remove|"
                        r"apply_site)\(|\.publish_\w+\(")
    allowed = {ROOT / "hubmirror" / "writer.py", *(ROOT / "hubmirror" / "sitelog").glob("*.py")}
    offenders = [f"{path.relative_to(ROOT)}:{n}" for path in modules().values() if path not in allowed
                 for n, line in enumerate(path.read_text().splitlines(), 1) if writes.search(line)]
    assert offenders == []
