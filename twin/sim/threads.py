"""numba's thread pool for the compiled kernels: how many threads a run may ask for, and asking
for them only while the run lasts.

Every science core that shares its work among threads (the flood step by bands of rows, the
traffic solver by groups of origins) takes a ``threads`` count from 1 to numba's
``NUMBA_NUM_THREADS`` and runs under :func:`numba_threads`. A one-thread run never starts numba's
pool; a threaded one sets the pool's size for its own length and restores it after, so one run
cannot change another's.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import numba


def most_threads() -> int:
    """The most threads a run may ask for here (numba's ``NUMBA_NUM_THREADS``)."""
    return int(getattr(numba.config, "NUMBA_NUM_THREADS", 1))


def check_threads(threads: object) -> int:
    """``threads`` if it is an integer from 1 to :func:`most_threads`, else a ValueError that
    names the bound."""
    most = most_threads()
    if isinstance(threads, bool) or not isinstance(threads, int) or not 1 <= threads <= most:
        raise ValueError(
            f"threads must be an integer from 1 to NUMBA_NUM_THREADS ({most}), not {threads!r}"
        )
    return threads


@contextmanager
def numba_threads(threads: int) -> Iterator[None]:
    """numba's parallel kernels run on ``threads`` threads inside the block (1: nothing is
    started, the pool is left as it is)."""
    if threads <= 1:
        yield
        return
    before = numba.get_num_threads()
    numba.set_num_threads(threads)
    try:
        yield
    finally:
        numba.set_num_threads(before)
