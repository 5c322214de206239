"""The layers of docs/ARCHITECTURE.md, enforced: a module imports only its own layer or lower
ones. Read from the source with ``ast`` (no import runs), so a wrong-way import anywhere,
even inside a function, fails here."""

from __future__ import annotations

import ast
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent / "twin"

#: Layer of each top-level package or module of twin/ (lower numbers are lower layers).
LAYERS: dict[str, int] = {
    # science cores and shared basics: pure, no database, no web
    "sim": 0, "grid": 0, "h3c": 0, "durations": 0, "cancellation": 0, "errors": 0, "settings": 0, "__init__": 0,
    "__main__": 4,
    # domain and storage
    "db": 1, "access": 1, "city": 1, "ingest": 1, "tiles": 1, "features": 1, "cql2": 1, "risk": 1,
    "alerts": 1, "tasks": 1, "reporting": 1, "viz": 1, "sense": 1, "logredact": 1,
    "exports": 1, "feed": 1,
    # runs of the simulations against the model
    "runs": 2,
    # entry points
    "api": 3, "web": 3, "cli": 3,
}  # fmt: skip
#: Known exceptions, each with its reason; the list may only shrink.
#: (The city build and the standalone scenario loader, once exceptions, now live in runs/.)
ALLOWED: set[tuple[str, str]] = set()


def _module_name(path: Path, root: Path) -> str:
    rel = path.relative_to(root).with_suffix("")
    return ".".join(p for p in rel.parts if p != "__init__") or "__init__"


def _imports(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.append(node.module)
    return [m for m in out if m == "twin" or m.startswith("twin.")]


def wrong_way(root: Path = ROOT) -> list[str]:
    bad = []
    for path in sorted(root.rglob("*.py")):
        name = _module_name(path, root)
        top = name.split(".")[0]
        layer = LAYERS.get(top)
        if layer is None:
            bad.append(f"{name}: no layer (add twin/{top} to LAYERS)")
            continue
        for target in _imports(path):
            parts = target.split(".")
            if len(parts) < 2:
                continue
            t_top = parts[1]
            t_layer = LAYERS.get(t_top, 0)
            if t_layer > layer and (name, t_top) not in ALLOWED:
                bad.append(f"{name} (layer {layer}) imports {target} (layer {t_layer})")
            # Science cores stay pure: nothing of the database, the domain or the web.
            if top == "sim" and t_layer >= 1 and (name, t_top) not in ALLOWED:
                bad.append(f"{name} is a science core but imports {target}")
    return bad


def test_no_import_goes_the_wrong_way() -> None:
    assert wrong_way() == []


def test_the_check_can_fail(tmp_path: Path) -> None:
    fake = tmp_path / "twin"
    (fake / "risk").mkdir(parents=True)
    (fake / "risk" / "x.py").write_text("def f():\n    from twin.api.deps import Conn\n")
    assert wrong_way(fake) == ["risk.x (layer 1) imports twin.api.deps (layer 3)"]


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one node (Tarjan), sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []

    def visit(n: str) -> None:
        index[n] = low[n] = len(index)
        stack.append(n)
        on.add(n)
        for m in graph.get(n, ()):
            if m not in index:
                visit(m)
                low[n] = min(low[n], low[m])
            elif m in on:
                low[n] = min(low[n], index[m])
        if low[n] == index[n]:
            comp = []
            while True:
                m = stack.pop()
                on.discard(m)
                comp.append(m)
                if m == n:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for n in list(graph):
        if n not in index:
            visit(n)
    return sorted(out)


def import_cycles(root: Path = ROOT) -> tuple[list[list[str]], list[list[str]]]:
    """Cycles among the modules of twin/ and among its top-level packages (every import,
    function-local ones included: a local import hides a cycle, it does not remove it)."""
    mods = {_module_name(p, root): p for p in root.rglob("*.py")}
    by_module: dict[str, set[str]] = defaultdict(set)
    by_package: dict[str, set[str]] = defaultdict(set)
    for name, path in mods.items():
        for target in _imports(path):
            t = target.removeprefix("twin.")
            parent = t.rsplit(".", 1)[0]
            hit = t if t in mods else parent if parent in mods else None
            # A package's __init__ is imported by its own modules' imports: not a cycle.
            if hit and hit != name and not name.startswith(hit + "."):
                by_module[name].add(hit)
            if t.split(".")[0] != name.split(".")[0]:
                by_package[name.split(".")[0]].add(t.split(".")[0])
    return _cycles(by_module), _cycles(by_package)


def test_no_import_cycles() -> None:
    assert import_cycles() == ([], [])


def test_the_cycle_check_can_fail(tmp_path: Path) -> None:
    fake = tmp_path / "twin"
    for pkg, other in (("risk", "alerts"), ("alerts", "risk")):
        (fake / pkg).mkdir(parents=True)
        (fake / pkg / "x.py").write_text(f"def f():\n    from twin.{other}.x import g\n")
    assert import_cycles(fake) == ([["alerts.x", "risk.x"]], [["alerts", "risk"]])


def test_the_domain_packages_do_not_load_the_web_layer() -> None:
    # In a fresh interpreter: this test process has long imported FastAPI.
    code = (
        "import sys, twin.tasks.service, twin.alerts.refresh, twin.reporting.report, "
        "twin.access.principal\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in {'fastapi', 'starlette', "
        "'typer'} or m.startswith(('twin.api', 'twin.cli'))))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
