"""The one settings model of the twin.

Every value can be set from the environment with the ``TWIN_`` prefix (``TWIN_DATABASE_URL``,
``TWIN_H3_RESOLUTIONS='[7,8,9,10]'``, ...) or from a ``.env`` file in the working directory.
Nothing here is built at import time: the CLI and the API app factory each call
:func:`Settings` (or receive one), so tests can build apps with other settings.
"""

from __future__ import annotations

import ipaddress
import re
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


def project_root() -> Path:
    """The checkout this package is installed from (editable), else the working directory.

    The private database cluster lives under the checkout so that two clones never share one.
    """
    here = Path(__file__).resolve().parent.parent
    if (here / "pyproject.toml").is_file():
        return here
    return Path.cwd()


def utm_crs(lon: float, lat: float) -> str:
    """The WGS 84 / UTM zone of a point (``EPSG:326NN`` north, ``EPSG:327NN`` south)."""
    zone = min(int((lon + 180) // 6) + 1, 60)
    return f"EPSG:{32600 + zone if lat >= 0 else 32700 + zone}"


class Settings(BaseSettings):
    """Settings of the twin (env prefix ``TWIN_``)."""

    model_config = SettingsConfigDict(
        env_prefix="TWIN_", env_file=".env", extra="ignore", validate_default=True
    )

    database_url: str | None = Field(
        default=None,
        description=(
            "SQLAlchemy/libpq URL of a PostGIS database. When unset, the private cluster "
            "managed by `twin db start` is used."
        ),
    )
    read_database_urls: str = Field(
        default="",
        description=(
            "Comma-separated libpq URLs of read replicas (streaming standbys of the database; "
            "`twin db start --replica N` prints them). Tiles, OGC API features and cell reads "
            "go to them, writes always to the primary; a replica that fails is left out for "
            "read_replica_retry_s and its reads go to the primary. Empty: every read on the "
            "primary."
        ),
    )
    read_replica_wait_ms: int = Field(
        default=200,
        ge=0,
        le=10_000,
        description=(
            "How long a tile built on a replica waits for the replica to replay the primary's "
            "WAL up to where the tile's data version was read; past it the tile is built on "
            "the primary (a tile is never cached under a version its data does not have)."
        ),
    )
    read_replica_retry_s: float = Field(
        default=5.0,
        gt=0,
        description="How long a replica that failed (connection lost) gets no reads.",
    )
    data_dir: Path = Field(
        default_factory=lambda: project_root() / ".twin",
        description="Where the private cluster, caches and generated data live.",
    )
    db_name: str = Field(default="twin", description="Database name in the private cluster.")
    db_port: int | None = Field(
        default=None,
        ge=1024,
        le=65535,
        description="Port of the private cluster; a free one is picked when unset.",
    )
    db_user: str | None = Field(
        default=None,
        description=(
            "OS user that runs the private cluster when the CLI runs as root "
            "(PostgreSQL refuses to run as root). Default: 'postgres' if it exists, else 'nobody'."
        ),
    )

    pool_min_size: int = Field(default=1, ge=0)
    pool_max_size: int = Field(default=10, ge=1)
    pool_timeout_s: float = Field(
        default=5.0, gt=0, description="How long a request waits for a database connection."
    )
    pool_reconnect_timeout_s: float = Field(
        default=10.0,
        gt=0,
        description=(
            "How long the pool retries a lost connection (with backoff) before it gives up and "
            "lets the next request try afresh; bounds recovery after a database restart."
        ),
    )
    statement_timeout_ms: int = Field(
        default=30_000, ge=0, description="Per-statement timeout on API connections."
    )
    parallel_workers: int = Field(
        default=0,
        ge=0,
        le=64,
        description="max_parallel_workers_per_gather of API connections. 0: a tile query is a "
        "few ms, and starting a parallel worker costs ~10 ms; requests run side by side anyway.",
    )

    city_center: tuple[float, float] = Field(
        default=(120.16, 30.27), description="City centre (lon, lat) in degrees."
    )
    city_crs: str | None = Field(
        default=None,
        description="Projected CRS for metric work; default: the UTM zone of the city centre.",
    )
    h3_resolutions: Annotated[list[int], Field(min_length=1)] = Field(
        default_factory=lambda: [7, 8, 9, 10],
        description="H3 resolutions kept in cell statistics, coarse to fine.",
    )
    suppression_k: int = Field(
        default=10, ge=1, description="People counts below k are hidden from those without rights."
    )

    tile_cache_mb: int = Field(default=256, ge=0, description="In-process tile cache (MB).")
    redis_url: str | None = Field(
        default=None, description="Redis for a shared second-level tile cache (optional)."
    )

    open_simulations: bool = Field(
        default=False,
        description=(
            "Let callers without a token start simulations (a public demo); users always get "
            "exactly their role's rights."
        ),
    )

    open_operations: bool = Field(
        default=False,
        description=(
            "Let callers without a token dispatch tasks, change their state and acknowledge "
            "alerts (a public demo)."
        ),
    )

    public_clearance: Literal["general", "important"] = Field(
        default="general",
        description=(
            "The most sensitive data class callers without a token may read: general "
            "(aggregates only) or important (also events, hazard sites, tasks, alerts). Core "
            "data (people, users, audit) is never public."
        ),
    )
    layers_dir: Path = Field(
        default_factory=lambda: project_root() / "layers",
        description="The risk one-map layer catalog: one TOML file per layer.",
    )
    rules_dir: Path = Field(
        default_factory=lambda: project_root() / "rules",
        description="Alert rules: one TOML file per rule.",
    )
    api_db_role: str = Field(
        "twin_api",
        description="Database role API requests run as (row-level security applies to it).",
        pattern=r"^[a-z_][a-z0-9_]{0,62}$",
    )
    auth_cache_seconds: float = Field(
        default=5.0,
        ge=0,
        le=60,
        description=(
            "Seconds a server process remembers a resolved token: a revocation takes effect at "
            "once in the process that made it and within this time in every other (0: never "
            "remembered, a database lookup per request)."
        ),
    )
    cockpit_cache_seconds: float = Field(
        default=10.0,
        ge=0,
        le=300,
        description=(
            "Seconds a cockpit answer is shared by callers who would get the same one (same "
            "area, period, role and scope); writes through the API clear it at once, other "
            "writes show within this time. Its as_of says which instant it describes (0: off)."
        ),
    )
    trusted_proxies: str = Field(
        default="",
        description=(
            "Comma-separated addresses or networks of reverse proxies whose X-Forwarded-For "
            "names the client (audit log); empty (default): the header is ignored."
        ),
    )
    audit_flush_seconds: float = Field(
        default=1.0,
        gt=0,
        le=60,
        description="Tile reads of core layers are audited in batches written this often.",
    )
    web_vendor_dir: Path = Field(
        default_factory=lambda: project_root() / "web" / "node_modules",
        description="npm packages of the web map (MapLibre GL JS), installed by `make setup`.",
    )

    max_body_bytes: int = Field(
        default=2**20,
        ge=1024,
        description=(
            "Largest request body accepted (bytes), checked before the body is parsed: 413 "
            "beyond it. Routes that need more have their own limit (twin/api/limits.py)."
        ),
    )
    public_url: str | None = Field(
        default=None,
        description=(
            "The public base URL of the API (https://twin.example.org). Absolute links "
            "(OGC API, TileJSON, style.json, redirects) are built from it, never from the "
            "request's Host header; its host is trusted."
        ),
        pattern=r"^https?://[^/?#\s]+(/[^?#\s]*)?$",
    )
    allowed_hosts: list[str] = Field(
        default_factory=lambda: ["localhost", "127.0.0.1", "::1", "testserver"],
        description=(
            "Host header values served (names, '*.example.org' for subdomains); other hosts "
            "get 400. '*' serves any Host, with links built from the address the connection "
            "arrived on. The host of public_url and the bind address are added."
        ),
    )
    cors_origins: list[str] = Field(
        default_factory=list,
        description="Origins allowed cross-origin requests (CORS); empty: CORS off.",
    )
    mqtt_url: str | None = Field(
        default=None,
        description=(
            "MQTT broker of the SensorThings bridge, e.g. mqtt://127.0.0.1:1883 (user:password@ "
            "allowed). When set, `twin serve` starts the bridge; `twin sense run` runs it alone."
        ),
        pattern=r"^mqtts?://",
    )
    mqtt_selects: list[str] = Field(
        default_factory=lambda: ["result,phenomenonTime"],
        description=(
            "$select variants the bridge also publishes each stored Observation to, as "
            "v1.1/Datastreams(<id>)/Observations?$select=<s> (a broker does not tell who "
            "subscribed to what)."
        ),
    )
    mqtt_client_id: str = Field(
        default="twin-sense-bridge",
        min_length=1,
        max_length=256,
        description=(
            "MQTT client id of the bridge: its persistent session on the broker, which keeps "
            "the messages not yet acknowledged (stored) across a reconnect. One id per bridge: "
            "two bridges with one id take the session from each other."
        ),
    )
    mqtt_session_expiry_s: int = Field(
        default=86_400,
        ge=0,
        le=2**32 - 1,
        description=(
            "How long (seconds) the broker keeps the bridge's session, and the QoS 1 messages "
            "queued for it, while the bridge is away (MQTT 5 session expiry interval)."
        ),
    )
    sense_future_tolerance_s: float = Field(
        default=600,
        ge=0,
        description=(
            "How far in the future (seconds) an Observation's phenomenonTime may lie (MQTT or "
            "HTTP); a later one is refused and kept in the dead letters (twin.sense_dead_letter)."
        ),
    )
    live_alerts: bool = Field(
        default=True,
        description=(
            "Evaluate the sensor alert rules (rain gauges, water levels) as readings arrive, "
            "in the process that stores them (API or `twin sense run`), and dispatch tasks for "
            'rules with dispatch = "auto".'
        ),
    )
    flood_threads: int = Field(
        default=1,
        ge=1,
        le=64,
        description=(
            "Threads each storm run on the twin uses (twin simulate flood, the API's runs, "
            "the demo): the flood step is shared by fixed bands of rows, so the depths are the "
            "same bit for bit whatever the number."
        ),
    )
    traffic_threads: int = Field(
        default=1,
        ge=1,
        le=64,
        description=(
            "Threads each traffic assignment on the twin uses (twin simulate traffic, the "
            "API's runs, the demo), at most numba's NUMBA_NUM_THREADS: the all-or-nothing "
            "start, bush growth and the gap's path totals run on groups of origins side by "
            "side, the flow shifts stay serial; repeatable bit for bit for a given number."
        ),
    )
    nowcast_traffic: bool = Field(
        default=True,
        description=(
            "After a nowcast step (and its alerts) whose closed or slowed roads differ from "
            "those the latest traffic run closed for the nowcast, assign the peak again with "
            "them (the latest traffic run's settings), against a baseline without, then score "
            "the risk map in full."
        ),
    )
    nowcast_every_s: float = Field(
        default=300,
        ge=0,
        description=(
            "How often (seconds) the process that runs the rule watch (API or `twin sense run`) "
            "runs a nowcast step, when a rain gauge has a fresh reading, then updates the "
            "nowcast-fed risk layers and evaluates the nowcast alert rules; 0: off."
        ),
    )
    stream_poll_s: float = Field(
        default=0.5,
        gt=0,
        le=60,
        description=(
            "How often (seconds) each /api/stream connection reads the change feed (alerts, "
            "task transitions, tile versions) as its caller."
        ),
    )
    sense_retention_days: int = Field(
        default=90,
        ge=1,
        description=(
            "Days of raw readings kept attached in twin.observation; older daily partitions are "
            "detached by `twin sense partitions --detach` (the roll-ups keep their aggregates)."
        ),
    )
    sense_partitions_ahead_days: int = Field(
        default=7,
        ge=1,
        le=366,
        description="Daily partitions of twin.observation created ahead of today.",
    )
    sense_drop_detached: bool = Field(
        default=False,
        description="Drop the partitions detached past the retention instead of keeping them.",
    )
    history_partitions_ahead_months: int = Field(
        default=3,
        ge=1,
        le=24,
        description=(
            "Monthly partitions of twin.event, twin.task_transition and twin.audit_log made "
            "ahead of the current month (later rows wait in each table's open-ended last one)."
        ),
    )
    event_retention_days: int | None = Field(
        default=None,
        ge=1,
        description=(
            "Days of events kept attached in twin.event; older months are detached by "
            "`twin db partitions --detach` (unset: keep everything)."
        ),
    )
    task_transition_retention_days: int | None = Field(
        default=None,
        ge=1,
        description="Days of task transitions kept attached (unset: keep everything).",
    )
    audit_retention_days: int | None = Field(
        default=None,
        ge=1,
        description="Days of the audit trail kept attached (unset: keep everything).",
    )
    history_drop_detached: bool = Field(
        default=False,
        description="Drop the history partitions detached past their retention (else kept in "
        "schema twin_part, which the API cannot read).",
    )
    sense_rollup_resolution: int = Field(
        default=9,
        ge=0,
        le=15,
        description=(
            "H3 resolution of the per-cell roll-ups of readings (the parent of each sensor's "
            "cell; at most the finest of TWIN_H3_RESOLUTIONS)."
        ),
    )
    sense_maintenance_interval_s: float = Field(
        default=10,
        ge=0,
        description=(
            "How often (seconds) the API process and `twin sense run` refresh the roll-ups of "
            "readings (and, hourly, create the partitions ahead); 0 turns it off."
        ),
    )
    sta_page_size: int = Field(
        default=100, ge=1, le=10_000, description="SensorThings page size without $top."
    )
    open_data_license: str = Field(
        default="CC-BY-4.0",
        description=(
            "SPDX identifier of the licence the open-data catalogue (/catalog, /stac) gives "
            "the published datasets."
        ),
        pattern=r"^[A-Za-z0-9.+-]+$",
    )
    open_data_publisher: str | None = Field(
        default=None,
        description="Publisher named in the open-data catalogue; default: the city's name.",
    )

    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)
    workers: int = Field(
        default=1,
        ge=1,
        le=64,
        description="Server processes of `twin serve` (each has its own pool and tile cache).",
    )

    @field_validator("h3_resolutions")
    @classmethod
    def _check_resolutions(cls, v: list[int]) -> list[int]:
        bad = [r for r in v if not 0 <= r <= 15]
        if bad:
            raise ValueError(f"H3 resolutions must be 0..15, got {bad}")
        return sorted(set(v))

    @field_validator("city_center")
    @classmethod
    def _check_center(cls, v: tuple[float, float]) -> tuple[float, float]:
        lon, lat = v
        if not (-180 <= lon <= 180 and -90 <= lat <= 90):
            raise ValueError(f"city_center must be (lon, lat) in degrees, got {v}")
        return v

    @field_validator("trusted_proxies")
    @classmethod
    def _check_proxies(cls, v: str) -> str:
        for part in v.split(","):
            if part.strip():
                try:
                    ipaddress.ip_network(part.strip(), strict=False)
                except ValueError:
                    raise ValueError(
                        f"trusted_proxies: {part.strip()!r} is not an address or network"
                    ) from None
        return v

    @field_validator("read_database_urls")
    @classmethod
    def _check_read_urls(cls, v: str) -> str:
        for part in v.split(","):
            if part.strip() and not re.match(r"^postgres(?:ql)?(?:\+\w+)?://", part.strip()):
                raise ValueError(f"read_database_urls: {part.strip()!r} is not a postgresql:// URL")
        return v

    @property
    def read_urls(self) -> list[str]:
        """The replicas of :attr:`read_database_urls`, in order (none: reads on the primary)."""
        return [p.strip() for p in self.read_database_urls.split(",") if p.strip()]

    @property
    def trusted_proxy_networks(self) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
        """The networks of :attr:`trusted_proxies`."""
        return [ipaddress.ip_network(p.strip(), strict=False)
                for p in self.trusted_proxies.split(",") if p.strip()]  # fmt: skip

    @model_validator(mode="after")
    def _check_pool(self) -> Settings:
        if self.pool_min_size > self.pool_max_size:
            raise ValueError("pool_min_size must not exceed pool_max_size")
        return self

    @model_validator(mode="after")
    def _check_rollup_resolution(self) -> Settings:
        if self.sense_rollup_resolution > self.finest_resolution:
            raise ValueError(
                f"sense_rollup_resolution ({self.sense_rollup_resolution}) must not be finer "
                f"than the finest of h3_resolutions ({self.finest_resolution})"
            )
        return self

    @property
    def finest_resolution(self) -> int:
        """The resolution stored on every point entity; coarser cells are derived."""
        return self.h3_resolutions[-1]

    @property
    def metric_crs(self) -> str:
        """The projected CRS for areas, lengths and flood grids (``EPSG:326NN``/``327NN``)."""
        if self.city_crs:
            return self.city_crs
        return utm_crs(*self.city_center)
