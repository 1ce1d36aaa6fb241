"""scripts/check_structure.py: it finds a long module, a long function and an import cycle in a
package made for the purpose, counts neither docstrings nor text constants, and passes the engine."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "check_structure.py"


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True, timeout=60)


def make_package(base: Path, files: dict[str, str]) -> Path:
    pkg = base / "pkg"
    for name, text in files.items():
        path = pkg / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text), encoding="utf-8")
    return pkg


def test_the_engine_passes() -> None:
    proc = run()
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "syncer ok" in proc.stdout


def test_a_long_function_a_long_module_and_a_cycle_are_each_one_line(tmp_path: Path) -> None:
    body = "\n".join(f"    x{i} = {i}" for i in range(61))
    pkg = make_package(
        tmp_path,
        {
            "__init__.py": "",
            "a.py": "from pkg import b\n" + "\n".join(f"v{i} = {i}" for i in range(451)) + "\n",
            "b.py": f"from pkg.a import v1\n\n\ndef long():\n{body}\n",
        },
    )
    proc = run(str(pkg))
    assert proc.returncode == 1
    lines = proc.stdout.splitlines()
    assert any(line.startswith("pkg/a.py: 452 lines") or "a.py: 452 lines" in line for line in lines), lines
    assert any("long() is 62 lines" in line for line in lines), lines
    assert any(line.startswith("import cycle: pkg.a <-> pkg.b") for line in lines), lines


def test_docstrings_text_constants_and_type_checking_imports_do_not_count(tmp_path: Path) -> None:
    doc = '    """' + "\n".join("doc" for _ in range(80)) + '"""\n'
    sql = 'SQL = """' + "\n".join("select 1" for _ in range(500)) + '"""\n'
    pkg = make_package(
        tmp_path,
        {
            "__init__.py": "",
            "a.py": sql
            + "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from pkg import b\n\n\ndef f():\n"
            + doc
            + "    return 1\n",
            "b.py": "from pkg import a\n",
        },
    )
    proc = run(str(pkg))
    assert proc.returncode == 0, proc.stdout


def test_importing_a_submodule_counts_as_importing_its_package(tmp_path: Path) -> None:
    # pkg.sub's __init__ imports pkg.c, which imports pkg.sub.x: importing pkg.sub.x from c runs
    # pkg.sub/__init__ first, so this is a cycle although no two modules name each other.
    pkg = make_package(
        tmp_path,
        {
            "__init__.py": "",
            "c.py": "from pkg.sub.x import y\n",
            "sub/__init__.py": "from pkg import c\n",
            "sub/x.py": "y = 1\n",
        },
    )
    proc = run(str(pkg))
    assert proc.returncode == 1 and "import cycle: pkg.c <-> pkg.sub" in proc.stdout, proc.stdout
