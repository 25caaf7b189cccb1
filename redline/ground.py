"""Ground reports ("sky-ground" monitoring): a problem an inspector found on the ground, or staff
keyed in from a hotline call, at a point or a polygon, with a note and photos.

It becomes a problem with source ``ground`` (:mod:`redline.problems`): a new flag in the same
workflow, or an observation of the flag it lies on. Inspectors report only inside their
jurisdiction (the admin unit the place lies in; and the flag it matches must be theirs too),
checked before anything is written. Photos go through the evidence store
(:func:`redline.evidence.save_evidence`); each is checked (type by its magic bytes, size)
before the report is recorded, so a bad photo refuses the whole report.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import date
from typing import BinaryIO

import shapely

from .auth import Principal
from .config import DEFAULTS, Settings
from .errors import InputError, PermissionDeniedError, TooLargeError
from .evidence import save_evidence, sniff
from .problems import Problem, Recorder, problem_area
from .regions import RegionLimits, check_lonlat, geojson_geometries, prepare_region
from .safeio import finite_coordinates
from .store import Store

MAX_PHOTOS = 20
MAX_REF_CHARS = 100


@dataclass
class Photo:
    stream: BinaryIO  # seekable
    name: str | None


def ground_geometry(doc, what: str = "geometry", limits: RegionLimits = RegionLimits()):
    """A GeoJSON geometry or Feature in lon/lat: a point stays a point, polygons become one
    checked region (:func:`redline.regions.prepare_region`)."""
    geoms = geojson_geometries(doc, what, limits.max_features)
    if len(geoms) == 1 and geoms[0].geom_type == "Point":
        finite_coordinates(geoms, what)
        check_lonlat(geoms[0], what)
        return geoms[0]
    return prepare_region(geoms, "OGC:CRS84", what, limits)


def _checked_photos(photos: list[Photo], max_bytes: int) -> None:
    if len(photos) > MAX_PHOTOS:
        raise InputError(f"at most {MAX_PHOTOS} photos per report")
    for p in photos:
        head = p.stream.read(16)
        sniff(head)  # JPEG, PNG or PDF, by content
        p.stream.seek(0, 2)
        size = p.stream.tell()
        p.stream.seek(0)
        if size > max_bytes:
            raise TooLargeError(f"photo {p.name or ''} exceeds the limit of {max_bytes:,} bytes".replace("  ", " "))


def _admin_code(store: Store, area) -> str | None:
    inside = shapely.point_on_surface(area)
    for z in store.zones(("admin",), region=inside):
        if z.geometry.intersects(inside):
            return z.code
    return None


def report_ground(
    store: Store,
    geometry,
    activity: str,
    note: str,
    principal: Principal,
    *,
    photos: list[Photo] | None = None,
    observed_on: date | None = None,
    ref: str | None = None,
    settings: Settings = DEFAULTS,
) -> dict:
    """Record a ground report; returns ``{"flag_id", "new", "status", "source_ref", "evidence"}``."""
    principal.require("workflow")
    note = (note or "").strip()
    if not note:
        raise InputError("a ground report needs a note: what was found")
    ref = (ref or "").strip() or f"GR-{uuid.uuid4().hex[:12]}"
    if len(ref) > MAX_REF_CHARS:
        raise InputError(f"the report reference is over {MAX_REF_CHARS} characters")
    photos = list(photos or [])
    area = problem_area(geometry, "ground report")
    recorder = Recorder(store, settings)
    problem = Problem(geometry, activity, observed_on or date.today(), "ground", ref, note=note)
    if principal.restricted and _admin_code(store, area) not in principal.jurisdiction:
        raise PermissionDeniedError("the reported place is outside your jurisdiction")
    _checked_photos(photos, settings.max_evidence_bytes)
    with store.transaction():
        done = recorder.record(problem, principal.name, "ground report")
        principal.require_flag(store.flag(done.flag_id))  # the flag it observes must be theirs too
    point = shapely.point_on_surface(area) if geometry.geom_type != "Point" else geometry
    evidence = [
        save_evidence(
            store,
            settings.evidence_dir,
            done.flag_id,
            p.stream,
            original_name=p.name,
            actor=principal.name,
            lon=round(float(point.x), 7),
            lat=round(float(point.y), 7),
            note=f"ground report {ref}",
            max_bytes=settings.max_evidence_bytes,
        )["id"]
        for p in photos
    ]
    return {"flag_id": done.flag_id, "new": done.new, "status": done.status, "source_ref": ref, "evidence": evidence}
