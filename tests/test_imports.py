"""gan_jax's modules import one another without a circle, counting imports inside functions.

A circle works only as long as every module in it imports the next one late enough; the
first eager import that someone adds breaks the package at import time. Read from the
sources, so the check costs no imports.
"""

from __future__ import annotations

import ast
from pathlib import Path

from conftest import ROOT


def import_graph(package: Path) -> dict[str, set[str]]:
    """Module of `package` -> the modules of it that it imports, at the top or inside a function."""
    top = package.name

    def module_name(path: Path) -> str:
        parts = path.relative_to(package.parent).with_suffix("").parts
        return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)

    modules = {module_name(path): path for path in package.rglob("*.py")}

    def module_of(name: str) -> str | None:
        """The module a dotted name lives in (`gan_jax.config.flatten` -> `gan_jax.config`)."""
        while name and name not in modules:
            name = name.rpartition(".")[0]
        return name or None

    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        imported: list[str] = []
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                imported += [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                # `from gan_jax import step`: gan_jax.step; `from gan_jax.config import flatten`: gan_jax.config
                imported += [f"{node.module}.{alias.name}" for alias in node.names]
        targets = {module_of(i) for i in imported if i.split(".")[0] == top}
        graph[name] = {t for t in targets if t is not None and t != name}
    return graph


def find_circle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import circle, as the modules along it (the first repeated at the end), or None."""
    done: set[str] = set()

    def visit(module: str, path: list[str]) -> list[str] | None:
        if module in path:
            return path[path.index(module) :] + [module]
        if module in done:
            return None
        for imported in sorted(graph[module]):
            if circle := visit(imported, [*path, module]):
                return circle
        done.add(module)
        return None

    for module in sorted(graph):
        if circle := visit(module, []):
            return circle
    return None


def test_no_module_of_gan_jax_imports_itself_through_others():
    circle = find_circle(import_graph(ROOT / "gan_jax"))
    assert circle is None, "import circle: " + " -> ".join(circle or [])


def test_the_check_sees_imports_inside_functions(tmp_path):
    package = tmp_path / "pkg"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "a.py").write_text("from pkg import b\n")
    (package / "b.py").write_text("import os\n\n\ndef late():\n    from pkg.c import thing\n")
    (package / "c.py").write_text("from pkg.a import x\n")
    graph = import_graph(package)
    assert graph == {"pkg": set(), "pkg.a": {"pkg.b"}, "pkg.b": {"pkg.c"}, "pkg.c": {"pkg.a"}}
    assert find_circle(graph) == ["pkg.a", "pkg.b", "pkg.c", "pkg.a"]


def test_importing_gan_jax_starts_no_jax_backend():
    """A run over several processes calls jax.distributed.initialize first, which must come
    before any backend starts: no module may compute with JAX when it is imported."""
    import subprocess
    import sys

    modules = "gan_jax.train, gan_jax.score, gan_jax.compare, gan_jax.launch, gan_jax.ada, gan_jax.models.stylegan2"
    code = f"import {modules}; from jax._src import xla_bridge; print(xla_bridge.backends_are_initialized())"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip().splitlines()[-1] == "False"
