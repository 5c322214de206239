"""Read and write the TNTP formats of the Transportation Networks for Research collection.

``_net`` files hold metadata tags (``<NUMBER OF ZONES> 38``) and one line per link:
``init term capacity length free_flow_time b power speed toll link_type ;``. ``_trips`` files
hold ``Origin i`` blocks of ``j : trips;`` entries. ``_flow`` files hold ``From To Volume Cost``.
Node and zone numbers in files are 1-based; :class:`twin.sim.traffic.Network` is 0-based.

Every error names the file and line.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from twin.sim.traffic import Network

FloatArray = npt.NDArray[np.float64]

_TAG = re.compile(r"^<([^>]+)>\s*(.*)$")
_ENTRY = re.compile(r"^\s*(\S+)\s*:\s*(\S+?)\s*$")


class TNTPError(ValueError):
    """A malformed TNTP file; the message starts with ``file:line:``."""

    def __init__(self, path: Path | str, line: int, message: str) -> None:
        super().__init__(f"{path}:{line}: {message}")
        self.path = str(path)
        self.line = line


@dataclass(frozen=True)
class FlowTable:
    """A ``_flow`` file: 1-based link ends, volume (veh/h) and cost per link."""

    tail: npt.NDArray[np.int64]
    head: npt.NDArray[np.int64]
    volume: FloatArray
    cost: FloatArray


def _lines(path: Path) -> list[str]:
    try:
        return path.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError as exc:
        raise TNTPError(path, 0, f"cannot read: {exc.strerror}") from exc


def _metadata(path: Path, lines: list[str]) -> tuple[dict[str, str], int]:
    """Tags up to ``<END OF METADATA>``; returns them and the index of the first body line."""
    meta: dict[str, str] = {}
    for i, raw in enumerate(lines):
        line = raw.strip()
        if not line or line.startswith("~"):
            continue
        m = _TAG.match(line)
        if m is None:
            raise TNTPError(path, i + 1, f"expected a <TAG> line in the metadata, got {line!r}")
        key = m.group(1).strip().upper()
        if key == "END OF METADATA":
            return meta, i + 1
        meta[key] = m.group(2).strip()
    raise TNTPError(path, len(lines), "no <END OF METADATA> tag")


def _meta_number(path: Path, meta: dict[str, str], key: str, kind: type = int) -> float:
    if key not in meta:
        raise TNTPError(path, 1, f"metadata lacks <{key}>")
    try:
        value = kind(meta[key].split()[0])
    except (ValueError, IndexError):
        raise TNTPError(path, 1, f"<{key}> is not a number: {meta[key]!r}") from None
    return float(value)


def _number(path: Path, line: int, text: str, what: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise TNTPError(path, line, f"{what} is not a number: {text!r}") from None
    if not np.isfinite(value):
        raise TNTPError(path, line, f"{what} is not finite: {text!r}")
    return value


_NET_FIELDS = ("init_node", "term_node", "capacity", "length", "free_flow_time", "b", "power")


def read_net(path: Path | str) -> Network:
    """Read a ``_net`` file; speed, toll and type columns are optional (toll defaults to 0)."""
    path = Path(path)
    lines = _lines(path)
    meta, body = _metadata(path, lines)
    n_zones = int(_meta_number(path, meta, "NUMBER OF ZONES"))
    n_nodes = int(_meta_number(path, meta, "NUMBER OF NODES"))
    n_links = int(_meta_number(path, meta, "NUMBER OF LINKS"))
    first_thru = (
        int(_meta_number(path, meta, "FIRST THRU NODE")) if "FIRST THRU NODE" in meta else 1
    )
    distance_factor = float(meta.get("DISTANCE FACTOR", "0").split()[0] or 0)
    toll_factor = float(meta.get("TOLL FACTOR", "0").split()[0] or 0)
    rows: list[list[float]] = []
    for i in range(body, len(lines)):
        line = lines[i].split("~", 1)[0].strip()
        if not line:
            continue
        parts = line.rstrip(";").split()
        if len(parts) < len(_NET_FIELDS):
            raise TNTPError(
                path, i + 1, f"a link needs at least {len(_NET_FIELDS)} fields, got {len(parts)}"
            )
        names = (*_NET_FIELDS, "speed", "toll", "link_type")
        row = [_number(path, i + 1, p, n) for p, n in zip(parts[:9], names, strict=False)]
        row += [0.0] * (9 - len(row))
        tail, head = row[0], row[1]
        for value, what in ((tail, "init_node"), (head, "term_node")):
            if value != int(value) or not 1 <= value <= n_nodes:
                raise TNTPError(path, i + 1, f"{what} {value:g} is not a node in 1..{n_nodes}")
        if row[2] <= 0:
            raise TNTPError(path, i + 1, f"capacity must be > 0, got {row[2]:g}")
        for k, what in ((3, "length"), (4, "free_flow_time"), (5, "b"), (6, "power"), (8, "toll")):
            if row[k] < 0:
                raise TNTPError(path, i + 1, f"{what} must be >= 0, got {row[k]:g}")
        rows.append(row)
    if len(rows) != n_links:
        raise TNTPError(
            path, len(lines), f"<NUMBER OF LINKS> says {n_links} but the file has {len(rows)}"
        )
    if not 1 <= first_thru <= n_nodes + 1:
        raise TNTPError(path, 1, f"<FIRST THRU NODE> {first_thru} is outside 1..{n_nodes}")
    if n_zones > n_nodes:
        raise TNTPError(path, 1, f"{n_zones} zones but only {n_nodes} nodes")
    a = np.array(rows, dtype=np.float64).reshape(-1, 9)
    return Network(
        n_nodes=n_nodes,
        n_zones=n_zones,
        first_thru=first_thru - 1,
        tail=a[:, 0].astype(np.int64) - 1,
        head=a[:, 1].astype(np.int64) - 1,
        capacity=a[:, 2],
        fft=a[:, 4],
        alpha=a[:, 5],
        beta=a[:, 6],
        length=a[:, 3],
        toll=a[:, 8],
        distance_factor=distance_factor,
        toll_factor=toll_factor,
    )


def read_trips(path: Path | str, *, n_zones: int | None = None) -> FloatArray:
    """Read a ``_trips`` file into an ``(n_zones, n_zones)`` matrix (trips per hour)."""
    path = Path(path)
    lines = _lines(path)
    meta, body = _metadata(path, lines)
    zones = int(_meta_number(path, meta, "NUMBER OF ZONES"))
    if n_zones is not None and zones != n_zones:
        raise TNTPError(path, 1, f"{zones} zones, but the network has {n_zones}")
    demand = np.zeros((zones, zones))
    origin: int | None = None
    for i in range(body, len(lines)):
        line = lines[i].split("~", 1)[0].strip()
        if not line:
            continue
        if line.lower().startswith("origin"):
            value = _number(path, i + 1, line.split()[1] if len(line.split()) > 1 else "", "origin")
            if value != int(value) or not 1 <= value <= zones:
                raise TNTPError(path, i + 1, f"origin {value:g} is not a zone in 1..{zones}")
            origin = int(value) - 1
            continue
        if origin is None:
            raise TNTPError(path, i + 1, "trips before the first 'Origin' line")
        for entry in line.split(";"):
            if not entry.strip():
                continue
            m = _ENTRY.match(entry)
            if m is None:
                raise TNTPError(path, i + 1, f"expected 'zone : trips', got {entry.strip()!r}")
            dest = _number(path, i + 1, m.group(1), "destination")
            trips = _number(path, i + 1, m.group(2), "trips")
            if dest != int(dest) or not 1 <= dest <= zones:
                raise TNTPError(path, i + 1, f"destination {dest:g} is not a zone in 1..{zones}")
            if trips < 0:
                raise TNTPError(path, i + 1, f"trips must be >= 0, got {trips:g}")
            demand[origin, int(dest) - 1] += trips
    return demand


def read_flow(path: Path | str) -> FlowTable:
    """Read a ``_flow`` file (``From To Volume Cost``, one header line, whitespace separated)."""
    path = Path(path)
    tails: list[int] = []
    heads: list[int] = []
    volume: list[float] = []
    cost: list[float] = []
    for i, raw in enumerate(_lines(path)):
        line = raw.split("~", 1)[0].strip().rstrip(";")
        if not line or line.lower().startswith("from"):
            continue
        parts = line.split()
        if len(parts) < 3:
            raise TNTPError(path, i + 1, f"expected 'from to volume [cost]', got {line!r}")
        names = ("from", "to", "volume", "cost")
        values = [_number(path, i + 1, p, n) for p, n in zip(parts, names, strict=False)]
        tails.append(int(values[0]))
        heads.append(int(values[1]))
        volume.append(values[2])
        cost.append(values[3] if len(values) > 3 else float("nan"))
    return FlowTable(
        tail=np.array(tails, dtype=np.int64),
        head=np.array(heads, dtype=np.int64),
        volume=np.array(volume),
        cost=np.array(cost),
    )


def write_flow(path: Path | str, network: Network, flow: FloatArray, cost: FloatArray) -> None:
    """Write a ``_flow`` file in the collection's layout (1-based nodes, tab separated)."""
    lines = ["From \tTo \tVolume \tCost "]
    for a in range(network.n_links):
        ends = f"{network.tail[a] + 1} \t{network.head[a] + 1}"
        lines.append(f"{ends} \t{float(flow[a])!r} \t{float(cost[a])!r} ")
    Path(path).write_text("\n".join(lines) + "\n", encoding="utf-8")
