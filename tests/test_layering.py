"""The package's import graph, read with `ast` (nothing is imported): floors, no cycles, a demo wall.

Floors, lowest first; a module may import its own floor and the ones below, never one above:
0 sharding; 1 models, diffusion, conditioning; 2 config (it reads the model dataclasses' defaults),
data, convert, model_folder; 3 training, sampling, juice, ablate; 4 the command line and the demo wing.
"""

from __future__ import annotations

import ast
import functools
import pathlib

import pytest

PACKAGE = pathlib.Path(__file__).resolve().parents[1] / "emu_jax"
FLOORS = {
    "emu_jax": 0,
    "emu_jax.sharding": 0,
    "emu_jax.models": 1,
    "emu_jax.diffusion": 1,
    "emu_jax.conditioning": 1,
    "emu_jax.config": 2,
    "emu_jax.data": 2,
    "emu_jax.convert": 2,
    "emu_jax.model_folder": 2,
    "emu_jax.metrics": 2,
    "emu_jax.training": 3,
    "emu_jax.sampling": 3,
    "emu_jax.juice": 3,
    "emu_jax.ablate": 3,
    "emu_jax.cli": 4,
    "emu_jax.train": 4,
    "emu_jax.demo": 4,
}
TOP = max(FLOORS.values())
# What only the demo wing may name: its dataset and the words of its captions.
DEMO_WORDS = {
    "red",
    "green",
    "blue",
    "yellow",
    "magenta",
    "cyan",
    "circle",
    "square",
    "triangle",
    "diamond",
    "up-left",
    "up-right",
    "down-left",
    "down-right",
    "black",
    "white",
    "gray",
}


def _modules() -> dict[str, pathlib.Path]:
    out = {}
    for path in PACKAGE.rglob("*.py"):
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


MODULES = _modules()


def _owner(name: str) -> str | None:
    """The nearest module or package of ours that `name` (dotted) refers to."""
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name or None


@functools.cache
def _tree(module: str) -> ast.Module:
    return ast.parse(MODULES[module].read_text(), str(MODULES[module]))


@functools.cache
def _imports(module: str, top_level_only: bool) -> frozenset[str]:
    """Modules of ours that `module` imports (at module level only, or anywhere in it)."""
    path = MODULES[module]
    tree = _tree(module)
    nodes = tree.body if top_level_only else list(ast.walk(tree))
    found = set()
    for node in nodes:
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                pkg = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
                pkg = pkg[: len(pkg) - node.level + 1]
                base = ".".join(pkg + ([base] if base else []))
            names = [f"{base}.{a.name}" if f"{base}.{a.name}" in MODULES else base for a in node.names]
        else:
            continue
        found |= {_owner(n) for n in names if n.split(".")[0] == "emu_jax"} - {None, module}
    return frozenset(found)


def floor(module: str) -> int:
    owner = module
    while owner not in FLOORS:
        owner = owner.rpartition(".")[0]
        assert owner, f"{module} has no floor: add it (or its package) to FLOORS in {__file__}"
    return FLOORS[owner]


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on_stack, out = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_every_module_has_a_floor():
    for module in MODULES:
        floor(module)


def test_no_module_imports_a_higher_floor():
    # Function-level imports count too: deferring an import hides the dependency, it does not remove it.
    bad = [
        f"{m} (floor {floor(m)}) imports {d} (floor {floor(d)})"
        for m in sorted(MODULES)
        for d in sorted(_imports(m, top_level_only=False))
        if floor(d) > floor(m)
    ]
    assert not bad, "\n".join(bad)


def test_no_import_cycles():
    top = _cycles({m: _imports(m, top_level_only=True) for m in MODULES})
    assert not top, f"module-level import cycles: {top}"
    # Deferred imports must not close a cycle either (a package importing its own submodules is fine).
    anywhere = _cycles(
        {m: {d for d in _imports(m, top_level_only=False) if not m.startswith(d + ".")} for m in MODULES}
    )
    assert not anywhere, f"import cycles through function-level imports: {anywhere}"


def _names(tree: ast.AST):
    """(line, text) of every name a module defines or uses and every string literal in it. Docstrings and
    comments are prose; attribute names belong to the object they are read from (`jnp.square`)."""
    docstrings = {
        id(n.body[0].value)
        for n in ast.walk(tree)
        if isinstance(n, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
        and n.body
        and isinstance(n.body[0], ast.Expr)
        and isinstance(n.body[0].value, ast.Constant)
    }
    for node in ast.walk(tree):
        if isinstance(node, ast.Name):
            yield node.lineno, node.id
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            yield node.lineno, node.name
        elif isinstance(node, ast.arg):
            yield node.lineno, node.arg
        elif isinstance(node, ast.alias):
            yield getattr(node, "lineno", 0), node.asname or node.name
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings:
            yield node.lineno, node.value


def _is_demo(text: str) -> bool:
    """Whether a name or string holds a demo word (whole, or as a `_`-separated part) or the dataset's name."""
    squashed = text.lower().replace("_", "").replace("-", "")
    return bool(_words(text) & DEMO_WORDS) or "movingshapes" in squashed or "emu_jax.demo" in text


def _words(text: str) -> set[str]:
    out = set()
    for token in text.replace(".", " ").replace("/", " ").replace("'", " ").replace('"', " ").split():
        token = token.strip("`,;:()[]{}=<>*")
        out |= {token, *token.split("_")}
    return out


# The library: everything below the top floor but JUICE, a separate application (its plots are black on white).
LIBRARY = sorted(m for m in MODULES if floor(m) < TOP and not m.startswith("emu_jax.juice"))


@pytest.mark.parametrize("module", LIBRARY)
def test_library_names_nothing_of_the_demo(module):
    path = MODULES[module]
    assert not any(d == "emu_jax.demo" or d.startswith("emu_jax.demo.") for d in _imports(module, False)), (
        f"{module} imports the demo wing"
    )
    hits = [f"{path.name}:{line}: {text!r}" for line, text in _names(_tree(module)) if _is_demo(text)]
    assert not hits, f"{module} names the demo's dataset or vocabulary:\n" + "\n".join(hits)


def test_the_checks_catch_what_they_look_for(tmp_path):
    # The helpers on a made-up graph and source, so a vacuous pass (nothing parsed) cannot hide.
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []
    src = (
        'import x\nCOLOURS = ("red",)\ndef f(square):\n    """A red docstring is prose."""\n'
        '    return x.cyan, "up-left", moving_shapes_dir\n'
    )
    found = {t for _, t in _names(ast.parse(src)) if _is_demo(t)}
    assert found == {"red", "square", "up-left", "moving_shapes_dir"}
    assert "emu_jax.data.builders" in _imports("emu_jax.demo.dataset", top_level_only=True)
    assert len(MODULES) > 50 and floor("emu_jax.models.unet") == 1 and floor("emu_jax.demo.shapes") == TOP
