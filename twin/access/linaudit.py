"""The per-component linear solve of the exact suppression audit, batched.

:func:`twin.access.suppression._audit` splits the unknown atoms into connected components; a
hidden node is *free* (not pinned down by the published nodes) iff, in some component, its
vector over the component's atoms is not in the row space of the published rows there. Most
components are tiny, so instead of one SVD per component this module decides them together:

- a component with no published row leaves every hidden node touching it free;
- a component of one unknown atom with a published row pins that atom (rank 1, so every
  hidden node's part there is in the row space);
- every other component is solved by SVD, all components of one shape (rows x atoms) in one
  stacked :func:`numpy.linalg.svd` call, with the same rank rule as a single solve.

The witnesses (the published rows that pin a node) are then computed, by least squares as
before, only for the components of the nodes left pinned. Pure functions.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

TOL = 1e-7  # relative rank tolerance on singular values
RESID = 1e-6  # a residual norm above this leaves a node free
BIG = 256  # matrices with more entries are decomposed one by one
IntArray = npt.NDArray[np.int64]


def _local(comp: IntArray, ncomp: int) -> tuple[IntArray, IntArray]:
    """Per item, its index among its component's items (in the items' order), and per
    component its item count."""
    order = np.argsort(comp, kind="stable")
    count = np.bincount(comp, minlength=ncomp)
    start = np.concatenate([[0], np.cumsum(count)[:-1]])
    loc = np.empty(comp.size, dtype=np.int64)
    loc[order] = np.arange(comp.size) - start[comp[order]]
    return loc, count


def _svd(a: npt.NDArray[np.float64]) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """Singular values and right vectors of each matrix of a stack (a stacked call for small
    matrices; one by one for big ones, where the stacked LAPACK path is slower)."""
    if a.shape[1] * a.shape[2] <= BIG:
        _, sv, vt = np.linalg.svd(a, full_matrices=False)
        return sv, vt
    parts = [np.linalg.svd(m, full_matrices=False)[1:] for m in a]
    return np.stack([p[0] for p in parts]), np.stack([p[1] for p in parts])


def solve_components(
    *,
    labels: IntArray,
    nu: int,
    rows: IntArray,
    cols: IntArray,
    row_inv: IntArray,
    hrows: IntArray,
    hcols: IntArray,
    n_nodes: int,
    targets: IntArray,
) -> tuple[npt.NDArray[np.bool_], dict[int, set[int]]]:
    """Free hidden nodes and the witnesses of the pinned ones.

    Parameters
    ----------
    labels
        Component of each unknown atom (first ``nu``) and of each published row (then, in the
        order of ``row_ids``).
    rows, cols, row_inv
        The published rows' entries: row node, unknown atom (column), index into ``row_ids``.
    hrows, hcols
        The hidden nodes' entries over unknown atoms: node, atom.
    n_nodes
        Number of nodes.
    targets
        The hidden nodes to protect (witnesses are kept for those left pinned).

    Returns
    -------
    free, witness
        ``free[n]``: node n has a part the published rows do not fix; ``witness[n]``: for a
        pinned target, the published row nodes that pin it.
    """
    labels = labels.astype(np.int64)
    ncomp = int(labels.max()) + 1 if labels.size else 0
    free = np.zeros(n_nodes, dtype=bool)
    if hrows.size == 0:
        return free, {}
    a_loc, n_atom = _local(labels[:nu], ncomp)
    r_loc, n_row = _local(labels[nu:], ncomp)
    hcomp = labels[hcols]
    # Hidden node per component, ascending node id.
    hkey = hcomp * n_nodes + hrows
    uk, h_ent = np.unique(hkey, return_inverse=True)
    h_ent = h_ent.ravel()
    uk_comp = uk // n_nodes
    uk_node = uk % n_nodes
    h_loc_u, n_hid = _local(uk_comp, ncomp)
    # No published row: free. One atom with a row: pinned there.
    free[uk_node[n_row[uk_comp] == 0]] = True
    general = (n_row > 0) & (n_atom > 1) & (n_hid > 0)
    row_comp = labels[nu + row_inv] if rows.size else rows
    ok_u = np.zeros(uk.size, dtype=bool)  # per (component, hidden node): free there
    ok_u[n_row[uk_comp] == 0] = True
    gcomps = np.flatnonzero(general)
    if gcomps.size:
        shape = n_row[gcomps] * (int(n_atom.max()) + 1) + n_atom[gcomps]
        shapes, g_shape = np.unique(shape, return_inverse=True)
        g_shape = g_shape.ravel()
        batch_of = np.full(ncomp, -1, dtype=np.int64)
        shape_of = np.full(ncomp, -1, dtype=np.int64)
        b_loc, _ = _local(g_shape, shapes.size)
        batch_of[gcomps] = b_loc
        shape_of[gcomps] = g_shape
        r_sel = np.flatnonzero(shape_of[row_comp] >= 0)
        r_sh = shape_of[row_comp[r_sel]]
        r_order = r_sel[np.argsort(r_sh, kind="stable")]
        r_bounds = np.searchsorted(np.sort(r_sh), np.arange(shapes.size + 1))
        u_sel = np.flatnonzero(shape_of[uk_comp] >= 0)
        u_sh = shape_of[uk_comp[u_sel]]
        u_order = u_sel[np.argsort(u_sh, kind="stable")]
        u_bounds = np.searchsorted(np.sort(u_sh), np.arange(shapes.size + 1))
        e_sel = np.flatnonzero(shape_of[hcomp] >= 0)
        e_sh = shape_of[hcomp[e_sel]]
        e_order = e_sel[np.argsort(e_sh, kind="stable")]
        e_bounds = np.searchsorted(np.sort(e_sh), np.arange(shapes.size + 1))
        width = int(n_atom.max()) + 1
        sizes = (shapes // width) * (shapes % width)
        for s in np.argsort(sizes, kind="stable").tolist():  # small first: they free the most
            nr, na = int(shapes[s]) // width, int(shapes[s]) % width
            ue = u_order[u_bounds[s] : u_bounds[s + 1]]
            # Only components with a node not yet free elsewhere (free is an "or").
            live = np.zeros(int(b_loc.max()) + 1, dtype=bool)
            live[batch_of[uk_comp[ue[~free[uk_node[ue]]]]]] = True
            if not live.any():
                continue
            renum = np.cumsum(live) - 1
            nb = int(live.sum())
            re = r_order[r_bounds[s] : r_bounds[s + 1]]
            re = re[live[batch_of[row_comp[re]]]]
            ue = ue[live[batch_of[uk_comp[ue]]]]
            he = e_order[e_bounds[s] : e_bounds[s + 1]]
            he = he[live[batch_of[hcomp[he]]]]
            a = np.zeros((nb, nr, na))
            a[renum[batch_of[row_comp[re]]], r_loc[row_inv[re]], a_loc[cols[re]]] = 1.0
            nh = int(h_loc_u[ue].max()) + 1
            hm = np.zeros((nb, nh, na))
            hm[renum[batch_of[hcomp[he]]], h_loc_u[h_ent[he]], a_loc[hcols[he]]] = 1.0
            sv, vt = _svd(a)
            rank = (sv > TOL * np.maximum(1.0, sv[:, 0])[:, None]).sum(axis=1)
            keep = np.arange(sv.shape[1])[None, :] < rank[:, None]
            basis = vt * keep[:, :, None]
            resid = hm - (hm @ basis.transpose(0, 2, 1)) @ basis
            ok = np.linalg.norm(resid, axis=2) > RESID
            ok_u[ue] = ok[renum[batch_of[uk_comp[ue]]], h_loc_u[ue]]
            free[uk_node[ue[ok_u[ue]]]] = True
    witness: dict[int, set[int]] = {}
    is_target = np.zeros(n_nodes, dtype=bool)
    is_target[targets] = True
    need = ~ok_u & is_target[uk_node] & ~free[uk_node] & (n_row[uk_comp] > 0)
    for cid in np.unique(uk_comp[need]).tolist():
        hidx = np.flatnonzero(hcomp == cid)
        ridx = np.flatnonzero(row_comp == cid)
        _witness(cid, hidx, ridx, hrows, hcols, rows, cols, witness)
    return free, witness


def _witness(
    cid: int,
    hidx: IntArray,
    ridx: IntArray,
    hrows: IntArray,
    hcols: IntArray,
    rows: IntArray,
    cols: IntArray,
    witness: dict[int, set[int]],
) -> None:
    """One component solved alone: the published rows that pin each of its pinned nodes."""
    atoms_c = np.unique(np.concatenate([hcols[hidx], cols[ridx]]))
    hn, hi = np.unique(hrows[hidx], return_inverse=True)
    hm = np.zeros((hn.size, atoms_c.size))
    hm[hi.ravel(), np.searchsorted(atoms_c, hcols[hidx])] = 1.0
    rn, ri = np.unique(rows[ridx], return_inverse=True)
    a = np.zeros((rn.size, atoms_c.size))
    a[ri.ravel(), np.searchsorted(atoms_c, cols[ridx])] = 1.0
    _, s, vt = np.linalg.svd(a, full_matrices=False)
    rank = int((s > TOL * max(1.0, s[0] if s.size else 1.0)).sum())
    basis = vt[:rank]
    resid = hm - (hm @ basis.T) @ basis
    ok = np.linalg.norm(resid, axis=1) > RESID
    if (~ok).any():
        coef = np.linalg.lstsq(a.T, hm[~ok].T, rcond=None)[0]
        for h, col_ in zip(hn[~ok].tolist(), coef.T, strict=True):
            witness.setdefault(h, set()).update(rn[np.abs(col_) > RESID].tolist())
