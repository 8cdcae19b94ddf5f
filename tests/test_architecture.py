"""Layering rules, read from the source (AST) of every module of kl_motion:

- only kl_motion/gui imports PySide6 (the library core, the CLI and the pipeline never do);
- the modules' imports form no cycle.  Every import counts, also one inside a function: a lazy
  import still ties the two modules together (cli -> process_cmd -> cli was one).
"""
from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

PKG = Path(__file__).resolve().parents[1] / "kl_motion"


def module_name(path: Path, root: Path = PKG) -> str:
    rel = path.relative_to(root.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports_of(path: Path, modules: set[str], root: Path = PKG) -> tuple[set[str], set[str]]:
    """(modules of the package this file imports, top-level names of other packages it imports)."""
    me = module_name(path, root)
    package = me if path.name == "__init__.py" else me.rpartition(".")[0]
    inside, outside = set(), set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            # `from . import x` / `from .gui import app`: x may be a module of its own
            names = [f"{mod}.{a.name}" if f"{mod}.{a.name}" in modules else mod for a in node.names]
        else:
            continue
        for n in names:
            if n == root.name or n.startswith(root.name + "."):
                while n not in modules and "." in n:        # `import kl_motion.gui.x` -> the module itself
                    n = n.rpartition(".")[0]
                if n != me:
                    inside.add(n)
            else:
                outside.add(n.split(".")[0])
    return inside, outside


def graph(root: Path = PKG) -> tuple[dict[str, set[str]], dict[str, set[str]]]:
    files = {module_name(p, root): p for p in root.rglob("*.py") if "__pycache__" not in p.parts}
    deps, ext = {}, {}
    for m, p in files.items():
        deps[m], ext[m] = imports_of(p, set(files), root)
    return deps, ext


def find_cycle(deps: dict[str, set[str]]) -> list[str] | None:
    """One import cycle as [a, b, ..., a], or None."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(m: str):
        state[m] = 1
        stack.append(m)
        for d in sorted(deps.get(m, ())):
            if state.get(d) == 1:
                return stack[stack.index(d):] + [d]
            if d not in state:
                c = visit(d)
                if c:
                    return c
        stack.pop()
        state[m] = 2
        return None

    for m in sorted(deps):
        if m not in state:
            c = visit(m)
            if c:
                return c
    return None


def test_only_the_gui_imports_qt():
    _, ext = graph()
    bad = sorted(m for m, names in ext.items() if "PySide6" in names and not m.startswith("kl_motion.gui"))
    assert not bad, f"PySide6 imported outside kl_motion/gui: {bad}"
    assert any("PySide6" in names for m, names in ext.items() if m.startswith("kl_motion.gui"))   # the walk sees it


def test_no_import_cycles():
    deps, _ = graph()
    assert "kl_motion.pipeline" in deps["kl_motion.process_cmd"]          # the walk sees lazy imports
    assert "kl_motion.gui.app" in deps["kl_motion.cli"]
    cycle = find_cycle(deps)
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_the_checks_catch_a_planted_cycle_and_a_planted_qt_import(tmp_path):
    """The same walk over a copy of the package with a cycle (streams -> pipeline, as before issue 12)
    and a Qt import in the core planted."""
    import shutil
    root = tmp_path / "kl_motion"
    shutil.copytree(PKG, root, ignore=shutil.ignore_patterns("__pycache__"))
    s = root / "streams.py"
    s.write_text(s.read_text() + "\n\ndef _later():\n    from .pipeline import redact  # noqa\n")
    m = root / "overlay.py"
    m.write_text(m.read_text() + "\n\ndef _qt():\n    from PySide6.QtGui import QImage  # noqa\n")
    deps, ext = graph(root)
    cycle = find_cycle(deps)
    assert cycle is not None and "kl_motion.streams" in cycle and "kl_motion.pipeline" in cycle
    assert "PySide6" in ext["kl_motion.overlay"]


def test_importing_the_core_and_the_cli_loads_no_qt():
    code = ("import sys, kl_motion, kl_motion.cli, kl_motion.analyzer, kl_motion.pipeline, kl_motion.process_cmd, "
            "kl_motion.evaluate, kl_motion.streams\n"
            "from kl_motion.cli import build_parser; build_parser()\n"
            "assert not [m for m in sys.modules if m.startswith('PySide6')], 'Qt imported'\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
