"""Residents, their workplaces, and the enterprises that employ them.

Residents live only in residential buildings, in proportion to floor area; the density is set so
the city reaches its target population while every building stays within a realistic band of
floor area per person. Workers get a workplace building drawn by job capacity, with a preference
for their own district.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pandas as pd

from twin.city.synth.frame import CityFrame

# Shares of the population (approximately China's 2020 census).
AGE_BANDS = ("0-14", "15-24", "25-44", "45-59", "60-74", "75+")
AGE_SHARES = (0.18, 0.11, 0.30, 0.22, 0.14, 0.05)
RESIDENT_TYPES = ("registered", "migrant", "temporary", "foreign")
RESIDENT_SHARES = (0.64, 0.31, 0.04, 0.01)
# Employment rate by age band (share with a workplace).
EMPLOYED = (0.0, 0.45, 0.85, 0.75, 0.12, 0.0)
# Realistic band of residential floor area per resident (m2/person).
M2_PER_PERSON_BAND = (25.0, 80.0)
# Floor area per job (m2) by building use.
M2_PER_JOB = {
    "office": 20.0,
    "commercial": 30.0,
    "public": 35.0,
    "education": 40.0,
    "health": 30.0,
    "industrial": 60.0,
    "warehouse": 150.0,
    "transport": 80.0,
    "other": 200.0,
}
PERSON_CHUNK = 500_000


def residents_per_building(frame: CityFrame, buildings: pd.DataFrame) -> np.ndarray:
    """Residents of each building (0 for non-residential ones)."""
    rng = np.random.default_rng([frame.seed, 7])
    res = (buildings.use == "residential").to_numpy()
    floor = buildings.floor_area_m2.to_numpy() * res
    total = floor.sum()
    m2_pp = np.clip(total / frame.spec.target_people, *M2_PER_PERSON_BAND) if total else 40.0
    # Occupancy varies by building (vacancy, household size) around the city-wide density.
    occupancy = rng.uniform(0.85, 1.15, len(floor))
    mean = floor / m2_pp * occupancy
    n = np.floor(mean + rng.random(len(floor))).astype(np.int64)
    # Keep every building inside the band even after the noise.
    lo = np.ceil(floor / M2_PER_PERSON_BAND[1]).astype(np.int64)
    hi = np.floor(floor / M2_PER_PERSON_BAND[0]).astype(np.int64)
    return np.clip(n, lo, hi) * res


def job_capacity(buildings: pd.DataFrame) -> np.ndarray:
    per_job = buildings.use.map(M2_PER_JOB).fillna(np.inf).to_numpy()
    return np.floor(buildings.floor_area_m2.to_numpy() / per_job).astype(np.int64)


def iter_people(
    frame: CityFrame,
    buildings: pd.DataFrame,
    residents: np.ndarray,
    district_of: np.ndarray,
    *,
    chunk: int = PERSON_CHUNK,
) -> Iterator[pd.DataFrame]:
    """Residents in chunks (bounded memory at the large size).

    Columns: id, home_building_id, home_floor, workplace_building_id (nullable), age_band,
    resident_type, lives_alone.
    """
    rng = np.random.default_rng([frame.seed, 8])
    bid = buildings.id.to_numpy()
    floors = buildings.floors.to_numpy()
    cap = job_capacity(buildings).astype(np.float64)
    has_jobs = cap > 0
    job_b = np.flatnonzero(has_jobs)
    # Workplace choice: 60 % in the own district, else anywhere, by job capacity.
    districts = np.unique(district_of)
    by_district = {int(d): job_b[district_of[job_b] == d] for d in districts}
    cum_all = np.cumsum(cap[job_b])
    cum_d = {d: np.cumsum(cap[idx]) for d, idx in by_district.items()}
    next_id = 1
    home_idx = np.repeat(np.arange(len(bid)), residents)
    for start in range(0, len(home_idx), chunk):
        h = home_idx[start : start + chunk]
        n = len(h)
        age = rng.choice(len(AGE_BANDS), size=n, p=AGE_SHARES)
        rtype = rng.choice(len(RESIDENT_TYPES), size=n, p=RESIDENT_SHARES)
        works = rng.random(n) < np.asarray(EMPLOYED)[age]
        work = np.full(n, -1, dtype=np.int64)
        if len(job_b):
            local = works & (rng.random(n) < 0.6)
            for d, idx in by_district.items():
                sel = local & (district_of[h] == d)
                if sel.any() and len(idx):
                    r = rng.random(sel.sum()) * cum_d[d][-1]
                    work[sel] = idx[np.searchsorted(cum_d[d], r, side="right")]
            rest = works & (work < 0)
            r = rng.random(rest.sum()) * cum_all[-1]
            work[rest] = job_b[np.searchsorted(cum_all, r, side="right")]
        elderly = age >= 4
        alone = (elderly & (rng.random(n) < 0.18)) | (~elderly & (rng.random(n) < 0.08))
        home_floor = 1 + np.floor(rng.random(n) * floors[h]).astype(np.int64)
        workplace = pd.Series(bid[np.maximum(work, 0)], dtype="Int64")
        workplace[work < 0] = pd.NA
        yield pd.DataFrame(
            {
                "id": np.arange(next_id, next_id + n),
                "home_building_id": bid[h],
                "home_floor": home_floor,
                "workplace_building_id": workplace.array,
                "age_band": np.asarray(AGE_BANDS, dtype=object)[age],
                "resident_type": np.asarray(RESIDENT_TYPES, dtype=object)[rtype],
                "lives_alone": alone,
            }
        )
        next_id += n


INDUSTRIES = {
    "office": [
        ("finance", 0, 0.3),
        ("information_technology", 0, 0.4),
        ("business_services", 0, 0.3),
    ],
    "commercial": [
        ("retail", 0, 0.45),
        ("catering", 1, 0.35),
        ("food_and_drug", 1, 0.1),
        ("entertainment", 1, 0.1),
    ],
    "industrial": [
        ("manufacturing", 1, 0.55),
        ("metal_processing", 2, 0.25),
        ("electronics", 1, 0.2),
    ],
    "warehouse": [("logistics", 1, 0.8), ("cold_storage", 2, 0.2)],
}
FLOOR_PER_ENTERPRISE = {
    "office": 2500.0,
    "commercial": 900.0,
    "industrial": 6000.0,
    "warehouse": 9000.0,
}


def make_enterprises(frame: CityFrame, buildings: pd.DataFrame) -> pd.DataFrame:
    """Enterprises in offices, shops, factories and warehouses; a few hazardous-chemical sites
    (hazard class 3) in the industrial park.

    Columns: id, name, industry, employees, hazard_class, building_id, x, y.
    """
    rng = np.random.default_rng([frame.seed, 9])
    cap = job_capacity(buildings)
    rows = []
    for b, c in zip(buildings.itertuples(), cap, strict=True):
        if b.use not in INDUSTRIES:
            continue
        n = int(np.clip(b.floor_area_m2 // FLOOR_PER_ENTERPRISE[b.use], 1, 25))
        options = INDUSTRIES[b.use]
        probs = np.array([o[2] for o in options])
        picks = rng.choice(len(options), size=n, p=probs / probs.sum())
        staff = np.maximum(1, rng.multinomial(max(int(c), n), np.full(n, 1 / n)))
        for k, s in zip(picks, staff, strict=True):
            ind, hz, _ = options[k]
            rows.append(
                (ind, int(s), hz, int(b.id), b.cx + rng.uniform(-5, 5), b.cy + rng.uniform(-5, 5))
            )
    df = pd.DataFrame(
        rows, columns=["industry", "employees", "hazard_class", "building_id", "x", "y"]
    )
    # Hazardous-chemical sites: the largest industrial buildings in the park.
    ind = buildings[buildings.use == "industrial"].sort_values("floor_area_m2", ascending=False)
    n_chem = max(2, round(frame.width * frame.height / 3e6))
    for b in ind.head(n_chem).itertuples():
        df.loc[len(df)] = (
            "hazardous_chemicals",
            int(rng.integers(20, 200)),
            3,
            int(b.id),
            b.cx,
            b.cy,
        )
    df.insert(0, "id", np.arange(1, len(df) + 1))
    df.insert(
        1,
        "name",
        [
            f"{_NAME_PREFIX[i % len(_NAME_PREFIX)]}{_IND_CN.get(k, '实业')}{i}号"
            for i, k in enumerate(df.industry)
        ],
    )
    return df


_NAME_PREFIX = ["临江", "江北", "湖东", "金桥", "云溪", "白沙", "青川", "东港"]
_IND_CN = {
    "finance": "金融",
    "information_technology": "科技",
    "business_services": "商务",
    "retail": "商贸",
    "catering": "餐饮",
    "food_and_drug": "食品药品",
    "entertainment": "娱乐",
    "manufacturing": "制造",
    "metal_processing": "金属加工",
    "electronics": "电子",
    "logistics": "物流",
    "cold_storage": "冷链",
    "hazardous_chemicals": "化工",
}
