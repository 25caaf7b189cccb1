"""The store interface. SQLite is the embedded default; PostGIS implements the same.

Both implement it through one SQL core (core.SQLStore) over one schema (schema.py);
they differ only in connections, write locking and the spatial side.
Geometries cross this boundary as shapely objects in lon/lat (EPSG:4326).
Rows cross it as plain dicts whose keys are the column names (a flag's: FLAG_FIELDS,
the fields of redline.model.Flag), so that exports and API serialisers need no
per-backend code.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import date

from .. import model
from ..accesslist import AccessListReport
from ..layers import LoadReport, Zone

# group_by key -> the flag columns that form the group
STATS_GROUPS = {
    "region": ("admin_code", "admin_name"),
    "zone": ("zone_layer", "zone_name", "zone_regime"),
    "activity": ("activity",),
    "severity": ("severity",),
    "status": ("status",),
    "month": ("month",),  # month first seen, YYYY-MM
    "source": ("source",),  # scan | national | ground (redline.model.PROBLEM_SOURCES)
}

# a flag row's columns, geometry aside: the fields of redline.model.Flag
FLAG_FIELDS = model.FLAG_FIELDS


@dataclass
class FlagFilter:
    """Filters shared by the CLI, exports and (later) the API; None means any."""

    bbox: tuple[float, float, float, float] | None = None  # lon/lat
    region: object | None = None  # lon/lat shapely geometry: flags intersecting it (exact, in the store)
    status: list[str] | None = None
    severity: list[str] | None = None
    activity: list[str] | None = None
    admin_code: list[str] | None = None
    since: date | None = None  # last_seen >= since
    until: date | None = None  # first_seen <= until
    limit: int | None = None
    after_id: int | None = None  # keyset paging
    cql: object | None = None  # a checked CQL2 filter (redline.cql.parse), translated to SQL in the store
    sortby: tuple = ()  # ((queryable, descending), ...) from redline.cql.parse_sortby; then by id
    offset: int | None = None  # rows to skip (paging with sortby)


@dataclass
class ZoneFilter:
    """Zones of one layer's current version, a page at a time (OGC API Features)."""

    region: object | None = None  # lon/lat shapely geometry: zones intersecting it (exact, in the store)
    cql: object | None = None  # a checked CQL2 filter (redline.cql.parse), translated to SQL in the store
    sortby: tuple = ()  # ((queryable, descending), ...) from redline.cql.parse_sortby; then by id
    limit: int | None = None
    offset: int | None = None  # rows to skip (paging with sortby)
    after_id: int | None = None  # keyset paging (ids above)


class Store(ABC):
    """One persistence interface for layers, scans, flags, observations and audit."""

    @property
    @abstractmethod
    def identity(self) -> str:
        """Names the database (a process-wide cache keys on it, never shows it)."""

    # lifecycle -------------------------------------------------------------------------
    @abstractmethod
    def close(self) -> None: ...

    @abstractmethod
    def transaction(self) -> AbstractContextManager:
        """All writes inside commit together or not at all (exclusive for writers)."""

    # layers ----------------------------------------------------------------------------
    @abstractmethod
    def add_layer_version(self, report: LoadReport) -> dict: ...

    @abstractmethod
    def layer_versions(self, kind: str | None = None, current_only: bool = True) -> list[dict]: ...

    @abstractmethod
    def add_access_list(self, report: AccessListReport) -> dict:
        """A new version of the access list (layer kind ``access_list``) with its entries."""

    @abstractmethod
    def access_entries(self, unit_codes) -> list[dict]:
        """The entries of the current access list for these control unit codes (rows of
        ``access_entries`` with ``list_version``), in source row order; [] when none is loaded."""

    @abstractmethod
    def zone_refs(self, zone_ids) -> dict[int, str]:
        """Each zone's own reference (its code, e.g. a permit's number; else its name) by id,
        whatever layer version it belongs to (a flag keeps the permit it matched)."""

    @abstractmethod
    def zones(
        self, kinds: tuple[str, ...], bbox: tuple[float, float, float, float] | None = None, region=None, cql=None
    ) -> list[Zone]:
        """Zones of the current version of each kind; optionally only candidates for a lon/lat
        bbox (by bounding box), or exactly those intersecting a lon/lat ``region`` geometry, and
        those matching a checked CQL2 filter (``cql``, redline.cql.parse)."""

    @abstractmethod
    def zone(self, kind: str, zone_id: int) -> Zone:
        """One zone of the current version of ``kind`` (NotFoundError if it has none of that id)."""

    @abstractmethod
    def zone_page(self, kind: str, flt: ZoneFilter) -> list[Zone]:
        """Zones of the current version of ``kind`` matching ``flt``, ordered by its ``sortby``
        then id (text byte by byte, NULLs last), from ``offset`` or above ``after_id``, at most
        ``limit``."""

    @abstractmethod
    def count_zones(self, kind: str, flt: ZoneFilter) -> int:
        """How many zones ``zone_page`` would page through (``limit``, ``offset``, ``after_id`` aside)."""

    @abstractmethod
    def extent(self, collection: str, flt: FlagFilter | None = None) -> dict | None:
        """``{"bbox": (minx, miny, maxx, maxy), "interval": (start, end) | None}`` of the flags
        matching ``flt`` (``collection`` "flags") or of the current zones of a layer kind; None
        when there are none. Intervals are ISO dates (flags: first_seen..last_seen)."""

    @abstractmethod
    def change_stamp(self) -> list:
        """Changes whenever a flag, a scan or a layer version is written (for tile ETags)."""

    def vector_tile(self, collection: str, spec, flt: FlagFilter | None = None) -> bytes | None:
        """The MVT tile of ``spec`` (redline.tiles.TileSpec) built by the database itself, or
        None where the engine encodes it (redline.tiles)."""
        return None

    # zone tiles rendered once per layer version (redline.tiles.prerender_zone_tiles)
    @abstractmethod
    def zone_tile(self, kind: str, z: int, x: int, y: int, rules: int) -> bytes | None:
        """The pre-rendered tile of the current ``kind`` version (``b""``: known to be empty),
        or None when that version's tiles up to ``z`` by ``rules`` are not all written."""

    @abstractmethod
    def clear_zone_tiles(self, kind: str) -> None:
        """Forget the pre-rendered tiles of every version of ``kind``."""

    @abstractmethod
    def add_zone_tiles(self, layer_version_id: int, tiles: list[tuple[int, int, int, bytes]]) -> None:
        """Write pre-rendered tiles ((z, x, y, body), non-empty), in a transaction of their own."""

    @abstractmethod
    def zone_tiles_written(self, layer_version_id: int, max_zoom: int, rules: int, tiles: int) -> bool:
        """Mark the ``tiles`` tiles of ``layer_version_id`` up to ``max_zoom`` complete (served
        from now on); False, nothing marked, when they are not all there."""

    # scans -----------------------------------------------------------------------------
    @abstractmethod
    def scan_by_checksum(self, checksum: str) -> dict | None: ...

    @abstractmethod
    def insert_scan(self, scan: dict, footprint) -> int: ...

    @abstractmethod
    def scans(self, bbox=None, since: date | None = None, until: date | None = None, region=None) -> list[dict]:
        """Finished scans (with ``footprint`` geometry) acquired in the period whose footprint's
        bounding box overlaps ``bbox``, or whose footprint intersects ``region`` (exact)."""

    # flags -----------------------------------------------------------------------------
    @abstractmethod
    def flags(self, flt: FlagFilter | None = None, with_geometry: bool = True) -> list[dict]: ...

    @abstractmethod
    def count_flags(self, flt: FlagFilter | None = None) -> int: ...

    @abstractmethod
    def tile_zones(self, kind: str, bbox, band: int | None = None, cql=None) -> list[dict]:
        """The current ``kind`` zones whose bounding box meets ``bbox`` (and the checked CQL2
        filter ``cql``), for a vector tile: ``id``, ``name``, ``regime``, ``code``, ``kind`` and
        ``geometry``: the zone's generalised copy for zoom band ``band`` (a zone without one,
        under a pixel there, is left out), or the zone itself for None."""

    @abstractmethod
    def flag_points(self) -> dict[str, Sequence]:
        """Every flag's vector-tile fields (redline.model.FLAG_TILE_FIELDS) and the centre of
        its bounding box (``cx``, ``cy``, lon/lat), as columns (one sequence per name, in the
        same flag order): what zoomed-out tiles are thinned from."""

    @abstractmethod
    def flag_point_changes(self, since: list, stamp: list) -> dict[str, Sequence] | None:
        """What :meth:`flag_points` gives, for the flags changed after the :meth:`change_stamp`
        ``since`` only; None where more than flags changed up to ``stamp`` (load every flag)."""

    @abstractmethod
    def flag_cells(self, flt: FlagFilter | None, spec) -> list[dict]:
        """A zoomed-out vector tile's flags (``spec``: redline.tiles.TileSpec): the flags matching
        ``flt`` placed at the centre of their bounding box in tile units (``px``, ``py``, rounded),
        thinned to one per ``spec.cell`` (the most severe, then the latest seen, then the lowest
        id), with ``pixel_flags``, how many flags share the cell; no geometry."""

    @abstractmethod
    def flag(self, flag_id: int) -> dict: ...

    @abstractmethod
    def insert_flag(self, flag: dict, geometry) -> int: ...

    @abstractmethod
    def update_flag(self, flag_id: int, fields: dict, geometry=None) -> None: ...

    @abstractmethod
    def add_observation(self, obs: dict, geometry) -> int: ...

    @abstractmethod
    def observations(self, flag_id: int) -> list[dict]: ...

    @abstractmethod
    def replace_conflicts(self, flag_id: int, conflicts: list[dict]) -> None: ...

    @abstractmethod
    def conflicts(self, flag_id: int) -> list[dict]: ...

    @abstractmethod
    def audit(self, flag_id: int | None, actor: str, action: str, detail: dict) -> None: ...

    @abstractmethod
    def history(self, flag_id: int) -> list[dict]: ...

    # statistics ------------------------------------------------------------------------
    @abstractmethod
    def stats(self, group_by: str, flt: FlagFilter | None = None) -> list[dict]:
        """Counts and areas of flags grouped by one of STATS_GROUPS."""

    # access tokens ---------------------------------------------------------------------
    @abstractmethod
    def add_token(self, name: str, role: str, jurisdiction: list[str], token_hash: str) -> int: ...

    @abstractmethod
    def token_by_hash(self, token_hash: str) -> dict | None: ...

    @abstractmethod
    def tokens(self) -> list[dict]: ...

    @abstractmethod
    def revoke_token(self, token_id: int) -> None: ...

    # field evidence --------------------------------------------------------------------
    @abstractmethod
    def add_evidence(self, record: dict) -> int: ...

    @abstractmethod
    def evidence(self, flag_id: int) -> list[dict]: ...

    @abstractmethod
    def evidence_item(self, evidence_id: int) -> dict: ...

    # jobs ------------------------------------------------------------------------------
    @abstractmethod
    def add_job(self, job: dict) -> None: ...

    @abstractmethod
    def update_job(self, job_id: str, fields: dict) -> None: ...

    @abstractmethod
    def job(self, job_id: str) -> dict: ...

    @abstractmethod
    def jobs(self, actor: str | None = None, limit: int = 100) -> list[dict]:
        """Jobs newest first; only ``actor``'s when given."""

    # nightly batch ledger: one entry per discovered product, keyed by the fingerprint of its
    # input files; state running | done | failed ----------------------------------------
    @abstractmethod
    def ledger_entry(self, key: str) -> dict | None: ...

    @abstractmethod
    def ledger_by_stamp(self, stamp: str) -> dict | None:
        """The latest entry whose cheap file signature (paths, sizes, mtimes) is ``stamp``."""

    @abstractmethod
    def ledger_start(self, entry: dict) -> dict:
        """Create or re-open an entry as ``running`` (attempts + 1, not yet reported)."""

    @abstractmethod
    def ledger_update(self, key: str, fields: dict) -> None: ...

    @abstractmethod
    def ledger_entries(self, state: str | None = None, unreported: bool = False) -> list[dict]: ...

    @abstractmethod
    def ledger_mark_reported(self, keys: list[str], digest_id: str) -> None: ...

    # area subscriptions and their deliveries (redline.notify) ---------------------------
    @abstractmethod
    def add_subscription(self, row: dict) -> dict:
        """Add a subscription (ConflictError when an active one has the same name); the row."""

    @abstractmethod
    def subscriptions(self, owner_name: str | None = None) -> list[dict]:
        """Active subscriptions (not removed), by id; only ``owner_name``'s when given."""

    @abstractmethod
    def subscription(self, name: str) -> dict: ...

    @abstractmethod
    def remove_subscription(self, name: str) -> None:
        """Mark the active subscription ``name`` removed (its deliveries stay listed)."""

    @abstractmethod
    def add_delivery(self, row: dict) -> tuple[dict, bool]:
        """Write a pending delivery unless one with its ``key`` exists: (the row, whether new)."""

    @abstractmethod
    def deliveries(
        self,
        run_id: str | None = None,
        states: tuple[str, ...] | None = None,
        subscription_ids: list[int] | None = None,
    ) -> list[dict]:
        """Deliveries by id, with their subscription's name and channel."""

    @abstractmethod
    def update_delivery(self, delivery_id: int, fields: dict) -> None: ...

    @abstractmethod
    def claim_delivery(
        self,
        delivery_id: int,
        owner: str,
        until: str,
        at: str,
        states: tuple[str, ...] = ("pending",),
        take_from: str | None = None,
    ) -> bool:
        """Take (or renew) ``owner``'s lease on a delivery in one of ``states`` until ``until``
        (ISO timestamps; ``at`` is now): whether it is now ``owner``'s. A lease held by another
        sender is taken over only once it has expired (``claimed_until`` before ``at``), or when
        that sender is ``take_from`` (known to be dead)."""

    # rectification ledger (台账, redline.ledger): one entry per problem, dated progress notes
    @abstractmethod
    def rectification(self, flag_id: int) -> dict | None:
        """The ledger entry of a flag, None when it has none."""

    @abstractmethod
    def save_rectification(self, flag_id: int, fields: dict) -> dict:
        """Create the flag's ledger entry or update the ``fields`` given; the entry."""

    @abstractmethod
    def rectifications(self) -> list[dict]:
        """Every ledger entry, by flag id."""

    @abstractmethod
    def add_rectification_note(self, row: dict) -> int:
        """A dated progress note (flag_id, noted_on, note, actor, at); its id."""

    @abstractmethod
    def rectification_notes(self, flag_id: int) -> list[dict]:
        """A flag's progress notes by date, then id."""

    # national leads (redline.leads): each issued lead, its original columns, the flag it is
    @abstractmethod
    def add_lead(self, row: dict, geometry) -> int:
        """Record an imported lead (batch, lead_id, flag_id, source_name, source_format,
        source_crs, attrs, imported_at) with its lon/lat geometry; its id."""

    @abstractmethod
    def lead(self, batch: str, lead_id: str) -> dict | None:
        """The lead ``lead_id`` of ``batch`` (no geometry), None when not imported."""

    @abstractmethod
    def leads(self, batch: str) -> list[dict]:
        """A batch's leads in import order, with ``geometry``."""
