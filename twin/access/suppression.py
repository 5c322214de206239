"""One suppression model for every published count of people.

A quantity (residents by age band, jobs, people affected by a flood run) is modelled as sums of
*atoms*: its counts per finest H3 cell and key (an age band, or one key). Everything the twin
publishes about the quantity is a *node*, a sum of atoms: a cell at each configured resolution,
for each field (``population`` = every band, ``elderly`` = the old bands, one band), and the
city total of each field. Admin areas are not nodes: their people counts reach the public only
rounded to a multiple of k (:func:`coarsen`), which is not an equation an attacker can solve.

:func:`suppress` decides which nodes the public does not get:

1. primary suppression: counts from 1 to k-1;
2. the hierarchical heuristic of :func:`twin.access.privacy.complementary_suppression` (no relation
   with a single hidden member, hidden parts summing to k or more);
3. an exact linear audit: a hidden node's value is pinned down iff its vector over the atoms
   lies in the row space of the published nodes. Known atoms (published single-atom nodes) are
   eliminated, every published node is replaced by itself minus its published children (which
   spans the same space and touches only the atoms under hidden children), and the unknown
   atoms split into small connected components, each solved densely with numpy;
4. repair: every pinned node gets one more node hidden next to it (its smallest non-zero
   shown sibling, else a field of the same cell, else a child, else its parent), and the audit
   runs again, for at most ``max_rounds`` rounds; a component still pinned after that has every
   node touching it hidden.

Zeros are never hidden (they reveal no one). Pure functions: no database, no settings.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import cast

import numpy as np
import numpy.typing as npt
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from twin import grid
from twin.access.linaudit import solve_components
from twin.access.privacy import ELDERLY_BANDS, complementary_suppression

log = logging.getLogger(__name__)

TOL = 1e-7
MAX_ROUNDS = 30
MAX_TRIALS = 200
ROOT = -1  # the "resolution" of a city total


@dataclass
class Suppressed:
    """Which published counts of one quantity the public does not get."""

    #: field -> resolution -> the hidden cells (int64 H3 ids).
    cells: dict[str, dict[int, set[int]]] = field(default_factory=dict)
    #: field -> whether the city total of the field is hidden.
    totals: dict[str, bool] = field(default_factory=dict)
    #: Audit rounds run and nodes hidden beyond primary suppression (for logs and tests).
    rounds: int = 0
    extra: int = 0

    def hidden(self, fld: str, res: int, cell: int) -> bool:
        return cell in self.cells.get(fld, {}).get(res, ())


@dataclass
class _Nodes:
    res: npt.NDArray[np.int64]  # ROOT for a city total
    cell: npt.NDArray[np.int64]  # 0 for a city total
    fld: npt.NDArray[np.int64]  # index into fields
    value: npt.NDArray[np.int64]
    # Per field and level: the node of each atom (-1 where the atom is not in the field).
    of_atom: dict[tuple[int, int], npt.NDArray[np.int64]]
    single: npt.NDArray[np.int64]  # the atom of a single-atom node, else -1
    # Per field and level, cached: (atom in the field, its node or 0) for vectorised lookups.
    lookup: dict[tuple[int, int], tuple[npt.NDArray[np.bool_], npt.NDArray[np.int64]]] = field(
        default_factory=dict
    )

    def at(self, key: tuple[int, int]) -> tuple[npt.NDArray[np.bool_], npt.NDArray[np.int64]]:
        if key not in self.lookup:
            node = self.of_atom[key]
            self.lookup[key] = (node >= 0, np.where(node >= 0, node, 0))
        return self.lookup[key]


def suppress(
    cells: npt.ArrayLike,
    keys: Sequence[str],
    values: npt.ArrayLike,
    *,
    resolutions: Sequence[int],
    fields: Mapping[str, Sequence[str] | None],
    k: int,
    relations: Sequence[tuple[str, Sequence[str]]] = (),
    unpublished: Sequence[str] = (),
    max_rounds: int = MAX_ROUNDS,
) -> Suppressed:
    """Hidden nodes of one quantity.

    Parameters
    ----------
    cells, keys, values
        The atoms: finest cell (at ``max(resolutions)`` or finer), key and count (persons).
    resolutions
        The published resolutions.
    fields
        Fields: name -> the keys it sums (None: every key).
    k
        Threshold of primary suppression.
    relations
        Sums between fields of one cell, ``(total, parts)``, for the heuristic (the exact audit
        needs none: it sees the atoms).
    unpublished
        Fields never published (a "rest" that only closes a relation): always hidden, never
        protected.
    """
    res_list = sorted({int(r) for r in resolutions})
    fine = res_list[-1]
    c = np.asarray(cells, dtype=np.int64)
    v = np.asarray(values, dtype=np.int64)
    key_names = sorted(set(keys))
    kidx = np.asarray([key_names.index(x) for x in keys], dtype=np.int64)
    keep = v != 0
    c, kidx, v = c[keep], kidx[keep], v[keep]
    if c.size and (grid.resolution(c) > fine).any():
        c = grid.parent(c, fine)
    # Aggregate duplicate atoms.
    if c.size:
        pairs, inv = np.unique(np.stack([c, kidx]), axis=1, return_inverse=True)
        c, kidx = pairs[0], pairs[1]
        v = np.bincount(inv.ravel(), weights=v, minlength=pairs.shape[1]).astype(np.int64)
    names = list(fields)
    nodes = _build_nodes(c, kidx, v, res_list, names, fields, key_names)
    secret = np.isin(nodes.fld, [names.index(f) for f in unpublished if f in names])
    primary = int(((nodes.value > 0) & (nodes.value < k) & ~secret).sum())
    groups = _groups(nodes, res_list, len(names))
    groups += _field_groups(nodes, names, relations)
    values = np.where(secret, np.maximum(nodes.value, k), nodes.value)  # a secret is no leak
    hidden = complementary_suppression(values, groups, k=k) | secret
    hidden[secret] = True
    rounds = 0
    trials = MAX_TRIALS  # audits spent choosing repairs, over all rounds
    for rounds in range(1, max_rounds + 1):  # noqa: B007 (reported)
        pinned, comps, witness = _audit(
            nodes, hidden & ~secret, hidden, res_list, len(names), v.size
        )
        if not pinned:
            break
        done: set[int] = set()  # one repair per component and round: one often frees several
        for n in pinned:
            where = _component_of(nodes, n, comps)
            if where in done:
                continue
            done.add(where)
            cands = _candidates(nodes, hidden, n, res_list, witness.get(n, set()))
            if not cands:
                continue
            pick = cands[0]
            for c_ in cands if len(cands) > 1 else ():  # the first that frees n, if any
                if trials <= 0:
                    break
                trials -= 1
                trial = hidden.copy()
                trial[c_] = True
                if n not in _audit(nodes, trial & ~secret, trial, res_list, len(names), v.size)[0]:
                    pick = c_
                    break
            hidden[pick] = True
    else:
        for _ in range(3):  # bounded fallback: hide every node touching a pinned node's atoms
            pinned, comps, _w = _audit(
                nodes, hidden & ~secret, hidden, res_list, len(names), v.size
            )
            if not pinned:
                break
            log.warning("suppression: %d nodes still pinned after %d rounds", len(pinned), rounds)
            _hide_components(nodes, hidden, pinned, comps)
    out = Suppressed(rounds=rounds, extra=int((hidden & ~secret).sum()) - primary)
    for i, name in enumerate(names):
        if name in unpublished:
            continue
        by_res: dict[int, set[int]] = {}
        for r in res_list:
            m = hidden & (nodes.fld == i) & (nodes.res == r)
            by_res[r] = set(nodes.cell[m].tolist())
        out.cells[name] = by_res
        out.totals[name] = bool((hidden & (nodes.fld == i) & (nodes.res == ROOT)).any())
    return out


def _build_nodes(
    c: npt.NDArray[np.int64],
    kidx: npt.NDArray[np.int64],
    v: npt.NDArray[np.int64],
    res_list: list[int],
    names: list[str],
    fields: Mapping[str, Sequence[str] | None],
    key_names: list[str],
) -> _Nodes:
    res_l: list[npt.NDArray[np.int64]] = []
    cell_l: list[npt.NDArray[np.int64]] = []
    fld_l: list[npt.NDArray[np.int64]] = []
    val_l: list[npt.NDArray[np.int64]] = []
    single_l: list[npt.NDArray[np.int64]] = []
    of_atom: dict[tuple[int, int], npt.NDArray[np.int64]] = {}
    parents = {r: (grid.parent(c, r) if c.size else c) for r in res_list}
    offset = 0
    for i, name in enumerate(names):
        want = fields[name]
        in_f = (
            np.ones(c.size, dtype=bool)
            if want is None
            else np.isin(kidx, [key_names.index(x) for x in want if x in key_names])
        )
        atoms = np.flatnonzero(in_f)
        for r in [*res_list, ROOT]:
            node = np.full(c.size, -1, dtype=np.int64)
            if r == ROOT:
                uniq = np.zeros(1, dtype=np.int64)
                inv = np.zeros(atoms.size, dtype=np.int64)
            else:
                uniq, inv = np.unique(parents[r][atoms], return_inverse=True)
            node[atoms] = offset + inv.ravel()
            of_atom[(i, r)] = node
            n = uniq.size
            res_l.append(np.full(n, r, dtype=np.int64))
            cell_l.append(uniq.astype(np.int64))
            fld_l.append(np.full(n, i, dtype=np.int64))
            val_l.append(np.bincount(inv.ravel(), weights=v[atoms], minlength=n).astype(np.int64))
            count = np.bincount(inv.ravel(), minlength=n)
            single = np.full(n, -1, dtype=np.int64)
            one = count == 1
            if one.any():
                first = np.full(n, -1, dtype=np.int64)
                first[inv.ravel()[::-1]] = atoms[::-1]
                single[one] = first[one]
            single_l.append(single)
            offset += n
    cat = np.concatenate
    return _Nodes(cat(res_l), cat(cell_l), cat(fld_l), cat(val_l), of_atom, cat(single_l))


def _groups(nodes: _Nodes, res_list: list[int], nf: int) -> list[tuple[int, list[int]]]:
    """Parent = sum of children, per field (and city total = sum of the coarsest cells)."""
    groups: list[tuple[int, list[int]]] = []
    levels = [ROOT, *res_list]
    for i in range(nf):
        for coarse, finer in itertools.pairwise(levels):
            a, b = nodes.of_atom[(i, coarse)], nodes.of_atom[(i, finer)]
            ok = a >= 0
            if not ok.any():
                continue
            # Distinct (parent, child) pairs, sorted: one key per pair (node ids are < n).
            n = nodes.value.size
            key = np.unique(a[ok] * n + b[ok])
            par, kid = key // n, key % n
            cut = (np.flatnonzero(np.diff(par)) + 1).tolist()
            kids = kid.tolist()
            starts, ends = [0, *cut], [*cut, kid.size]
            heads = par[starts].tolist()
            groups.extend((h, kids[s:e]) for h, s, e in zip(heads, starts, ends, strict=True))
    return groups


def _field_groups(
    nodes: _Nodes, names: list[str], relations: Sequence[tuple[str, Sequence[str]]]
) -> list[tuple[int, list[int]]]:
    """Field relations of every cell (and city total): total field = sum of part fields."""
    groups: list[tuple[int, list[int]]] = []
    for total, parts in relations:
        if total not in names or not all(p in names for p in parts):
            continue
        t = names.index(total)
        ps = [names.index(p) for p in parts]
        for r in np.unique(nodes.res).tolist():
            tn = np.flatnonzero((nodes.fld == t) & (nodes.res == r))
            cols = []
            for p in ps:
                pn = np.flatnonzero((nodes.fld == p) & (nodes.res == r))
                if not pn.size:
                    cols.append(np.full(tn.size, -1, dtype=np.int64))
                    continue
                pos = np.minimum(np.searchsorted(nodes.cell[pn], nodes.cell[tn]), pn.size - 1)
                ok = nodes.cell[pn[pos]] == nodes.cell[tn]
                cols.append(np.where(ok, pn[pos], -1))
            if not cols or not tn.size:
                continue
            mat = np.stack(cols, axis=1)
            full = cast("list[bool]", (mat >= 0).all(axis=1).tolist())
            for tnode, row, whole in zip(tn.tolist(), mat.tolist(), full, strict=True):
                members = row if whole else [x for x in row if x >= 0]
                if members:
                    groups.append((tnode, members))
    return groups


def _component_of(nodes: _Nodes, n: int, comps: npt.NDArray[np.int64]) -> int:
    """A key for the component of node ``n`` (its first unknown atom's), else -2 - n."""
    for (_, _), node in nodes.of_atom.items():
        atoms = np.flatnonzero((node == n) & (comps >= 0))
        if atoms.size:
            return int(comps[atoms[0]])
    return -2 - n


def _audit(
    nodes: _Nodes,
    protect: npt.NDArray[np.bool_],
    hidden: npt.NDArray[np.bool_],
    res_list: list[int],
    nf: int,
    n_atoms: int,
) -> tuple[list[int], npt.NDArray[np.int64], dict[int, set[int]]]:
    """Hidden non-zero nodes whose value the published ones pin down, the component of each
    unknown atom (-1: a known atom), and per pinned node the published nodes that pin it."""
    # Known atoms: sole member of a published node.
    known = np.zeros(n_atoms, dtype=bool)
    pub_single = nodes.single[(~hidden) & (nodes.single >= 0)]
    known[pub_single] = True
    unk = ~known
    unknown = np.flatnonzero(unk)
    col = np.full(n_atoms, -1, dtype=np.int64)
    col[unknown] = np.arange(unknown.size)
    # Reduced published rows: (row node, atom) pairs over unknown atoms.
    levels = [ROOT, *res_list]
    rows_l: list[npt.NDArray[np.int64]] = []
    cols_l: list[npt.NDArray[np.int64]] = []
    for i in range(nf):
        for j, r in enumerate(levels):
            node = nodes.of_atom[(i, r)]
            valid, safe = nodes.at((i, r))
            m = valid & unk & ~hidden[safe]
            if j + 1 < len(levels):  # only the atoms under hidden children
                m &= hidden[nodes.at((i, levels[j + 1]))[1]]
            rows_l.append(node[m])
            cols_l.append(col[m])
    rows = np.concatenate(rows_l) if rows_l else np.zeros(0, dtype=np.int64)
    cols = np.concatenate(cols_l) if cols_l else np.zeros(0, dtype=np.int64)
    comp = np.full(n_atoms, -1, dtype=np.int64)
    targets = np.flatnonzero(protect & (nodes.value > 0))
    if unknown.size == 0:
        return [int(n) for n in targets], comp, {}
    # Components of unknown atoms joined by rows.
    row_ids, row_inv = np.unique(rows, return_inverse=True) if rows.size else (rows, rows)
    nu, nr = unknown.size, row_ids.size
    g = coo_matrix(
        (np.ones(rows.size), (cols, nu + row_inv.ravel())), shape=(nu + nr, nu + nr)
    ).tocsr()
    _, labels = connected_components(g, directed=False)
    comp[unknown] = labels[:nu]
    # Each hidden node's unknown atoms, per component.
    hid_rows_l: list[npt.NDArray[np.int64]] = []
    hid_cols_l: list[npt.NDArray[np.int64]] = []
    for i in range(nf):
        for r in levels:
            node = nodes.of_atom[(i, r)]
            valid, safe = nodes.at((i, r))
            m = valid & unk & protect[safe]
            hid_rows_l.append(node[m])
            hid_cols_l.append(col[m])
    hrows = np.concatenate(hid_rows_l)
    hcols = np.concatenate(hid_cols_l)
    pinned = np.ones(nodes.value.size, dtype=bool)  # no unknown atom: pinned
    free, witness = solve_components(
        labels=labels, nu=nu, rows=rows, cols=cols,
        row_inv=row_inv.ravel(), hrows=hrows, hcols=hcols, n_nodes=nodes.value.size,
        targets=targets,
    )  # fmt: skip
    pinned &= ~free
    out = [int(n) for n in targets if pinned[n]]
    if out:  # known atoms pin too: the published single-atom node of each
        single_of = np.full(n_atoms, -1, dtype=np.int64)
        pub = np.flatnonzero(~hidden & (nodes.single >= 0))
        single_of[nodes.single[pub]] = pub
        for i in range(nf):
            for r in levels:
                node = nodes.of_atom[(i, r)]
                m = np.isin(node, out) & known
                for h, w in zip(node[m].tolist(), single_of[m].tolist(), strict=True):
                    witness.setdefault(h, set()).add(w)
    return out, comp, witness


def _candidates(
    nodes: _Nodes,
    hidden: npt.NDArray[np.bool_],
    n: int,
    res_list: list[int],
    witness: set[int],
    limit: int = 4,
) -> list[int]:
    """Nodes to hide next to pinned node ``n``, best first: the smallest non-zero published
    nodes among those that pin it (its witnesses), its smallest non-zero shown sibling, a
    field of the same cell, a child, its parent (for a city total: a coarsest cell, another
    field's total)."""
    r, cell, f = int(nodes.res[n]), int(nodes.cell[n]), int(nodes.fld[n])
    shown = ~hidden & (nodes.value > 0)
    masks = []
    if witness:
        w = np.zeros(nodes.value.size, dtype=bool)
        w[list(witness)] = True
        masks.append(w & shown)
    same_f = shown & (nodes.fld == f)
    same_cell = shown & (nodes.res == r) & (nodes.cell == cell)
    if r == ROOT:
        masks += [same_f & (nodes.res == res_list[0]), same_cell]
    else:
        j = res_list.index(r)
        at_r = np.flatnonzero(same_f & (nodes.res == r))
        sib = np.zeros(nodes.value.size, dtype=bool)
        if j == 0:
            sib[at_r] = True
        elif at_r.size:
            mine = int(grid.parent(np.array([cell]), res_list[j - 1])[0])
            sib[at_r[grid.parent(nodes.cell[at_r], res_list[j - 1]) == mine]] = True
        kids = np.zeros(nodes.value.size, dtype=bool)
        if j + 1 < len(res_list):
            below = np.flatnonzero(same_f & (nodes.res == res_list[j + 1]))
            if below.size:
                kids[below[grid.parent(nodes.cell[below], r) == cell]] = True
        if j == 0:
            up = same_f & (nodes.res == ROOT)
        else:
            mine = int(grid.parent(np.array([cell]), res_list[j - 1])[0])
            up = same_f & (nodes.res == res_list[j - 1]) & (nodes.cell == mine)
        masks += [sib, same_cell, kids, up]
    out: list[int] = []
    for m in masks:
        idx = np.flatnonzero(m)
        for c in idx[np.lexsort((nodes.cell[idx], nodes.value[idx]))][:limit].tolist():
            if c not in out:
                out.append(int(c))
        if len(out) >= limit:
            break
    return out[:limit]


def _smallest(nodes: _Nodes, mask: npt.NDArray[np.bool_]) -> int | None:
    idx = np.flatnonzero(mask)
    if not idx.size:
        return None
    order = np.lexsort((nodes.cell[idx], nodes.value[idx]))
    return int(idx[order[0]])


def _hide_components(
    nodes: _Nodes, hidden: npt.NDArray[np.bool_], pinned: list[int], comp: npt.NDArray[np.int64]
) -> None:
    """Hide every node sharing an atom with a pinned node (the bounded fallback)."""
    atoms = np.zeros(comp.size, dtype=bool)
    for (_, _), node in nodes.of_atom.items():
        atoms |= np.isin(node, pinned)
    comps = set(comp[atoms].tolist()) - {-1}
    atoms |= np.isin(comp, list(comps))
    for (_, _), node in nodes.of_atom.items():
        touched = np.unique(node[atoms & (node >= 0)])
        hidden[touched[nodes.value[touched] > 0]] = True


def coarsen(value: int | None, k: int) -> int | None:
    """A people count of an admin area for the public: None below k, else rounded to the
    nearest multiple of k (halves up). Rounded totals are intervals, not equations, so they
    cannot be subtracted from cell counts to pin a hidden count down."""
    if value is None or value == 0:
        return value
    if value < k:
        return None
    return int((value + k // 2) // k * k)


def cell_hidden_fields(
    res: Sequence[int] | np.ndarray,
    cells: Sequence[int] | np.ndarray,
    counts: Mapping[str, Sequence[int] | np.ndarray],
    by_age: Sequence[Mapping[str, int] | None],
    *,
    k: int,
) -> list[list[str]]:
    """The people fields of each cell row to hide from those without the right.

    Parameters
    ----------
    res, cells
        H3 resolution and cell id (int64) of each row; the rows hold every cell with people or
        jobs at each resolution (a cell with no row counts zero).
    counts
        ``population``, ``elderly`` and ``jobs`` per row (persons).
    by_age
        Residents per age band per row (``{"0-14": 12, ...}``); elderly are the bands of
        :data:`ELDERLY_BANDS`.
    k
        Suppression threshold.

    Returns
    -------
    list of list of str
        Per row, the fields to hide: ``population``, ``elderly``, ``jobs`` and
        ``population_by_age.<band>``.

    Notes
    -----
    Decided by the one model of :func:`twin.access.suppression.suppress`: residents are atoms per
    finest cell and age band (the finest rows' ``population_by_age``), jobs atoms per finest
    cell; every field at every resolution and the city totals are nodes.
    """
    res_arr = np.asarray(res, dtype=np.int64)
    cell_arr = np.asarray(cells, dtype=np.int64)
    n = len(cell_arr)
    if n == 0:
        return []
    levels = sorted(set(res_arr.tolist()))
    fine = np.flatnonzero(res_arr == levels[-1]).tolist()
    a_cells: list[int] = []
    a_keys: list[str] = []
    a_vals: list[int] = []
    for i in fine:
        for band, c in (by_age[i] or {}).items():
            if c:
                a_cells.append(int(cell_arr[i]))
                a_keys.append(band)
                a_vals.append(int(c))
    bands = sorted(set(a_keys))
    old = [b for b in bands if b in ELDERLY_BANDS]
    young = [b for b in bands if b not in ELDERLY_BANDS]
    fields: dict[str, list[str] | None] = {
        "population": None,
        "elderly": old,
        "rest": young,  # never published: closes population = elderly + rest
        **{f"population_by_age.{b}": [b] for b in bands},
    }
    relations = [
        ("population", ["elderly", "rest"]),
        ("elderly", [f"population_by_age.{b}" for b in old]),
        ("rest", [f"population_by_age.{b}" for b in young]),
    ]
    people = suppress(
        a_cells, a_keys, a_vals, resolutions=levels, fields=fields, k=k,
        relations=relations, unpublished=["rest"],
    )  # fmt: skip
    jobs_v = np.asarray(counts["jobs"], dtype=np.int64)
    jobs = suppress(
        cell_arr[fine], ["jobs"] * len(fine), jobs_v[fine], resolutions=levels,
        fields={"jobs": None}, k=k,
    )  # fmt: skip
    shown = sorted([*(f for f in fields if f != "rest"), "jobs"], key=_field_order)
    flags = np.zeros((n, len(shown)), dtype=bool)
    for j, f in enumerate(shown):
        by_res = (jobs if f == "jobs" else people).cells.get(f, {})
        for r, hid in by_res.items():
            at = np.flatnonzero(res_arr == r)
            if hid and at.size:
                flags[at, j] = np.isin(cell_arr[at], np.fromiter(hid, dtype=np.int64))
    out: list[list[str]] = [[] for _ in range(n)]
    for i in np.flatnonzero(flags.any(axis=1)).tolist():
        out[i] = [shown[j] for j in np.flatnonzero(flags[i]).tolist()]
    return out


def _field_order(f: str) -> tuple[int, str]:
    return ({"population": 0, "elderly": 1, "jobs": 2}.get(f, 3), f)
