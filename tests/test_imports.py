"""The package's shape: an import graph without cycles, a short longest chain, small modules,
and a core that imports neither aiohttp nor aiobotocore."""

from __future__ import annotations

import ast
from pathlib import Path

from bench.imports import figures, import_graph

PACKAGE = Path(__file__).resolve().parent.parent / "metadata_gateway"
MAX_CHAIN = 12  # modules; 16 before the package was laid out by steps
MAX_MODULE_LINES = 400


def test_the_import_graph_has_no_cycle() -> None:
    """No module imports, directly or not, a module that imports it."""
    assert figures(PACKAGE).cycles == ()


def test_the_longest_import_chain_stays_short() -> None:
    """A chain of imports, importer first, is at most `MAX_CHAIN` modules long."""
    chain = figures(PACKAGE).longest_chain
    assert len(chain) <= MAX_CHAIN, " -> ".join(chain)


def test_no_module_is_over_four_hundred_lines() -> None:
    """Every module of the package fits in a few hundred lines."""
    long = {
        str(path.relative_to(PACKAGE)): n
        for path in PACKAGE.rglob("*.py")
        if (n := len(path.read_text().splitlines())) > MAX_MODULE_LINES
    }
    assert long == {}


def test_the_core_imports_neither_aiohttp_nor_aiobotocore() -> None:
    """Queueing, coalescing, admission and scheduling run without the frameworks."""
    imported: set[str] = set()
    for path in (PACKAGE / "core").glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                imported.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module:
                imported.add(node.module.split(".")[0])
    assert not imported & {"aiohttp", "aiobotocore", "botocore", "redis"}


def test_the_web_edge_reaches_the_queues_only_through_the_intake_seam() -> None:
    """HTTP and WebSocket modules import no queue, gateway or Redis module."""
    graph = import_graph(PACKAGE)
    for module in ("http_api", "ws_api", "ws_session", "documents"):
        targets = graph[f"metadata_gateway.ingress.{module}"]
        reached = {t for t in targets if t.startswith("metadata_gateway.distributed")}
        reached |= {t for t in targets if t.endswith((".gateway", ".channel_queue", ".local"))}
        assert reached == set(), (module, reached)
