"""Data classification: every table and layer is labelled core, important or general, and the
label decides who may read it.

- **general**: the city's fabric and aggregates anyone may see: buildings, parcels, roads, admin
  areas, cell statistics (people counts suppressed), risk scores of public layers, simulation
  results.
- **important**: operational records about places and incidents: events, hazard sites,
  enterprises, sensors and their readings, tasks, alerts. Signed-in users (viewer and above).
- **core**: records about people and about access itself: persons, users, the audit log, and
  layers built on personal data. Analysts and above, and even they never get person rows
  through the API, only counts.

A caller's clearance follows its role; callers without a token get ``TWIN_PUBLIC_CLEARANCE``
(general unless a deployment opens more; never core).
"""

from __future__ import annotations

LEVELS = ("general", "important", "core")

#: Label of every table of schema ``twin`` (tests check that none is missing).
TABLES: dict[str, str] = {
    "address": "general",
    "admin_area": "general",
    "admin_area_cell": "general",
    "building": "general",
    "city_meta": "general",  # the city's name, centre and CRS
    "cell_stats": "general",
    # Unsuppressed residents per grid patch: only cockpits read it, and they suppress.
    "area_counts": "core",
    "layer_version": "general",
    "parcel": "general",
    "parcel_cell": "general",
    "poi": "general",
    "raster_asset": "general",
    "road_link": "general",
    "road_node": "general",
    "risk_score": "general",  # each risk layer has its own label (layers/*.toml)
    "risk_snapshot": "general",
    "sim_run": "general",
    "flood_cell_result": "general",
    "flood_link_result": "general",
    "flood_ensemble_cell_result": "general",  # exceedance probabilities of a storm ensemble
    "flood_ensemble_link_result": "general",
    "traffic_cell_result": "general",
    "traffic_link_result": "general",
    "nowcast": "general",  # the rolling flood nowcast: its state, steps, cells and roads
    "nowcast_step": "general",
    "nowcast_cell": "general",
    "nowcast_link": "general",
    "alert": "important",
    "enterprise": "important",
    "event": "important",
    "flood_building_result": "important",
    "hazard_site": "important",
    "nowcast_skill": "important",  # water-level readings against the model
    "observation": "important",  # partitions in schema twin_part, reached only through it
    "observation_1h": "important",  # roll-ups of readings: as the readings are
    "observation_5min": "important",
    "observation_cell_1h": "important",
    "observation_cell_5min": "important",
    "observation_detached": "important",
    "observation_rollup_queue": "important",
    "sense_dead_letter": "important",
    "sensor": "important",
    "sta_feature": "important",
    "sta_historical_location": "important",
    "sta_location": "important",
    "sta_observed_property": "important",
    "sta_sensor": "important",
    "sta_thing": "important",
    "sta_thing_location": "important",
    "task": "important",
    "task_transition": "important",
    "app_user": "core",
    "audit_log": "core",
    "person": "core",
    "sense_device": "core",  # devices' credentials (like app_user)
    "sense_device_datastream": "core",  # who may write which datastream
}

#: Clearance of each signed-in role (the public role's comes from the settings).
ROLE_CLEARANCE = {"viewer": "important", "analyst": "core", "operator": "core", "admin": "core"}


def rank(level: str) -> int:
    """0 for general, 1 for important, 2 for core."""
    return LEVELS.index(level)


def table_level(table: str) -> str:
    """The label of a table; an unlabelled one counts as core (fail closed)."""
    return TABLES.get(table, "core")


def check_level(level: str, *, what: str) -> str:
    if level not in LEVELS:
        raise ValueError(f"{what}: classification must be one of {', '.join(LEVELS)}, "
                         f"got {level!r}")  # fmt: skip
    return level
