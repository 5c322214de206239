"""Hazard sites, sensors and 90 days of events clustered in space and time."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd

from twin.city.synth.frame import CityFrame
from twin.city.synth.terrain import Pocket

AS_OF = datetime(2026, 11, 1, tzinfo=UTC)  # events end here: fixed so a seed fixes the content
EVENT_DAYS = 90


def make_hazard_sites(
    frame: CityFrame,
    buildings: pd.DataFrame,
    parcels: pd.DataFrame,
    enterprises: pd.DataFrame,
    nodes: pd.DataFrame,
    links: pd.DataFrame,
) -> pd.DataFrame:
    """Fuel stations at arterial junctions, chemical storage, construction sites, metro stations
    along the main east-west arterial, and underground garages under towers.

    Columns: id, category, name, hazard_class, enterprise_id (nullable), x, y.
    """
    rng = np.random.default_rng([frame.seed, 10])
    rows: list[tuple[str, str, int, float | None, float, float]] = []
    # Fuel stations: a sample of junctions of primary roads, set back from the corner.
    major = links[links.road_class.isin(["primary", "expressway"])]
    junctions = nodes[nodes.id.isin(major.from_node)].sort_values("id")
    n_fuel = max(2, round(frame.width * frame.height / 2.5e6))
    for k, n in enumerate(
        junctions.sample(
            min(n_fuel, len(junctions)), random_state=rng.integers(1 << 31)
        ).itertuples()
    ):
        rows.append(("fuel_station", f"加油站{k + 1}", 2, None, n.x + 35.0, n.y + 35.0))
    for e in enterprises[enterprises.hazard_class == 3].itertuples():
        rows.append(("chemical_storage", f"{e.name}储罐区", 3, e.id, e.x + 20.0, e.y))
    # Construction sites: 3 % of residential and commercial parcels.
    built = parcels[parcels.land_use.str[0].isin(["R", "B"])]
    for k, p in enumerate(built.sample(frac=0.03, random_state=rng.integers(1 << 31)).itertuples()):
        rows.append(("construction_site", f"在建工地{k + 1}", 1, None, p.cx, p.cy))
    # Metro: stations every ~900 m along the arterial nearest the CBD.
    cbd_y = frame.cbd[1]
    arterial_ys = np.unique(
        links[links.kind == "arterial"].geometry.map(lambda g: round(g.coords[0][1], 3))
    )
    if len(arterial_ys):
        y_line = float(arterial_ys[np.argmin(np.abs(arterial_ys - cbd_y))])
        for k, x in enumerate(np.arange(frame.x0 + 300, frame.x0 + frame.width - 200, 900)):
            rows.append(("metro_station", f"地铁{k + 1}号站", 2, None, float(x), y_line + 25.0))
    # Underground garages under a share of towers.
    tall = buildings[
        (buildings.floors >= 12) & buildings.use.isin(["residential", "office", "commercial"])
    ]
    for k, b in enumerate(tall.sample(frac=0.3, random_state=rng.integers(1 << 31)).itertuples()):
        rows.append(("underground_garage", f"地下车库{k + 1}", 1, None, b.cx, b.cy))
    df = pd.DataFrame(rows, columns=["category", "name", "hazard_class", "enterprise_id", "x", "y"])
    df["enterprise_id"] = df.enterprise_id.astype("Int64")
    df.insert(0, "id", np.arange(1, len(df) + 1))
    return df


def make_sensors(frame: CityFrame, pockets: list[Pocket], links: pd.DataFrame) -> pd.DataFrame:
    """Rain gauges on a ~1.5 km grid, water-level sensors at each low spot and on the river,
    traffic counters on a tenth of the arterial links.

    Columns: id, code, kind, unit, road_link_id (nullable), x, y.
    """
    rng = np.random.default_rng([frame.seed, 11])
    rows: list[tuple[str, str, str, float | None, float, float]] = []
    step = 1500.0
    for gx in np.arange(frame.x0 + step / 2, frame.x0 + frame.width, step):
        for gy in np.arange(frame.y0 + step / 2, frame.y0 + frame.height, step):
            rows.append(
                (f"RG-{len(rows) + 1:03d}", "rain_gauge", "mm/h", None, float(gx), float(gy))
            )
    for k, p in enumerate(pockets):
        rows.append((f"WL-{k + 1:03d}", "water_level", "m", None, p.x, p.y))
    for k, x in enumerate((frame.x0 + 0.25 * frame.width, frame.x0 + 0.75 * frame.width)):
        rows.append((f"WL-R{k + 1}", "water_level", "m", None, float(x), float(frame.river_y(x))))
    art = links[links.road_class == "primary"]
    for k, link in enumerate(art.sample(frac=0.1, random_state=rng.integers(1 << 31)).itertuples()):
        mid = link.geometry.interpolate(0.5, normalized=True)
        rows.append((f"TC-{k + 1:03d}", "traffic_counter", "veh/h", link.id, mid.x, mid.y))
    df = pd.DataFrame(rows, columns=["code", "kind", "unit", "road_link_id", "x", "y"])
    df["road_link_id"] = df.road_link_id.astype("Int64")
    df.insert(0, "id", np.arange(1, len(df) + 1))
    return df


# type -> (share, anchor, severity range, sources with weights)
EVENT_TYPES: dict[str, tuple[float, str, tuple[int, int], dict[str, float]]] = {
    "hotline_complaint": (0.28, "homes", (1, 2), {"hotline": 1.0}),
    "illegal_parking": (0.11, "shops", (1, 1), {"hotline": 0.6, "patrol": 0.4}),
    "construction_noise": (0.09, "construction", (1, 2), {"hotline": 0.8, "patrol": 0.2}),
    "environmental_complaint": (0.08, "factories", (1, 3), {"hotline": 0.7, "patrol": 0.3}),
    "traffic_accident": (0.15, "roads", (1, 3), {"hotline": 0.5, "patrol": 0.5}),
    "facility_damage": (0.10, "roads", (1, 2), {"patrol": 0.7, "hotline": 0.3}),
    "food_safety": (0.04, "shops", (1, 3), {"hotline": 1.0}),
    "fire": (0.04, "buildings", (2, 4), {"hotline": 0.6, "sensor": 0.4}),
    "waterlogging_report": (
        0.06,
        "pockets",
        (2, 3),
        {"hotline": 0.5, "sensor": 0.3, "patrol": 0.2},
    ),
    "garbage": (0.05, "homes", (1, 1), {"hotline": 0.7, "patrol": 0.3}),
}
# Share of the day's events per hour (local time): morning and evening peaks.
_HOURS = np.array(
    [
        1,
        0.6,
        0.4,
        0.3,
        0.3,
        0.5,
        1.2,
        2.2,
        3.0,
        3.0,
        2.8,
        2.6,
        2.3,
        2.2,
        2.5,
        2.6,
        2.8,
        3.0,
        3.0,
        2.6,
        2.3,
        2.0,
        1.6,
        1.2,
    ]
)


def make_events(
    frame: CityFrame,
    population: int,
    anchors: dict[str, np.ndarray],
    *,
    as_of: datetime = AS_OF,
) -> pd.DataFrame:
    """90 days of events up to ``as_of``, clustered around hotspots and on storm days.

    ``anchors`` maps an anchor name (homes, shops, construction, factories, roads, buildings,
    pockets) to an (n, 2) array of candidate points (m) with their weights in a third column.

    Columns: id, type, severity, status, source, occurred_at, closed_at, x, y, attrs.
    """
    rng = np.random.default_rng([frame.seed, 12])
    total = max(50, round(population / 1000 * frame.spec.events_per_1000_people))
    start = as_of - timedelta(days=EVENT_DAYS)
    storm_days = np.sort(rng.choice(EVENT_DAYS, size=3, replace=False))
    day_w = np.ones(EVENT_DAYS)
    day_w[storm_days] = 1.4
    hour_p = _HOURS / _HOURS.sum()
    frames = []
    for etype, (share, anchor, (sev_lo, sev_hi), sources) in EVENT_TYPES.items():
        pts = anchors.get(anchor)
        n = int(rng.poisson(total * share))
        if pts is None or len(pts) == 0 or n == 0:
            continue
        w = pts[:, 2] / pts[:, 2].sum()
        # Hotspots: a few anchors draw 60 % of this type's events within ~80 m.
        k = max(3, n // 40)
        hot = pts[rng.choice(len(pts), size=k, p=w), :2]
        from_hot = rng.random(n) < 0.6
        xy = np.where(
            from_hot[:, None],
            hot[rng.integers(0, k, n)] + rng.normal(0, 80, (n, 2)),
            pts[rng.choice(len(pts), size=n, p=w), :2] + rng.normal(0, 20, (n, 2)),
        )
        xy[:, 0] = np.clip(xy[:, 0], frame.x0 + 1, frame.x0 + frame.width - 1)
        xy[:, 1] = np.clip(xy[:, 1], frame.y0 + 1, frame.y0 + frame.height - 1)
        if etype == "waterlogging_report":
            day = rng.choice(storm_days, size=n)
        else:
            day = rng.choice(EVENT_DAYS, size=n, p=day_w / day_w.sum())
        hour = rng.choice(24, size=n, p=hour_p)
        # Local time is UTC+8: store UTC.
        seconds = day * 86400 + (hour - 8) * 3600 + rng.integers(0, 3600, n)
        occurred = pd.to_datetime(start) + pd.to_timedelta(seconds, unit="s")
        src_names = list(sources)
        src = rng.choice(len(src_names), size=n, p=np.array(list(sources.values())))
        frames.append(
            pd.DataFrame(
                {
                    "type": etype,
                    "severity": rng.integers(sev_lo, sev_hi + 1, n),
                    "source": np.asarray(src_names, dtype=object)[src],
                    "occurred_at": occurred,
                    "x": xy[:, 0],
                    "y": xy[:, 1],
                    "hotspot": from_hot,
                }
            )
        )
    ev = pd.concat(frames, ignore_index=True).sort_values(
        ["occurred_at", "type", "x"], kind="mergesort"
    )
    ev = ev.reset_index(drop=True)
    age_days = (pd.Timestamp(as_of) - ev.occurred_at).dt.total_seconds() / 86400
    u = rng.random(len(ev))
    recent = age_days < 7
    ev["status"] = np.where(
        ~recent, "closed", np.where(u < 0.4, "open", np.where(u < 0.7, "in_progress", "closed"))
    )
    handle_h = rng.lognormal(np.log(20), 0.8, len(ev))
    closed_at = ev.occurred_at + pd.to_timedelta(handle_h, unit="h")
    closed_at = closed_at.where(
        closed_at < pd.Timestamp(as_of), pd.Timestamp(as_of) - pd.Timedelta(minutes=1)
    )
    ev["closed_at"] = closed_at.where(ev.status == "closed")
    ev["attrs"] = [f'{{"hotspot": {"true" if h else "false"}}}' for h in ev.hotspot]
    ev = ev.drop(columns="hotspot")
    ev.insert(0, "id", np.arange(1, len(ev) + 1))
    return ev
