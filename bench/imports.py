"""`python -m bench.imports [PACKAGE_DIR]`: the package's import graph, its cycles and its
longest import chain, read from the source with `ast` (nothing is imported)."""

from __future__ import annotations

import argparse
import ast
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = "metadata_gateway"


@dataclass(frozen=True, slots=True)
class GraphFigures:
    """What the import graph of a package looks like, in numbers."""

    modules: int
    edges: int
    cycles: tuple[tuple[str, ...], ...]  # strongly connected groups of more than one module
    longest_chain: tuple[str, ...]  # modules, importer first
    largest: tuple[tuple[str, int], ...]  # (module, lines), largest first


def module_name(path: Path, root: Path) -> str:
    """The dotted name of the module at `path`, inside the package directory `root`."""
    parts = list(path.relative_to(root.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _top_level_imports(tree: ast.Module) -> Iterator[ast.Import | ast.ImportFrom]:
    """Imports that run when the module is imported: not inside functions or TYPE_CHECKING."""
    stack: list[ast.stmt] = list(tree.body)
    while stack:
        node = stack.pop()
        if isinstance(node, ast.Import | ast.ImportFrom):
            yield node
        elif isinstance(node, ast.If) and not _is_type_checking(node):
            stack.extend(node.body + node.orelse)
        elif isinstance(node, ast.Try):
            stack.extend(node.body + node.orelse + node.finalbody)
            for handler in node.handlers:
                stack.extend(handler.body)


def import_graph(root: Path) -> dict[str, set[str]]:
    """Each module of the package and the package modules it imports at import time."""
    files = {module_name(p, root): p for p in sorted(root.rglob("*.py"))}
    graph: dict[str, set[str]] = {name: set() for name in files}
    for name, path in files.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for node in _top_level_imports(ast.parse(path.read_text(), str(path))):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            else:
                base = node.module or ""
                if node.level:
                    anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join([*anchor, base] if base else anchor)
                for alias in node.names:
                    sub = f"{base}.{alias.name}"
                    targets.append(sub if sub in files else base)
            # Explicit imports only, as import-linter and pydeps count them: importing a.b.c
            # also runs a/__init__, but that edge is Python's, not the module's choice.
            graph[name].update(t for t in targets if t in files and t != name)
    return graph


def cycles(graph: Mapping[str, set[str]]) -> list[list[str]]:
    """The strongly connected groups of more than one module (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in graph[node]:
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                groups.append(sorted(group))

    sys.setrecursionlimit(10_000)
    for node in sorted(graph):
        if node not in index:
            visit(node)
    return groups


def longest_chain(graph: Mapping[str, set[str]]) -> list[str]:
    """The longest path of imports; modules in one cycle count as one step."""
    group_of: dict[str, str] = {}
    for group in cycles(graph):
        for member in group:
            group_of[member] = group[0]

    def rep(node: str) -> str:
        return group_of.get(node, node)

    condensed: dict[str, set[str]] = {}
    for node, targets in graph.items():
        condensed.setdefault(rep(node), set()).update(
            rep(t) for t in targets if rep(t) != rep(node)
        )

    @cache
    def from_node(node: str) -> tuple[str, ...]:
        best: tuple[str, ...] = ()
        for target in sorted(condensed[node]):
            chain = from_node(target)
            if len(chain) > len(best):
                best = chain
        return (node, *best)

    longest: tuple[str, ...] = ()
    for node in sorted(condensed):
        chain = from_node(node)
        if len(chain) > len(longest):
            longest = chain
    return list(longest)


def figures(root: Path) -> GraphFigures:
    """Count modules, edges, cycles, the longest chain and the largest modules under `root`."""
    graph = import_graph(root)
    sizes = {
        module_name(p, root): len(p.read_text().splitlines()) for p in sorted(root.rglob("*.py"))
    }
    largest = sorted(sizes.items(), key=lambda item: -item[1])[:5]
    return GraphFigures(
        modules=len(graph),
        edges=sum(len(t) for t in graph.values()),
        cycles=tuple(tuple(g) for g in cycles(graph)),
        longest_chain=tuple(longest_chain(graph)),
        largest=tuple(largest),
    )


def main(argv: list[str] | None = None) -> int:
    """Print the figures of the package's import graph."""
    parser = argparse.ArgumentParser(prog="python -m bench.imports", description=__doc__)
    parser.add_argument("root", nargs="?", default=str(ROOT / PACKAGE), help="package directory")
    args = parser.parse_args(argv)
    found = figures(Path(args.root).resolve())
    print(f"modules: {found.modules}  import edges: {found.edges}")
    print(f"cycles: {len(found.cycles)}")
    for group in found.cycles:
        print("  " + " <-> ".join(group))
    print(f"longest import chain: {len(found.longest_chain)} modules")
    print("  " + "\n  -> ".join(found.longest_chain))
    print("largest modules: " + ", ".join(f"{m} ({n})" for m, n in found.largest))
    return 0


if __name__ == "__main__":
    sys.exit(main())
