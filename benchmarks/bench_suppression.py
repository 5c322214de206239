"""Complementary suppression of the cell statistics (`mark_hidden` of `twin grid refresh`):
times :func:`twin.access.suppression.cell_hidden_fields` alone, offline (no database).

    # once: dump the input of a built city (read-only: one SELECT, the query mark_hidden runs)
    .venv/bin/python benchmarks/bench_suppression.py --dump postgresql://.../twin_large \\
        --input /tmp/supp_large.pkl
    # time it (--reference: also the previous per-component implementation, and compare)
    PYTHONPATH=. .venv/bin/python benchmarks/bench_suppression.py --input /tmp/supp_large.pkl \\
        --reference
    # no dump at hand: a synthetic city (res 7-10, random sparse counts)
    PYTHONPATH=. .venv/bin/python benchmarks/bench_suppression.py --synthetic 20000

Prints one JSON object: rows, hidden fields, best wall and process CPU seconds per
implementation, whether the answers are equal, and the load average (the machine is shared:
quote it with the times).
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from twin.access.suppression import cell_hidden_fields

K = 10  # the default suppression threshold of mark_hidden


def dump(url: str, out: Path) -> int:
    import psycopg

    from twin.db.queries import query

    with psycopg.connect(url) as conn:
        conn.read_only = True
        rows = conn.execute(query("cell_stats.sql", "people_counts")).fetchall()
    res, cells, pop, eld, jobs, by_age = zip(*rows, strict=True)
    data = {
        "res": res,
        "cells": cells,
        "counts": {"population": pop, "elderly": eld, "jobs": jobs},
        "by_age": by_age,
        "k": K,
    }
    out.write_bytes(pickle.dumps(data))
    return len(rows)


def synthetic(n_fine: int, seed: int = 0) -> dict:
    from tests.access.test_suppression_fast import synthetic_rows

    rings = next(r for r in range(200) if 343 * (3 * r * (r + 1) + 1) >= 2 * n_fine)
    rows = synthetic_rows(seed, n_fine=n_fine, spread=3 * K, empty=0.3, rings=rings)
    res, cells, pop, eld, jobs, by_age = zip(*rows, strict=True)
    counts = {"population": pop, "elderly": eld, "jobs": jobs}
    return {"res": res, "cells": cells, "counts": counts, "by_age": by_age, "k": K}


def timed(fn, d: dict, repeat: int) -> tuple[float, float, list[list[str]]]:
    """Best wall and process CPU seconds over ``repeat`` runs, and the answer."""
    wall, cpu = [], []
    for _ in range(repeat):
        t, c = time.perf_counter(), time.process_time()
        out = fn(d["res"], d["cells"], d["counts"], d["by_age"], k=d["k"])
        wall.append(time.perf_counter() - t)
        cpu.append(time.process_time() - c)
    return min(wall), min(cpu), out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--input", type=Path, help="pickle written by --dump")
    ap.add_argument("--dump", metavar="URL", help="write --input from this database and stop")
    ap.add_argument("--synthetic", type=int, metavar="N", help="a synthetic city of N fine cells")
    ap.add_argument("--reference", action="store_true", help="also time the previous version")
    ap.add_argument("--repeat", type=int, default=1, help="runs of each (best is kept)")
    a = ap.parse_args()
    if a.dump:
        print(json.dumps({"rows": dump(a.dump, a.input), "input": str(a.input)}))
        return
    d = pickle.loads(a.input.read_bytes()) if a.input else synthetic(a.synthetic or 2000)
    new_s, new_c, new = timed(cell_hidden_fields, d, a.repeat)
    out = {"rows": len(d["cells"]), "hidden": sum(map(len, new))}
    out |= {"seconds": round(new_s, 2), "cpu_seconds": round(new_c, 2)}
    if a.reference:
        from tests.access.suppression_reference import cell_hidden_fields as old_fn

        old_s, old_c, old = timed(old_fn, d, a.repeat)
        out |= {"reference_seconds": round(old_s, 2), "reference_cpu_seconds": round(old_c, 2)}
        out |= {"speedup": round(old_s / new_s, 2), "cpu_speedup": round(old_c / new_c, 2)}
        out["equal"] = old == new
    out["load"] = [round(x, 2) for x in os.getloadavg()]
    print(json.dumps(out))


if __name__ == "__main__":
    main()
