"""The package layering declared in docs/architecture.md, enforced on every import in the package.

Every `import` and `from … import` of a vo3rl module is counted, at module level and inside
functions alike: an import may only point to a part of the same or a lower layer, the parts form no
cycle, and the modules' own module-level imports form no cycle either. A function-local import of a
vo3rl module is allowed only where the table at the bottom says why.
"""
from __future__ import annotations

import ast
import re
from collections import defaultdict
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
# Source folder -> import name: workers/ and rewards/ install into the vo3rl namespace.
ROOTS = {"vo3rl": "vo3rl", "workers": "vo3rl.workers", "rewards": "vo3rl.rewards"}
# Where a vo3rl module may be imported inside a function, and why.
LAZY_IMPORTS_ALLOWED = {
    "cli": "building the parser must stay fast: a command's heavy imports happen when it runs",
    "commands": "building the parser must stay fast: a command's heavy imports happen when it runs",
    "orchestration.pipeline": "a stage imports only what it runs (`vo3rl run` with the data stage needs no torch)",
    "workers": "an actor's engine and model code is imported in the actor's process, not in the driver's",
}


def declared_layers() -> dict[str, int]:
    """Part -> layer number, from the layer table of docs/architecture.md (rows `| N | `a`, `b` | …`)."""
    layers = {}
    for line in (REPO / "docs" / "architecture.md").read_text().splitlines():
        row = re.match(r"\|\s*(\d+)\s*\|([^|]*)\|", line)
        if row:
            for part in re.findall(r"`([a-z0-9_./]+)`", row.group(2)):
                layers[part.strip("/").replace("/", ".")] = int(row.group(1))
    assert layers, "docs/architecture.md has no layer table"
    return layers


def modules() -> dict[str, Path]:
    found = {}
    for folder, package in ROOTS.items():
        for path in sorted((REPO / folder).rglob("*.py")):
            rel = path.relative_to(REPO / folder).with_suffix("")
            parts = [p for p in rel.parts if p != "__init__"]
            found[".".join([package, *parts])] = path
    return found


def part_of(module: str) -> str:
    """The part a module belongs to: `vo3rl.rl.step` -> `rl`, `vo3rl.log` -> `log`,
    `vo3rl.orchestration.pipeline` -> `orchestration` (a finer part wins when declared)."""
    rest = module.split(".")[1:] or ["vo3rl"]
    return rest[0]


def imports_of(module: str, path: Path, known: dict[str, Path]):
    """(target module, line, inside a function) for every import of a vo3rl module in `path`."""
    tree = ast.parse(path.read_text())
    is_package = path.name == "__init__.py"
    local = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            local |= {id(sub) for sub in ast.walk(node) if isinstance(sub, (ast.Import, ast.ImportFrom))}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = module.split(".") if is_package else module.split(".")[:-1]
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join(anchor + ([node.module] if node.module else []))
            names = [base] + [f"{base}.{alias.name}" for alias in node.names]
        else:
            continue
        for name in names:
            while name and name not in known:  # `from vo3rl.rl import losses` names a module, `… import x` a symbol
                name = name.rpartition(".")[0]
            if name.startswith("vo3rl"):
                yield name, node.lineno, id(node) in local


@pytest.fixture(scope="module")
def graph():
    known = modules()
    return known, {m: list(imports_of(m, p, known)) for m, p in known.items()}


def test_every_part_is_declared_once(graph):
    known, _ = graph
    layers = declared_layers()
    parts = {part_of(m) for m in known}
    assert parts <= set(layers), f"parts missing from docs/architecture.md's layer table: {sorted(parts - set(layers))}"
    assert set(layers) <= parts, f"layer table names parts that do not exist: {sorted(set(layers) - parts)}"


def test_no_import_points_up(graph):
    known, edges = graph
    layers = declared_layers()
    upward = [f"{known[m].relative_to(REPO)}:{line} imports {target} "
              f"(layer {layers[part_of(m)]} -> {layers[part_of(target)]})"
              for m, targets in edges.items() for target, line, _ in targets
              if layers[part_of(target)] > layers[part_of(m)]]
    assert not upward, "imports that go up the layer order:\n" + "\n".join(upward)


def _cycle(nodes: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(nodes.get(node, ())):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        state[node] = 2
        stack.pop()
        return None

    for start in sorted(nodes):
        if start not in state and (found := visit(start)):
            return found
    return None


def test_parts_form_no_cycle(graph):
    _, edges = graph
    parts: dict[str, set[str]] = defaultdict(set)
    for m, targets in edges.items():
        parts[part_of(m)] |= {part_of(t) for t, _, _ in targets if part_of(t) != part_of(m)}
    cycle = _cycle(parts)
    assert cycle is None, f"parts import each other in a circle: {' -> '.join(cycle)}"


def test_modules_form_no_import_time_cycle(graph):
    _, edges = graph
    module_level = {m: {t for t, _, lazy in targets if not lazy and t != m and not m.startswith(t + ".")}
                    for m, targets in edges.items()}
    cycle = _cycle(module_level)
    assert cycle is None, f"modules import each other at import time: {' -> '.join(cycle)}"


def test_function_local_imports_only_where_allowed(graph):
    known, edges = graph

    def allowed(module: str) -> bool:
        rest = module.split(".", 1)[1] if "." in module else module
        return any(rest == key or rest.startswith(key + ".") for key in LAZY_IMPORTS_ALLOWED)

    lazy = [f"{known[m].relative_to(REPO)}:{line} imports {target} inside a function"
            for m, targets in edges.items() for target, line, inside in targets if inside and not allowed(m)]
    assert not lazy, "function-local imports of vo3rl modules without a declared reason:\n" + "\n".join(lazy)


def test_the_checker_sees_what_it_must(tmp_path):
    """The parser finds function-local and relative imports (so the tests above can fail)."""
    path = tmp_path / "m.py"
    path.write_text("from . import y\n\ndef f():\n    from vo3rl.rl.step import rl_step\n")
    known = {"vo3rl.rl.step": path, "vo3rl.pkg.m": path, "vo3rl.pkg.y": path}
    found = list(imports_of("vo3rl.pkg.m", path, known))
    assert ("vo3rl.pkg.y", 1, False) in found and ("vo3rl.rl.step", 4, True) in found
    assert _cycle({"a": {"b"}, "b": {"a"}}) == ["a", "b", "a"] and _cycle({"a": {"b"}, "b": set()}) is None


def test_building_the_parser_imports_no_torch():
    """`vo3rl --help` stays fast: the parser is built without torch, Ray or vLLM."""
    import subprocess
    import sys

    code = ("import sys, vo3rl.cli; vo3rl.cli.build_parser(); "
            "print(sorted(m for m in ('torch', 'ray', 'vllm', 'transformers') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout
