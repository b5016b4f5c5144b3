"""The package has no import cycles, and its layers point one way (pipeline <- store <- stages <- cli)."""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SKIP = {"tests", "benchmarks", "docs", "build"}


def _modules() -> dict[str, Path]:
    mods = {}
    for p in ROOT.rglob("*.py"):
        rel = p.relative_to(ROOT)
        if rel.parts[0] in SKIP or any(part.startswith(".") for part in rel.parts):
            continue
        name = ".".join(("hcdg", *rel.with_suffix("").parts)).removesuffix(".__init__")
        mods[name] = p
    return mods


def _imports(mods: dict[str, Path]) -> dict[str, set[str]]:
    """Every project module each module imports (module level or inside functions)."""
    edges: dict[str, set[str]] = {m: set() for m in mods}
    for m, p in mods.items():
        pkg = m if p.name == "__init__.py" else m.rpartition(".")[0]
        for node in ast.walk(ast.parse(p.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    parts = pkg.split(".")[: len(pkg.split(".")) - (node.level - 1)]
                    base = ".".join(parts + ([base] if base else []))
                names = [base] + [f"{base}.{a.name}" for a in node.names]
            else:
                continue
            # a module importing its own package (`from hcdg.pipeline.datasets import _common`) is no cycle
            edges[m].update(n for n in names if n in mods and n != m and not m.startswith(n + "."))
    return edges


def _cycles(edges: dict[str, set[str]]) -> list[frozenset[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[frozenset[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in edges[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = set()
            while True:
                w = stack.pop()
                on.discard(w)
                comp.add(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(frozenset(comp))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return out


def test_the_package_has_no_import_cycle():
    cycles = _cycles(_imports(_modules()))
    assert not cycles, f"import cycles: {[sorted(c) for c in cycles]}"


def test_the_cycle_finder_finds_a_cycle():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [frozenset({"a", "b", "c"})]


def test_pipeline_imports_neither_stages_nor_store():
    edges = _imports(_modules())
    bad = {m: sorted(t for t in ts if t.startswith(("hcdg.stages", "hcdg.store", "hcdg.cli")))
           for m, ts in edges.items() if m.startswith("hcdg.pipeline")}
    assert not {m: t for m, t in bad.items() if t}


def test_the_training_modules_import_one_way():
    edges = _imports(_modules())
    assert "hcdg.stages.train" not in edges["hcdg.stages.train_loop"]
    assert "hcdg.stages.train_loop" not in edges["hcdg.stages.train_dist"]
    assert not {"hcdg.stages.train", "hcdg.stages.train_loop"} & edges["hcdg.stages.train_config"]
