"""Structure check of the engine (run by `make test`): module and function sizes, and import cycles.

    python scripts/check_structure.py [PACKAGE_DIR ...]     (default: syncer)

Fails (exit 1, one line per finding) when
* a module is longer than MAX_MODULE_LINES, not counting module-level text constants (SQL, templates);
* a function or method is longer than MAX_FUNCTION_LINES, not counting its docstring;
* the package's modules import each other in a circle (function-level imports count too; imports under
  ``if TYPE_CHECKING:`` do not, they never run).
Prints a one-line summary when all is well.
"""

from __future__ import annotations

import ast
import sys
from collections.abc import Iterator
from pathlib import Path

MAX_MODULE_LINES = 450
MAX_FUNCTION_LINES = 60
ROOT = Path(__file__).resolve().parents[1]


def module_name(path: Path, base: Path) -> str:
    rel = path.relative_to(base.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def text_constant_lines(tree: ast.Module) -> int:
    """Lines of module-level assignments whose value is a string (SQL text, templates), docstring included."""
    lines = 0
    for node in tree.body:
        value = node.value if isinstance(node, ast.Assign | ast.AnnAssign | ast.Expr) else None
        if isinstance(value, ast.Constant) and isinstance(value.value, str):
            lines += node.end_lineno - node.lineno + 1
    return lines


def functions(tree: ast.AST) -> Iterator[tuple[str, ast.FunctionDef | ast.AsyncFunctionDef]]:
    def walk(node: ast.AST, prefix: str) -> Iterator[tuple[str, ast.FunctionDef | ast.AsyncFunctionDef]]:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef):
                yield f"{prefix}{child.name}", child
                yield from walk(child, f"{prefix}{child.name}.")
            elif isinstance(child, ast.ClassDef):
                yield from walk(child, f"{prefix}{child.name}.")
            else:
                yield from walk(child, prefix)

    yield from walk(tree, "")


def function_lines(fn: ast.FunctionDef | ast.AsyncFunctionDef) -> int:
    start = fn.decorator_list[0].lineno if fn.decorator_list else fn.lineno
    total = fn.end_lineno - start + 1
    first = fn.body[0]
    if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant) and isinstance(first.value.value, str):
        total -= first.end_lineno - first.lineno + 1
    return total


def imports(tree: ast.Module, name: str, is_package: bool, known: set[str]) -> set[str]:
    """The package's own modules this module imports (resolving relative imports)."""
    skip: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If):
            test = node.test
            if (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
                isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
            ):
                skip.update(id(n) for stmt in node.body for n in ast.walk(stmt))
    here = name if is_package else name.rpartition(".")[0]
    out: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = here.split(".")
                base = base[: len(base) - (node.level - 1)] if node.level > 1 else base
                mod = ".".join([*base, node.module] if node.module else base)
            else:
                mod = node.module or ""
            targets = [mod, *(f"{mod}.{a.name}" for a in node.names)]
        else:
            continue
        for t in targets:
            while t and t not in known:
                t = t.rpartition(".")[0]
            if t and t != name:
                out.add(t)
                # Importing a.b.c runs the package a.b's __init__ first: an edge to it too, unless
                # the importer lives inside that package (then the package is already importing).
                pkg = t.rpartition(".")[0]
                while pkg and pkg in known and not (name == pkg or name.startswith(pkg + ".")):
                    out.add(pkg)
                    pkg = pkg.rpartition(".")[0]
    return out


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    found: list[list[str]] = []
    counter = [0]

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                found.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def check(package: Path) -> list[str]:
    files = sorted(p for p in package.rglob("*.py") if "__pycache__" not in p.parts)
    trees = {module_name(p, package): (p, ast.parse(p.read_text(encoding="utf-8"), filename=str(p))) for p in files}
    known = set(trees)
    problems: list[str] = []
    graph: dict[str, set[str]] = {}
    for name, (path, tree) in trees.items():
        rel = path.relative_to(ROOT) if path.is_relative_to(ROOT) else path
        lines = len(path.read_text(encoding="utf-8").splitlines()) - text_constant_lines(tree)
        if lines > MAX_MODULE_LINES:
            problems.append(f"{rel}: {lines} lines (at most {MAX_MODULE_LINES}, text constants aside); split it")
        for qual, fn in functions(tree):
            n = function_lines(fn)
            if n > MAX_FUNCTION_LINES:
                problems.append(f"{rel}:{fn.lineno}: {qual}() is {n} lines (at most {MAX_FUNCTION_LINES}); split it")
        graph[name] = imports(tree, name, path.name == "__init__.py", known)
    for comp in cycles(graph):
        problems.append(f"import cycle: {' <-> '.join(comp)}; move what they share into a module both import")
    return problems


def main(argv: list[str]) -> int:
    packages = [Path(a).resolve() for a in argv] or [ROOT / "syncer"]
    problems = [p for pkg in packages for p in check(pkg)]
    for p in problems:
        print(p)
    if problems:
        print(f"structure check: {len(problems)} problem(s)", file=sys.stderr)
        return 1
    names = ", ".join(p.name for p in packages)
    print(
        f"structure check: {names} ok (modules <= {MAX_MODULE_LINES} lines, functions <= {MAX_FUNCTION_LINES}, no import cycle)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
