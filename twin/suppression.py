"""One suppression model for every published count of people.

A quantity (residents by age band, jobs, people affected by a flood run) is modelled as sums of
*atoms*: its counts per finest H3 cell and key (an age band, or one key). Everything the twin
publishes about the quantity is a *node*, a sum of atoms: a cell at each configured resolution,
for each field (``population`` = every band, ``elderly`` = the old bands, one band), and the
city total of each field. Admin areas are not nodes: their people counts reach the public only
rounded to a multiple of k (:func:`coarsen`), which is not an equation an attacker can solve.

:func:`suppress` decides which nodes the public does not get:

1. primary suppression: counts from 1 to k-1;
2. the hierarchical heuristic of :func:`twin.privacy.complementary_suppression` (no relation
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

import numpy as np
import numpy.typing as npt
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from twin import grid
from twin.privacy import complementary_suppression

log = logging.getLogger(__name__)

TOL = 1e-7
MAX_ROUNDS = 30
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


def suppress(
    cells: npt.ArrayLike,
    keys: Sequence[str],
    values: npt.ArrayLike,
    *,
    resolutions: Sequence[int],
    fields: Mapping[str, Sequence[str] | None],
    k: int,
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
        Published fields: name -> the keys it sums (None: every key).
    k
        Threshold of primary suppression.
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
    hidden = (nodes.value > 0) & (nodes.value < k)
    primary = int(hidden.sum())
    hidden = complementary_suppression(nodes.value, _groups(nodes, res_list, len(names)), k=k)
    rounds = 0
    for rounds in range(1, max_rounds + 1):  # noqa: B007 (reported)
        pinned, comps = _audit(nodes, hidden, res_list, len(names), v.size)
        if not pinned:
            break
        for n in pinned:
            pick = _repair(nodes, hidden, n, res_list)
            if pick is not None:
                hidden[pick] = True
    else:
        pinned, comps = _audit(nodes, hidden, res_list, len(names), v.size)
        if pinned:  # bounded fallback: hide every node touching a pinned node's atoms
            log.warning("suppression: %d nodes still pinned after %d rounds", len(pinned), rounds)
            _hide_components(nodes, hidden, pinned, comps)
    out = Suppressed(rounds=rounds, extra=int(hidden.sum()) - primary)
    for i, name in enumerate(names):
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
            pairs = np.unique(np.stack([a[ok], b[ok]]), axis=1)
            kids: dict[int, list[int]] = {}
            for p, ch in zip(pairs[0].tolist(), pairs[1].tolist(), strict=True):
                kids.setdefault(p, []).append(ch)
            groups.extend((p, ch) for p, ch in kids.items() if len(ch) > 1)
    return groups


def _audit(
    nodes: _Nodes, hidden: npt.NDArray[np.bool_], res_list: list[int], nf: int, n_atoms: int
) -> tuple[list[int], npt.NDArray[np.int64]]:
    """Hidden non-zero nodes whose value the published ones pin down; and the component of each
    unknown atom (-1: a known atom)."""
    # Known atoms: sole member of a published node.
    known = np.zeros(n_atoms, dtype=bool)
    pub_single = nodes.single[(~hidden) & (nodes.single >= 0)]
    known[pub_single] = True
    unknown = np.flatnonzero(~known)
    col = np.full(n_atoms, -1, dtype=np.int64)
    col[unknown] = np.arange(unknown.size)
    # Reduced published rows: (row node, atom) pairs over unknown atoms.
    levels = [ROOT, *res_list]
    rows_l: list[npt.NDArray[np.int64]] = []
    cols_l: list[npt.NDArray[np.int64]] = []
    for i in range(nf):
        for j, r in enumerate(levels):
            node = nodes.of_atom[(i, r)]
            m = (node >= 0) & ~known
            m &= ~hidden[np.where(node >= 0, node, 0)]
            if j + 1 < len(levels):  # only the atoms under hidden children
                child = nodes.of_atom[(i, levels[j + 1])]
                m &= hidden[np.where(child >= 0, child, 0)]
            rows_l.append(node[m])
            cols_l.append(col[m])
    rows = np.concatenate(rows_l) if rows_l else np.zeros(0, dtype=np.int64)
    cols = np.concatenate(cols_l) if cols_l else np.zeros(0, dtype=np.int64)
    comp = np.full(n_atoms, -1, dtype=np.int64)
    targets = np.flatnonzero(hidden & (nodes.value > 0))
    if unknown.size == 0:
        return targets.tolist(), comp
    # Components of unknown atoms joined by rows.
    row_ids, row_inv = np.unique(rows, return_inverse=True) if rows.size else (rows, rows)
    nu, nr = unknown.size, row_ids.size
    g = coo_matrix(
        (np.ones(rows.size), (cols, nu + row_inv.ravel())), shape=(nu + nr, nu + nr)
    ).tocsr()
    _, labels = connected_components(g, directed=False)
    comp[unknown] = labels[:nu]
    row_comp = labels[nu + row_inv.ravel()] if rows.size else rows
    # Each hidden node's unknown atoms, per component.
    hid_rows_l: list[npt.NDArray[np.int64]] = []
    hid_cols_l: list[npt.NDArray[np.int64]] = []
    for i in range(nf):
        for r in levels:
            node = nodes.of_atom[(i, r)]
            m = (node >= 0) & ~known
            m &= hidden[np.where(node >= 0, node, 0)]
            hid_rows_l.append(node[m])
            hid_cols_l.append(col[m])
    hrows = np.concatenate(hid_rows_l)
    hcols = np.concatenate(hid_cols_l)
    pinned = np.ones(nodes.value.size, dtype=bool)  # no unknown atom: pinned
    by_comp_rows: dict[int, list[int]] = {}
    order = np.argsort(row_comp, kind="stable")
    for idx in order.tolist():
        by_comp_rows.setdefault(int(row_comp[idx]), []).append(idx)
    hcomp = labels[hcols]
    horder = np.argsort(hcomp, kind="stable")
    by_comp_h: dict[int, list[int]] = {}
    for idx in horder.tolist():
        by_comp_h.setdefault(int(hcomp[idx]), []).append(idx)
    free = np.zeros(nodes.value.size, dtype=bool)  # some part of the node is not pinned
    for cid, hidx in by_comp_h.items():
        ridx = by_comp_rows.get(cid, [])
        atoms_c = np.unique(hcols[hidx])
        if ridx:
            atoms_c = np.unique(np.concatenate([atoms_c, cols[ridx]]))
        local = {a: n for n, a in enumerate(atoms_c.tolist())}
        hn = np.unique(hrows[hidx])
        hpos = {h: n for n, h in enumerate(hn.tolist())}
        hm = np.zeros((hn.size, atoms_c.size))
        for t in hidx:
            hm[hpos[int(hrows[t])], local[int(hcols[t])]] = 1.0
        if ridx:
            rn = np.unique(rows[ridx])
            rpos = {x: n for n, x in enumerate(rn.tolist())}
            a = np.zeros((rn.size, atoms_c.size))
            for t in ridx:
                a[rpos[int(rows[t])], local[int(cols[t])]] = 1.0
            _, s, vt = np.linalg.svd(a, full_matrices=False)
            rank = int((s > TOL * max(1.0, s[0] if s.size else 1.0)).sum())
            basis = vt[:rank]
            resid = hm - (hm @ basis.T) @ basis
        else:
            resid = hm
        free[hn[np.linalg.norm(resid, axis=1) > 1e-6]] = True
    pinned &= ~free
    return [int(n) for n in targets if pinned[n]], comp


def _repair(
    nodes: _Nodes, hidden: npt.NDArray[np.bool_], n: int, res_list: list[int]
) -> int | None:
    """The node to hide next to pinned node ``n``: its smallest non-zero shown sibling, else a
    field of the same cell, else a child, else its parent."""
    r, cell, f = int(nodes.res[n]), int(nodes.cell[n]), int(nodes.fld[n])
    shown = ~hidden & (nodes.value > 0)
    same_f = nodes.fld == f
    if r == ROOT:
        cand = shown & same_f & (nodes.res == res_list[0])
        return _smallest(nodes, cand)
    j = res_list.index(r)
    at_r = same_f & (nodes.res == r)
    if j == 0:
        sib = at_r
    else:
        up = res_list[j - 1]
        idx = np.flatnonzero(at_r)
        sib = np.zeros(nodes.value.size, dtype=bool)
        if idx.size:
            mine = int(grid.parent(np.array([cell]), up)[0])
            sib[idx[grid.parent(nodes.cell[idx], up) == mine]] = True
    pick = _smallest(nodes, shown & sib)
    if pick is not None:
        return pick
    pick = _smallest(nodes, shown & (nodes.res == r) & (nodes.cell == cell))
    if pick is not None:
        return pick
    if j + 1 < len(res_list):
        idx = np.flatnonzero(same_f & (nodes.res == res_list[j + 1]) & shown)
        if idx.size:
            kids = idx[grid.parent(nodes.cell[idx], r) == cell]
            m = np.zeros(nodes.value.size, dtype=bool)
            m[kids] = True
            pick = _smallest(nodes, m)
            if pick is not None:
                return pick
    if j == 0:
        cand = shown & same_f & (nodes.res == ROOT)
    else:
        mine = int(grid.parent(np.array([cell]), res_list[j - 1])[0])
        cand = shown & same_f & (nodes.res == res_list[j - 1]) & (nodes.cell == mine)
    return _smallest(nodes, cand)


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
