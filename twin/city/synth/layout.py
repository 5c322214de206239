"""Administration, the road network and the blocks (parcels) between the roads.

The street grid is a lattice of jittered north-south and east-west lines. Every k-th line is a
collector, every m-th an arterial, and the outermost lines form the expressway ring. Roads stop
at the water except arterials and the ring, which bridge the river. Blocks are the rectangles
between neighbouring lines, set back by half the road width and clipped by the water.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import shapely
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from twin.city.synth.frame import CITY_NAME, CITY_NAME_EN, CityFrame

# class -> (DB road_class, lanes per direction, free speed km/h, capacity veh/h per lane, width m)
ROAD_TYPES: dict[str, tuple[str, int, float, float, float]] = {
    "ring": ("expressway", 3, 80.0, 1800.0, 40.0),
    "arterial": ("primary", 3, 50.0, 900.0, 30.0),
    "collector": ("secondary", 2, 40.0, 800.0, 20.0),
    "local": ("residential", 1, 30.0, 600.0, 12.0),
}
LAND_USE_MAJOR = ("R", "A", "B", "M", "W", "S", "U", "G", "E")  # GB 50137-2011 major classes

DISTRICT_NAMES = [
    "江北",
    "江南",
    "湖东",
    "湖西",
    "山北",
    "城中",
    "滨江",
    "临湖",
    "东港",
    "西岭",
    "南湾",
    "北塘",
    "青川",
    "白沙",
    "云溪",
    "金桥",
]
DISTRICT_EN = [
    "Jiangbei",
    "Jiangnan",
    "Hudong",
    "Huxi",
    "Shanbei",
    "Chengzhong",
    "Binjiang",
    "Linhu",
    "Donggang",
    "Xiling",
    "Nanwan",
    "Beitang",
    "Qingchuan",
    "Baisha",
    "Yunxi",
    "Jinqiao",
]
ROAD_NAMES = [
    "人民",
    "解放",
    "建设",
    "中山",
    "文化",
    "和平",
    "新华",
    "光明",
    "友谊",
    "胜利",
    "民主",
    "振兴",
    "复兴",
    "朝阳",
    "长江",
    "黄河",
    "钱塘",
    "西湖",
    "望江",
    "临湖",
    "学院",
    "工农",
    "团结",
    "幸福",
    "育才",
    "丰收",
    "兴业",
    "创新",
    "滨河",
    "环城",
    "青年",
    "春晖",
    "秋涛",
    "延安",
    "体育",
    "庆春",
    "凤起",
    "天目",
    "文三",
    "教工",
]


@dataclass
class Lines:
    """The street lattice: position (m) and class of each north-south (x) and east-west (y)
    line."""

    xs: np.ndarray
    x_class: list[str]
    ys: np.ndarray
    y_class: list[str]
    x_names: list[str]
    y_names: list[str]


def make_lines(frame: CityFrame) -> Lines:
    spec = frame.spec
    rng = np.random.default_rng([frame.seed, 4])

    def axis(length: float, origin: float) -> tuple[np.ndarray, list[str]]:
        n = round(length / spec.local_spacing_m)
        pos = origin + np.linspace(0, length, n + 1)
        jitter = rng.uniform(-0.15, 0.15, n + 1) * spec.local_spacing_m
        jitter[[0, -1]] = 0.0
        cls = []
        for i in range(n + 1):
            if i in (0, n):
                cls.append("ring")
            elif i % spec.arterial_every == 0:
                cls.append("arterial")
                jitter[i] = 0.0
            elif i % spec.collector_every == 0:
                cls.append("collector")
            else:
                cls.append("local")
        return pos + jitter, cls

    xs, xc = axis(frame.width, frame.x0)
    ys, yc = axis(frame.height, frame.y0)
    names = list(rng.permutation(ROAD_NAMES))
    x_names = [_road_name(names, i, "路") for i in range(len(xs))]
    y_names = [_road_name(names[::-1], i, "街") for i in range(len(ys))]
    return Lines(xs, xc, ys, yc, x_names, y_names)


def _road_name(names: list[str], i: int, suffix: str) -> str:
    base = names[i % len(names)]
    cycle = i // len(names)
    return (
        f"{base}{suffix}" if cycle == 0 else f"{base}{'一二三四五六七八九十'[cycle % 10]}{suffix}"
    )


@dataclass
class Network:
    nodes: pd.DataFrame  # id, x, y, line_i, line_j
    links: pd.DataFrame  # id, from_node, to_node, road_class, lanes, free_speed_kmh, capacity_vph,
    #                      length_m, bridge, name, kind, geometry (projected LineString)


def make_network(frame: CityFrame, lines: Lines) -> Network:
    """Two-way links on the lattice, cut by water except bridges; the largest connected part.

    Every segment becomes a pair of opposite directed links, so the graph is strongly connected
    exactly when its undirected form is connected; keeping the largest component ensures it.
    """
    water = frame.water()
    river = frame.river_polygon()
    lake = frame.lake_polygon()
    nx, ny = len(lines.xs), len(lines.ys)
    node_id = lambda i, j: i * ny + j  # noqa: E731
    segs: list[tuple[int, int, str, str, bool]] = []  # a, b, kind, name, bridge
    seg_geoms: list[shapely.LineString] = []
    for i in range(nx):
        for j in range(ny):
            for di, dj in ((1, 0), (0, 1)):
                i2, j2 = i + di, j + dj
                if i2 >= nx or j2 >= ny:
                    continue
                if di:  # east-west segment along y-line j
                    kind, name = lines.y_class[j], lines.y_names[j]
                else:  # north-south segment along x-line i
                    kind, name = lines.x_class[i], lines.x_names[i]
                g = shapely.LineString([(lines.xs[i], lines.ys[j]), (lines.xs[i2], lines.ys[j2])])
                bridge = False
                if g.intersects(water):
                    # Only north-south arterials and the ring cross the river, never the lake.
                    crosses_river_ns = dj == 1 and g.intersects(river) and not g.intersects(lake)
                    if kind in ("arterial", "ring") and crosses_river_ns:
                        bridge = True
                    else:
                        continue
                segs.append((node_id(i, j), node_id(i2, j2), kind, name, bridge))
                seg_geoms.append(g)
    a = np.array([s[0] for s in segs])
    b = np.array([s[1] for s in segs])
    graph = coo_matrix((np.ones(len(a)), (a, b)), shape=(nx * ny, nx * ny))
    _, labels = connected_components(graph, directed=False)
    used = np.unique(np.concatenate([a, b]))
    biggest = np.bincount(labels[used]).argmax()
    keep = labels[a] == biggest
    kept_nodes = np.unique(np.concatenate([a[keep], b[keep]]))
    new_id = {int(n): k + 1 for k, n in enumerate(kept_nodes)}
    nodes = pd.DataFrame(
        {
            "id": np.arange(1, len(kept_nodes) + 1),
            "x": lines.xs[kept_nodes // ny],
            "y": lines.ys[kept_nodes % ny],
            "line_i": kept_nodes // ny,
            "line_j": kept_nodes % ny,
        }
    )
    rows = []
    for s, g, k in zip(segs, seg_geoms, keep, strict=True):
        if not k:
            continue
        na, nb, kind, name, bridge = s
        road_class, lanes, speed, cap, _w = ROAD_TYPES[kind]
        for u, v, geom in ((na, nb, g), (nb, na, g.reverse())):
            rows.append(
                (
                    new_id[u],
                    new_id[v],
                    road_class,
                    lanes,
                    speed,
                    cap * lanes,
                    g.length,
                    bridge,
                    name,
                    kind,
                    geom,
                )
            )
    links = pd.DataFrame(
        rows,
        columns=[
            "from_node",
            "to_node",
            "road_class",
            "lanes",
            "free_speed_kmh",
            "capacity_vph",
            "length_m",
            "bridge",
            "name",
            "kind",
            "geometry",
        ],
    )
    links.insert(0, "id", np.arange(1, len(links) + 1))
    return Network(nodes, links)


def make_blocks(frame: CityFrame, lines: Lines) -> pd.DataFrame:
    """Blocks between neighbouring lines, set back from the roads and clipped by the water.

    Returns columns i, j (lattice cell), geometry (projected), cx, cy, rect_area, and
    ``bounding`` (the four line indices: west x-line, east x-line, south y-line, north y-line).
    """
    water = frame.water()
    rows = []
    for i in range(len(lines.xs) - 1):
        for j in range(len(lines.ys) - 1):
            w = ROAD_TYPES[lines.x_class[i]][4] / 2
            e = ROAD_TYPES[lines.x_class[i + 1]][4] / 2
            s = ROAD_TYPES[lines.y_class[j]][4] / 2
            n = ROAD_TYPES[lines.y_class[j + 1]][4] / 2
            rect = shapely.box(
                lines.xs[i] + w, lines.ys[j] + s, lines.xs[i + 1] - e, lines.ys[j + 1] - n
            )
            if rect.is_empty or rect.area <= 0:
                continue
            land = rect.difference(water) if rect.intersects(water) else rect
            if land.is_empty or land.area < 800:
                continue
            land = shapely.make_valid(land)
            if land.geom_type == "GeometryCollection":
                land = shapely.union_all(
                    [g for g in land.geoms if g.geom_type in ("Polygon", "MultiPolygon")]
                )
            c = land.centroid
            rows.append((i, j, land, c.x, c.y, rect.area, land.area))
    return pd.DataFrame(rows, columns=["i", "j", "geometry", "cx", "cy", "rect_area", "area_m2"])


def zone_blocks(frame: CityFrame, blocks: pd.DataFrame) -> pd.DataFrame:
    """GB 50137 land use per block: green by the water, CBD around the centre, an industrial park
    in the south-east, ecological land on the hills, residential belts with schools, clinics,
    shops and utilities in between."""
    rng = np.random.default_rng([frame.seed, 5])
    water = frame.water()
    cbd_x, cbd_y = frame.cbd
    cbd_r = 0.13 * min(frame.width, frame.height)
    park = frame.industrial_park()
    old = frame.old_town()
    uses, zones, ratios = [], [], []
    for row in blocks.itertuples():
        g = row.geometry
        pt = shapely.Point(row.cx, row.cy)
        u = rng.random()
        if row.area_m2 < 0.6 * row.rect_area or g.distance(water) < 25:
            zone = "riverside"
        elif row.cy > frame.hills_y():
            zone = "hills"
        elif np.hypot(row.cx - cbd_x, row.cy - cbd_y) < cbd_r:
            zone = "cbd"
        elif shapely.contains(park, pt):
            zone = "industrial"
        elif shapely.contains(old, pt):
            zone = "old_town"
        else:
            zone = "residential"
        use = next(c for c, cum in ZONE_MIX[zone] if u < cum)
        lo, hi = _PLOT_RATIO.get((use[0], zone), _PLOT_RATIO[(use[0], "*")])
        uses.append(use)
        zones.append(zone)
        ratios.append(round(float(rng.uniform(lo, hi)), 2))
    out = blocks.copy()
    out["land_use"] = uses
    out["zone"] = zones
    out["plot_ratio"] = ratios
    return out


# Zone -> land-use classes with cumulative probabilities (the last is 1).
ZONE_MIX: dict[str, tuple[tuple[str, float], ...]] = {
    "riverside": (("G1", 1.0),),
    "hills": (("E2", 0.7), ("R1", 1.0)),
    "cbd": (("B1", 0.40), ("B2", 0.75), ("A1", 0.85), ("R2", 1.0)),
    "industrial": (("M1", 0.45), ("M2", 0.75), ("W1", 0.90), ("U1", 0.95), ("G1", 1.0)),
    "old_town": (("R3", 0.70), ("B1", 0.85), ("A3", 0.93), ("G1", 1.0)),
    "residential": (("R2", 0.62), ("B1", 0.72), ("A3", 0.79), ("A5", 0.83), ("S4", 0.86),
                    ("U1", 0.88), ("G1", 1.0)),
}  # fmt: skip

# (major class, zone) -> plot ratio range (floor area / parcel area)
_PLOT_RATIO: dict[tuple[str, str], tuple[float, float]] = {
    ("B", "cbd"): (4.0, 8.0),
    ("A", "cbd"): (2.0, 3.5),
    ("R", "cbd"): (3.0, 4.5),
    ("R", "old_town"): (0.9, 1.4),
    ("R", "hills"): (0.4, 0.8),
    ("R", "*"): (1.2, 2.0),
    ("B", "*"): (1.5, 3.0),
    ("A", "*"): (0.8, 1.6),
    ("M", "*"): (0.8, 1.4),
    ("W", "*"): (0.6, 1.0),
    ("S", "*"): (0.3, 0.6),
    ("U", "*"): (0.3, 0.6),
    ("G", "*"): (0.0, 0.05),
    ("E", "*"): (0.0, 0.02),
}


def make_admin(frame: CityFrame) -> pd.DataFrame:
    """Five nested levels as rectangles in the projected CRS.

    City -> districts (``spec.districts``) -> 2 x 2 streets -> 2 x 2 communities -> 2 x 2 grid
    patches. Only the patches are cut here; every coarser area is later the exact union of its
    children (``twin.city.synth.city._admin_geometries``), so nesting and cover hold exactly
    in EPSG:4326 too.
    """
    dx, dy = frame.spec.districts
    xs = np.linspace(frame.x0, frame.x0 + frame.width, dx * 8 + 1)
    ys = np.linspace(frame.y0, frame.y0 + frame.height, dy * 8 + 1)
    rows: list[dict[str, object]] = [
        {"level": "city", "code": "C", "name": CITY_NAME, "name_en": CITY_NAME_EN,
         "parent": None, "ix": (0, dx * 8), "iy": (0, dy * 8)}
    ]  # fmt: skip
    for k, (di, dj) in enumerate((a, b) for a in range(dx) for b in range(dy)):
        n = len(DISTRICT_NAMES)
        cn = DISTRICT_NAMES[k % n] + ("" if k < n else str(k))
        en = DISTRICT_EN[k % n] + ("" if k < n else str(k))
        _subdivide(rows, "district", f"C.D{di}{dj}", "C", (di * 8, dj * 8), 8, cn, en, ())
    df = pd.DataFrame(rows)
    df.insert(0, "id", np.arange(1, len(df) + 1))
    code_to_id = dict(zip(df.code, df.id, strict=True))
    df["parent_id"] = [code_to_id.get(p) if p else None for p in df.parent]
    df.attrs["patch_xs"] = xs
    df.attrs["patch_ys"] = ys
    return df


_CHILD = {"district": ("street", "S"), "street": ("community", "M"), "community": ("grid", "G")}


def _admin_names(level: str, cn: str, en: str, path: tuple[int, ...]) -> tuple[str, str]:
    if level == "district":
        return f"{cn}区", f"{en} District"
    if level == "street":
        return f"{cn}第{path[0]}街道", f"{en} Subdistrict {path[0]}"
    if level == "community":
        return f"{cn}{path[0]}街{path[1]}社区", f"{en} {path[0]}-{path[1]} Community"
    return (
        f"{cn}{path[0]}街{path[1]}社区第{path[2]}网格",
        f"{en} {path[0]}-{path[1]} Grid {path[2]}",
    )


def _subdivide(
    rows: list[dict[str, object]],
    level: str,
    code: str,
    parent: str,
    origin: tuple[int, int],
    span: int,
    cn: str,
    en: str,
    path: tuple[int, ...],
) -> None:
    """Append an area (lattice cells origin .. origin + span) and, depth first, its children."""
    name, name_en = _admin_names(level, cn, en, path)
    ox, oy = origin
    rows.append({"level": level, "code": code, "name": name, "name_en": name_en,
                 "parent": parent, "ix": (ox, ox + span), "iy": (oy, oy + span)})  # fmt: skip
    if level not in _CHILD:
        return
    child, letter = _CHILD[level]
    half = span // 2
    for a in range(2):
        for b in range(2):
            corner = (ox + a * half, oy + b * half)
            _subdivide(rows, child, f"{code}.{letter}{a}{b}", code, corner, half, cn, en,
                       (*path, 2 * a + b + 1))  # fmt: skip
