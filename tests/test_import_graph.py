"""The package's import graph: four layers with arrows pointing one way, and no circles.

Every import counts, also one inside a function or under `TYPE_CHECKING`: a lazy import that climbs is
still an arrow the wrong way.
"""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# Installed names of the package's folders (pyproject's package-dir).
FOLDERS = {"spicy_lentil": ROOT / "spicy_lentil", "spicy_lentil.pathways": ROOT / "pathways",
           "spicy_lentil.app": ROOT / "app"}
BOTTOM = {"errors", "documents", "slots", "results", "io", "runtime"}
# Layer of each module prefix (after `spicy_lentil.`): a module may import its own layer or lower ones.
LAYERS = {"network": 1, "pathways": 1, "corpus": 2, "training": 3, "frontends": 4, "app": 4}
TOP = 4  # the package's `__init__` (the public API) and `__main__` sit with the front ends


def modules() -> dict[str, Path]:
    found = {}
    for name, folder in FOLDERS.items():
        for path in folder.rglob("*.py"):
            if name == "spicy_lentil" and path.relative_to(folder).parts[0] in ("pathways", "app"):
                continue
            parts = list(path.relative_to(folder).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            found[".".join([name, *parts])] = path
    return found


def imports(module: str, path: Path, known: set[str]) -> set[str]:
    """The package's modules that `module` imports, as installed names."""
    package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
    targets = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                stem = ".".join(base + ([node.module] if node.module else []))
            else:
                stem = node.module or ""
            for alias in node.names:  # `from . import jobs` names a module; `from .x import f` a member of x
                targets.add(f"{stem}.{alias.name}" if f"{stem}.{alias.name}" in known else stem)
        elif isinstance(node, ast.Import):
            targets.update(alias.name for alias in node.names)
    return {t for t in targets if t in known and t != module}


def layer(module: str) -> int:
    parts = module.split(".")
    if len(parts) == 1 or parts[1] == "__main__":
        return TOP
    if parts[1] in BOTTOM:
        return 0
    return LAYERS[parts[1]]


def graph() -> dict[str, set[str]]:
    found = modules()
    return {module: imports(module, path, set(found)) for module, path in found.items()}


def test_every_module_has_a_layer():
    for module in graph():
        layer(module)  # a KeyError names a module outside the four layers


def test_no_import_climbs_a_layer():
    climbing = sorted(
        f"{module} -> {target}" for module, targets in graph().items() for target in targets
        if layer(target) > layer(module)
    )
    assert not climbing, climbing


def test_no_circles():
    edges = graph()
    state: dict[str, int] = {}  # 1 while on the current path, 2 when done
    circles = []

    def visit(module: str, path: list[str]) -> None:
        state[module] = 1
        for target in sorted(edges[module]):
            if state.get(target) == 1:
                circles.append(" -> ".join(path[path.index(target):] + [module, target]) if target in path
                               else f"{module} -> {target}")
            elif target not in state:
                visit(target, path + [module])
        state[module] = 2

    for module in sorted(edges):
        if module not in state:
            visit(module, [])
    assert not circles, circles


def test_the_graph_sees_lazy_and_relative_imports():
    edges = graph()
    assert "spicy_lentil.network.model" in edges["spicy_lentil.network.losses"]  # under TYPE_CHECKING
    assert "spicy_lentil.frontends.distributed" in edges["spicy_lentil.frontends.commands"]  # inside a function
    assert "spicy_lentil.pathways.base" in edges["spicy_lentil.pathways.registry"]
