"""The layering of docs/ARCHITECTURE.md holds: every ``reachwatch.*`` import points down the table below,
and no two modules import each other (directly or round a circle).

Read from the source with ``ast``: imports at the top, inside functions (the CLI's lazy ones) and under
``if TYPE_CHECKING:`` all count, because each is a dependency a reader has to follow.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "daemon" / "reachwatch"

VOCABULARY = "vocabulary"
FEATURES = "features"
ENTRY = "app and cli"
# layer -> the layers its modules may import, and why (the rule a newcomer needs; ARCHITECTURE.md has it too)
LAYERS: dict[str, tuple[set[str], str]] = {
    VOCABULARY: ({VOCABULARY}, "errors, failures, model: the words every layer speaks, so they import none"),
    "config": ({VOCABULARY, "config"}, "models and the formats of config values: the ground floor"),
    "formats": ({VOCABULARY, "config", "formats"}, "pure wire formats: bytes in, bytes or a verdict out"),
    "net": ({VOCABULARY, "config", "formats", "net"}, "the only code that touches sockets"),
    "tor": ({VOCABULARY, "config", "formats", "net", "tor"}, "runtime services: the supervised tor"),
    "vpn": ({VOCABULARY, "config", "formats", "net", "vpn"}, "runtime services: canary streams, tunnels"),
    "probes": (
        {VOCABULARY, "config", "formats", "net", "tor", "vpn", "probes"},
        "one file per kind, built on everything below",
    ),
    "importers": (
        {VOCABULARY, "config", "formats", "importers"},
        "user files to YAML: no sockets, no runtime",
    ),
    FEATURES: (
        {VOCABULARY, "config", "formats", "net", "tor", "vpn", "probes", "importers", FEATURES},
        "state, verdict, scheduler, journal, metrics, web, logging and the like: anything below the entry",
    ),
    ENTRY: (set(), "app and cli wire everything together"),
}
LAYERS[ENTRY] = ({*LAYERS, ENTRY}, LAYERS[ENTRY][1])
PACKAGES = {"config", "formats", "net", "tor", "vpn", "probes", "importers"}


def layer(module: str) -> str:
    parts = module.split(".")[1:]
    if not parts or parts[0] in {"errors", "failures", "model"}:
        return VOCABULARY
    if parts[0] in PACKAGES:
        return parts[0]
    if parts[0] in {"app", "cli", "__main__"}:
        return ENTRY
    return FEATURES


def _modules() -> dict[str, Path]:
    out = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = ["reachwatch", *path.relative_to(PACKAGE).with_suffix("").parts]
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = path
    return out


MODULES = _modules()


def imports(module: str) -> set[str]:
    """The reachwatch modules ``module`` imports (``from reachwatch.x import y`` is ``reachwatch.x.y`` when
    that is a module, else ``reachwatch.x``)."""
    path = MODULES[module]
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.split(".")[0] == "reachwatch"}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(
                    package.split(".")[: len(package.split(".")) - node.level + 1] + ([base] if base else [])
                )
            if base.split(".")[0] != "reachwatch":
                continue
            for alias in node.names:
                found.add(f"{base}.{alias.name}" if f"{base}.{alias.name}" in MODULES else base)
    return {m for m in found if m != module}


GRAPH = {module: imports(module) for module in MODULES}


def test_every_import_points_down_the_layers() -> None:
    wrong = [
        f"{module} ({layer(module)}) imports {target} ({layer(target)}): {layer(module)} may import "
        f"{', '.join(sorted(LAYERS[layer(module)][0]))}"
        for module, targets in sorted(GRAPH.items())
        for target in sorted(targets)
        if layer(target) not in LAYERS[layer(module)][0]
    ]
    assert wrong == []


def test_no_modules_import_each_other() -> None:
    # Tarjan's strongly connected components: any component of two or more modules is a circle
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    circles: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(GRAPH[node]):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                circles.append(sorted(component))

    for module in sorted(GRAPH):
        if module not in index:
            visit(module)
    assert circles == []


def test_the_walk_sees_the_imports_that_matter() -> None:
    # guards the parser, not the code: a lazy import, a TYPE_CHECKING one and a submodule import are found
    assert "reachwatch.config.load" in GRAPH["reachwatch.cli"]  # inside cmd_validate
    assert "reachwatch.probes.base" in GRAPH["reachwatch.probes"]  # under TYPE_CHECKING
    assert "reachwatch.logging" in GRAPH["reachwatch.app"]  # from reachwatch import logging as rwlog
    assert {layer(m) for m in MODULES} == set(LAYERS)
