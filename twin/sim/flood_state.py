"""The state of a flood run, to carry from one run to the next (a rolling nowcast).

:func:`twin.sim.flood.simulate` returns a :class:`FloodState` with every result
(``FloodResult.state``) and takes one as ``initial_state``: the next run then continues the
first one where it stopped, on the same clock, instead of starting from a dry grid. What the
state holds is everything the scheme reads from one step to the next:

- the depth and the face discharges (the local-inertial scheme is a second-order-in-time
  update: the discharges are state, not a by-product of the depth);
- the largest depth of the last step (it sets the next adaptive time step);
- the model clock (s since the first run started): rain series, inflow hydrographs, the
  times of the maxima and of the first arrival at the threshold are all read on it;
- the maxima since the first run (depth and its time, velocity, hazard, first time at the
  threshold) and the running volume accounts (m³), so that a chain of runs reports what one
  long run would.

Two runs of 5 minutes chained through the state give the depths, discharges, maxima and
volumes of one 10-minute run whose output interval lands on the 5-minute boundary, bit for bit
(``tests/sim/test_flood_state.py``): the adaptive step is cut to land on every output time, so
both take the same steps. Without an output at the boundary the long run strides across it and
the two differ by the truncation error of one step.

The state serialises to an ``.npz`` blob (:meth:`FloodState.to_bytes`) for storage.
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.floating]

_ARRAYS = (
    "depth", "qx", "qy", "max_depth", "time_of_max_s", "max_velocity", "max_hazard",
    "time_to_threshold_s",
)  # fmt: skip


@dataclass(frozen=True)
class FloodState:
    """Where a flood run stopped.

    Attributes
    ----------
    time_s
        Model clock (s since the first run of the chain started).
    depth
        Water depth (m), ``(rows, cols)``, the state's dtype.
    qx, qy
        Unit discharges (m²/s) through the west faces ``(rows, cols + 1)`` and the north faces
        ``(rows + 1, cols)`` (see :mod:`twin.sim.flood`).
    hmax_m
        The largest depth (m) after the last step, which sets the next step's length.
    max_depth, time_of_max_s, max_velocity, max_hazard
        Maxima since the chain started (float32; m, s on the clock, m/s, hazard rating).
    time_to_threshold_s
        First time (s on the clock) each cell reached the run's threshold depth; ``inf``: not
        yet.
    volumes_m3
        Running accounts since the chain started (m³): ``initial`` (the water on the grid at
        the start of the first run), ``rain``, ``inflow``, ``drained``, ``infiltrated``,
        ``outflow``.
    steps
        Time steps taken since the chain started.

    The arrays are never modified by a run that starts from the state: it works on copies.
    """

    time_s: float
    depth: FloatArray
    qx: FloatArray
    qy: FloatArray
    hmax_m: float
    max_depth: FloatArray
    time_of_max_s: FloatArray
    max_velocity: FloatArray
    max_hazard: FloatArray
    time_to_threshold_s: FloatArray
    volumes_m3: dict[str, float] = field(default_factory=dict)
    steps: int = 0

    @property
    def shape(self) -> tuple[int, int]:
        return (int(self.depth.shape[0]), int(self.depth.shape[1]))

    def check(self, shape: tuple[int, int]) -> None:
        """Raise ValueError naming the array whose shape does not fit a ``shape`` grid."""
        ny, nx = shape
        want = {"depth": (ny, nx), "qx": (ny, nx + 1), "qy": (ny + 1, nx)}
        for name in _ARRAYS:
            arr = getattr(self, name)
            expected = want.get(name, (ny, nx))
            if arr.shape != expected:
                raise ValueError(
                    f"initial_state.{name} has shape {arr.shape}, the grid needs {expected}"
                )
        if not np.isfinite(self.time_s) or self.time_s < 0:
            raise ValueError("initial_state.time_s must be a finite time >= 0")
        if not np.all(np.isfinite(self.depth)):
            raise ValueError("initial_state.depth has non-finite values")

    def to_bytes(self) -> bytes:
        """The state as an uncompressed ``.npz`` archive (arrays, plus the scalars as JSON)."""
        meta = {
            "time_s": self.time_s, "hmax_m": self.hmax_m, "steps": self.steps,
            "volumes_m3": self.volumes_m3, "version": 1,
        }  # fmt: skip
        buf = io.BytesIO()
        arrays: dict[str, Any] = {name: getattr(self, name) for name in _ARRAYS}
        np.savez(buf, meta=np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8), **arrays)
        return buf.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes) -> FloodState:
        """The state :meth:`to_bytes` wrote; ValueError when the blob is not one."""
        try:
            with np.load(io.BytesIO(data), allow_pickle=False) as npz:
                meta = json.loads(bytes(npz["meta"]).decode())
                arrays = {name: np.array(npz[name]) for name in _ARRAYS}
        except (OSError, KeyError, ValueError) as exc:
            raise ValueError(f"not a flood state: {exc}") from None
        if meta.get("version") != 1:
            raise ValueError(f"flood state version {meta.get('version')!r} is not 1")
        return cls(
            time_s=float(meta["time_s"]), hmax_m=float(meta["hmax_m"]), steps=int(meta["steps"]),
            volumes_m3={k: float(v) for k, v in meta["volumes_m3"].items()}, **arrays,
        )  # fmt: skip
