"""The layers of docs/ARCHITECTURE.md, enforced: a module imports only its own layer or lower
ones. Read from the source with ``ast`` (no import runs), so a wrong-way import anywhere,
even inside a function, fails here."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent / "twin"

#: Layer of each top-level package or module of twin/ (lower numbers are lower layers).
LAYERS: dict[str, int] = {
    # science cores and shared basics: pure, no database, no web
    "sim": 0, "grid": 0, "durations": 0, "errors": 0, "settings": 0, "__init__": 0,
    "__main__": 4,
    # domain and storage
    "db": 1, "classification": 1, "privacy": 1, "suppression": 1, "access": 1, "auth": 1,
    "audit": 1, "scope": 1, "city": 1, "ingest": 1, "tiles": 1, "features": 1, "risk": 1,
    "viz": 1, "sense": 1, "logredact": 1,
    # runs of the simulations against the model
    "runs": 2,
    # entry points
    "api": 3, "web": 3, "cli": 3,
}  # fmt: skip
#: Known exceptions, each with its reason; the list may only shrink.
ALLOWED: set[tuple[str, str]] = {
    # the city build orchestrates ingest, runs and the risk map: it is the CLI's back end
    ("city.build", "runs"),
    # the standalone scenario loader reads vector files with the ingest reader; the solver
    # (sim.flood, sim.flood_kernels) stays pure
    ("sim.scenario", "ingest"),
}


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
