"""H3's own C ``latLngToCell`` (and ``cellToBoundary``) over whole arrays, on several cores.

h3-py calls H3's C library once per point through Python, which holds the interpreter lock:
one core at about 1.5 million points a second. This module calls the *same* C function, the
``latLngToCell`` (and ``degsToRads``) compiled into h3-py's extension module, from a numba loop
that releases the lock, on contiguous chunks in a few threads. The cell of every point is
computed by exactly the code h3-py runs, so the result is identical to
``h3.latlng_to_cell`` point by point, for any number of workers.

Callers validate coordinates first (``twin.grid.points_to_cells`` does): the kernel stops at the
first point H3 refuses and reports its position.
"""

from __future__ import annotations

import ctypes
import os
from concurrent.futures import ThreadPoolExecutor

import numba
import numpy as np
import numpy.typing as npt
from h3._cy import latlng as _h3_latlng

# The C library is linked statically into each of h3-py's extension modules; take the copy that
# h3.latlng_to_cell itself calls.
_lib = ctypes.CDLL(_h3_latlng.__file__)
_lat_lng_to_cell = _lib.latLngToCell  # H3Error latLngToCell(const LatLng *g, int res, H3Index *out)
_lat_lng_to_cell.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_void_p]
_lat_lng_to_cell.restype = ctypes.c_uint32
_degs_to_rads = _lib.degsToRads  # double degsToRads(double degrees), as h3-py converts
_degs_to_rads.argtypes = [ctypes.c_double]
_degs_to_rads.restype = ctypes.c_double
_cell_to_boundary = _lib.cellToBoundary  # H3Error cellToBoundary(H3Index h, CellBoundary *gp)
_cell_to_boundary.argtypes = [ctypes.c_uint64, ctypes.c_void_p]
_cell_to_boundary.restype = ctypes.c_uint32
_is_valid_cell = _lib.isValidCell  # int isValidCell(H3Index h), h3-py's check before it
_is_valid_cell.argtypes = [ctypes.c_uint64]
_is_valid_cell.restype = ctypes.c_int
_rads_to_degs = _lib.radsToDegs  # double radsToDegs(double radians), as h3-py converts back
_rads_to_degs.argtypes = [ctypes.c_double]
_rads_to_degs.restype = ctypes.c_double
MAX_VERTS = 10  # MAX_CELL_BNDRY_VERTS

# Below this many points one thread does it (a thread pool costs more than it saves).
_MIN_PER_WORKER = 50_000


@numba.njit(nogil=True, cache=True)
def _kernel(  # pragma: no cover - compiled; exercised through latlng_to_cell
    to_cell: object,
    to_rads: object,
    lat: npt.NDArray[np.float64],
    lng: npt.NDArray[np.float64],
    res: int,
    out: npt.NDArray[np.uint64],
) -> int:
    # The C functions come in as arguments (not globals) so numba can cache the compiled loop.
    latlng = np.empty(2, np.float64)  # struct LatLng {double lat; double lng;}, radians
    cell = np.empty(1, np.uint64)
    for i in range(lat.size):
        latlng[0] = to_rads(lat[i])  # type: ignore[operator]
        latlng[1] = to_rads(lng[i])  # type: ignore[operator]
        if to_cell(latlng.ctypes, res, cell.ctypes) != 0:  # type: ignore[operator]
            return i
        out[i] = cell[0]
    return -1


@numba.njit(nogil=True, cache=True)
def _boundary_kernel(  # pragma: no cover - compiled; exercised through cell_boundaries
    to_boundary: object,
    is_valid: object,
    to_degs: object,
    cells: npt.NDArray[np.uint64],
    nverts: npt.NDArray[np.int64],
    out: npt.NDArray[np.float64],
) -> int:
    # struct CellBoundary {int numVerts; LatLng verts[10];}: the int is padded to 8 bytes, so
    # the vertices (lat, lng radians) start at the second double.
    buf = np.zeros(1 + 2 * MAX_VERTS, np.float64)
    count = buf[:1].view(np.int32)
    for i in range(cells.size):
        if is_valid(cells[i]) == 0 or to_boundary(cells[i], buf.ctypes) != 0:  # type: ignore[operator]
            return i
        n = count[0]
        nverts[i] = n
        for j in range(n):
            out[i, j, 0] = to_degs(buf[1 + 2 * j])  # type: ignore[operator]
            out[i, j, 1] = to_degs(buf[2 + 2 * j])  # type: ignore[operator]
    return -1


def cell_boundaries(
    cells: npt.NDArray[np.uint64],
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float64]]:
    """Vertices of cells' boundaries, exactly as ``h3.cell_to_boundary`` gives them.

    Parameters
    ----------
    cells
        H3 cells (``uint64``).

    Returns
    -------
    (nverts, verts): the vertex count of each cell (5 to 10), and an ``(n, 10, 2)`` array of
    (lat, lng) in degrees, counter-clockwise, of which the first ``nverts[i]`` rows are used.

    Raises
    ------
    ValueError
        naming the first cell that is not a valid H3 cell.
    """
    cells = np.ascontiguousarray(cells, dtype=np.uint64)
    nverts = np.zeros(cells.size, dtype=np.int64)
    verts = np.full((cells.size, MAX_VERTS, 2), np.nan)
    bad = _boundary_kernel(_cell_to_boundary, _is_valid_cell, _rads_to_degs, cells, nverts, verts)
    if bad >= 0:
        raise ValueError(f"cell {bad}: {int(cells[bad]):#x} is not a valid H3 cell")
    return nverts, verts


def default_workers() -> int:
    """The cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def latlng_to_cell(
    lat: npt.NDArray[np.float64],
    lng: npt.NDArray[np.float64],
    res: int,
    *,
    workers: int | None = None,
) -> npt.NDArray[np.uint64]:
    """H3 cells (``uint64``) of points, exactly as ``h3.latlng_to_cell`` gives them.

    Parameters
    ----------
    lat, lng
        Latitudes and longitudes in degrees, 1-d ``float64`` arrays of one length, already
        checked to be finite and in range.
    res
        H3 resolution, 0..15.
    workers
        Threads to use (keyword-only); ``None`` means every core this process may use. The
        points are cut into that many contiguous chunks; the result does not depend on it.

    Returns
    -------
    ndarray of uint64, one cell a point.

    Raises
    ------
    ValueError
        naming the first point H3's C library refuses, or a ``workers`` below 1.
    """
    lat = np.ascontiguousarray(lat, dtype=np.float64)
    lng = np.ascontiguousarray(lng, dtype=np.float64)
    n = lat.size
    out = np.empty(n, dtype=np.uint64)
    if workers is None:
        workers = default_workers()
    if workers < 1:
        raise ValueError(f"workers must be at least 1, got {workers}")
    workers = max(1, min(workers, n // _MIN_PER_WORKER))
    bounds = np.linspace(0, n, workers + 1).astype(np.int64)

    def run(k: int) -> int:
        lo, hi = int(bounds[k]), int(bounds[k + 1])
        bad = _kernel(_lat_lng_to_cell, _degs_to_rads, lat[lo:hi], lng[lo:hi], res, out[lo:hi])
        return -1 if bad < 0 else lo + bad

    if workers == 1:
        failed = [run(0)]
    else:
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="h3c") as pool:
            failed = list(pool.map(run, range(workers)))
    bad = [i for i in failed if i >= 0]
    if bad:
        i = bad[0]
        raise ValueError(f"point {i}: H3 refused ({lng[i]}, {lat[i]}) at resolution {res}")
    return out
