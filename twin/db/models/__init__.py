"""The twin's schema as GeoAlchemy2 models (schema ``twin``). Migrations follow these models;
``tests/db/test_migrations.py`` proves the migrated schema and this metadata do not drift."""

from twin.db.models.base import PART_SCHEMA, SCHEMA, Base
from twin.db.models.cells import AreaCounts, CellStats, LayerVersion
from twin.db.models.city import (
    Address,
    AdminArea,
    AdminAreaCell,
    Building,
    CityMeta,
    Enterprise,
    HazardSite,
    Parcel,
    ParcelCell,
    Person,
    Poi,
)
from twin.db.models.network import RoadLink, RoadNode
from twin.db.models.nowcast import Nowcast, NowcastCell, NowcastLink, NowcastSkill, NowcastStep
from twin.db.models.observe import Event, Observation, RasterAsset, Sensor
from twin.db.models.ops import (
    Alert,
    AppUser,
    AuditLog,
    RiskScore,
    RiskSnapshot,
    Task,
    TaskTransition,
)
from twin.db.models.rollups import (
    ObservationCellRollup1h,
    ObservationCellRollup5min,
    ObservationDetached,
    ObservationRollup1h,
    ObservationRollup5min,
    ObservationRollupQueue,
)
from twin.db.models.sim import (
    FloodBuildingResult,
    FloodCellResult,
    FloodEnsembleCellResult,
    FloodEnsembleLinkResult,
    FloodLinkResult,
    SimRun,
    TrafficCellResult,
    TrafficLinkResult,
)
from twin.db.models.sta import (
    SenseDeadLetter,
    SenseDevice,
    SenseDeviceDatastream,
    StaFeature,
    StaHistoricalLocation,
    StaLocation,
    StaObservedProperty,
    StaSensor,
    StaThing,
    StaThingLocation,
)

metadata = Base.metadata

#: Tables under forced row-level security, as their models declare it (``row_secured()`` in
#: ``__table_args__``): a scoped caller reads fewer of their rows than an unscoped one.
ROW_SECURED: frozenset[str] = frozenset(
    t.name for t in metadata.tables.values() if t.info.get("row_security")
)

__all__ = [
    "PART_SCHEMA",
    "ROW_SECURED",
    "SCHEMA",
    "Address",
    "AdminArea",
    "AdminAreaCell",
    "Alert",
    "AppUser",
    "AreaCounts",
    "AuditLog",
    "Base",
    "Building",
    "CellStats",
    "CityMeta",
    "Enterprise",
    "Event",
    "FloodBuildingResult",
    "FloodCellResult",
    "FloodEnsembleCellResult",
    "FloodEnsembleLinkResult",
    "FloodLinkResult",
    "HazardSite",
    "LayerVersion",
    "Nowcast",
    "NowcastCell",
    "NowcastLink",
    "NowcastSkill",
    "NowcastStep",
    "Observation",
    "ObservationCellRollup1h",
    "ObservationCellRollup5min",
    "ObservationDetached",
    "ObservationRollup1h",
    "ObservationRollup5min",
    "ObservationRollupQueue",
    "Parcel",
    "ParcelCell",
    "Person",
    "Poi",
    "RasterAsset",
    "RiskScore",
    "RiskSnapshot",
    "RoadLink",
    "RoadNode",
    "SenseDeadLetter",
    "SenseDevice",
    "SenseDeviceDatastream",
    "Sensor",
    "SimRun",
    "StaFeature",
    "StaHistoricalLocation",
    "StaLocation",
    "StaObservedProperty",
    "StaSensor",
    "StaThing",
    "StaThingLocation",
    "Task",
    "TaskTransition",
    "TrafficCellResult",
    "TrafficLinkResult",
    "metadata",
]
