"""OGC API – Features: Part 1 (core, GeoJSON), Part 2 (CRS by reference) and Part 3 (queryables,
CQL2 filters, sortby) over flags and the zone layers (red lines, reserve zones, permits, admin
units, environmental control units). Every geometry is a MultiPolygon. Query parameters an operation does not define
are refused with 400, never ignored.
"""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Annotated, Any
from urllib.parse import urlencode

import numpy as np
import shapely
from fastapi import APIRouter, Path, Query, Request, Response
from fastapi.responses import JSONResponse

from redline import cql
from redline.errors import CRSError, NotFoundError
from redline.geo import STORAGE_CRS, parse_crs, reproject
from redline.model import Zone
from redline.store import ZoneFilter
from redline.tiles import COLLECTIONS  # the same collections have features and vector tiles

from . import webapp
from .deps import CurrentUser, StoreDep
from .filters import FilterCrs, FilterLang, FlagQuery, parse_filter
from .inputs import parse_bbox
from .params import BAD_PARAMETER, BadParameterError, reject_unknown
from .schemas import MAX_ID

router = APIRouter(tags=["features"])

GEOJSON = "application/geo+json"
SCHEMA_JSON = "application/schema+json"
CRS84 = "http://www.opengis.net/def/crs/OGC/1.3/CRS84"
EPSG4490 = "http://www.opengis.net/def/crs/EPSG/0/4490"
EPSG4326 = "http://www.opengis.net/def/crs/EPSG/0/4326"
CRS_LIST = (CRS84, EPSG4490, EPSG4326)
_F1 = "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf"
_F3 = "http://www.opengis.net/spec/ogcapi-features-3/1.0/conf"
_CQL2 = "http://www.opengis.net/spec/cql2/1.0/conf"
_TILES = "http://www.opengis.net/spec/ogcapi-tiles-1/1.0/conf"
_PROC = "http://www.opengis.net/spec/ogcapi-processes-1/1.0/conf"
# The items paths name their parameters as the standard's OpenAPI fragments do ({collectionId},
# {featureId}): GDAL's OAPIF driver looks the query parameters up there and then sends simple
# attribute filters (``-where "severity = 'critical'"``) to the server.
CONFORMANCE = [
    f"{_F1}/core",
    f"{_F1}/geojson",
    f"{_F1}/oas30",
    "http://www.opengis.net/spec/ogcapi-features-2/1.0/conf/crs",
    f"{_F3}/queryables",
    f"{_F3}/queryables-query-parameters",
    f"{_F3}/filter",
    f"{_F3}/features-filter",
    "http://www.opengis.net/spec/ogcapi-features-5/1.0/conf/sortables",
    f"{_CQL2}/cql2-text",
    f"{_CQL2}/cql2-json",
    f"{_CQL2}/basic-cql2",
    f"{_CQL2}/advanced-comparison-operators",
    f"{_CQL2}/basic-spatial-functions",
    f"{_CQL2}/temporal-functions",
    f"{_TILES}/core",
    f"{_TILES}/tileset",
    f"{_TILES}/tilesets-list",
    f"{_TILES}/geodata-tilesets",
    f"{_TILES}/mvt",
    "http://www.opengis.net/spec/ogcapi-tiles-2/1.0/conf/tilematrixset",
    f"{_PROC}/core",
    f"{_PROC}/json",
    f"{_PROC}/job-list",
    f"{_PROC}/oas30",
]
COMMON_PARAMS = ("limit", "bbox", "bbox-crs", "crs", "filter", "filter-lang", "filter-crs", "sortby", "f")
FLAG_PARAMS = ("after", "offset", "status", "severity", "activity", "admin", "datetime")
ZONE_PARAMS = ("after", "offset")
FORMATS = ("json", "geojson")


def _base(request: Request) -> str:
    return str(request.base_url).rstrip("/")


def _geojson(body: dict, headers: dict | None = None) -> JSONResponse:
    return JSONResponse(body, media_type=GEOJSON, headers=headers)


def _known(collection_id: str) -> str:
    if collection_id not in COLLECTIONS:
        raise NotFoundError(f"no collection {collection_id!r}; there are: {', '.join(COLLECTIONS)}")
    return collection_id


def _format(f: str | None) -> None:
    if f is not None and f not in FORMATS:
        raise BadParameterError(f"f={f!r} is not offered; use f=json (GeoJSON)")


def _crs(value: str | None, name: str = "crs") -> tuple[str, Any]:
    """A CRS the collections offer: (its URI, the pyproj CRS). Strings go through the allowlist
    of redline.geo.parse_crs."""
    if value is None:
        return CRS84, parse_crs(CRS84)
    try:
        asked = parse_crs(value)
    except CRSError as exc:
        raise BadParameterError(f"{name}: {exc}") from None
    for uri in CRS_LIST:
        if parse_crs(uri) == asked:
            return uri, asked
    raise BadParameterError(f"{name} {value!r} is not offered; use one of: {', '.join(CRS_LIST)}")


def _lat_first(crs) -> bool:
    return bool(crs.axis_info) and crs.axis_info[0].direction.lower() == "north"


def _swap(geom):
    return shapely.transform(geom, lambda xy: xy[:, ::-1])


def _bbox(raw: str | None, bbox_crs: str | None) -> tuple | None:
    """``bbox`` in ``bbox-crs`` (in that CRS's axis order) → lon/lat."""
    box = parse_bbox(raw)
    if box is None:
        if bbox_crs is not None:
            raise BadParameterError("bbox-crs without bbox")
        return None
    uri, crs = _crs(bbox_crs, "bbox-crs")
    if uri == CRS84:
        return box
    corners = shapely.MultiPoint([(box[0], box[1]), (box[2], box[3])])
    if _lat_first(crs):
        corners = _swap(corners)
    return tuple(shapely.bounds(reproject(corners, crs, STORAGE_CRS)))


def _output(geom, crs_uri: str, crs):
    """A stored lon/lat geometry as the response carries it: a MultiPolygon in ``crs``, in
    that CRS's axis order (EPSG:4490 and EPSG:4326 are latitude first)."""
    if geom.geom_type == "Polygon":
        geom = shapely.MultiPolygon([geom])
    if crs_uri == CRS84:
        return geom
    geom = reproject(geom, STORAGE_CRS, crs)
    return _swap(geom) if _lat_first(crs) else geom


@router.get("/", summary="Landing page", responses={200: {"content": {"text/html": {}}}})
def landing(request: Request) -> Any:
    if webapp.wants_html(request):  # a browser gets the web app; JSON clients this document
        return webapp.index(request)
    base = _base(request)
    return {
        "title": "redline",
        "description": "Ecological red-line supervision: flags, red lines and reserve zones",
        "links": [
            {"href": f"{base}/", "rel": "self", "type": "application/json", "title": "this document"},
            {
                "href": f"{base}/openapi.json",
                "rel": "service-desc",
                "type": "application/vnd.oai.openapi+json;version=3.0",
            },
            {"href": f"{base}/docs", "rel": "service-doc", "type": "text/html"},
            {"href": f"{base}/conformance", "rel": "conformance", "type": "application/json"},
            {"href": f"{base}/collections", "rel": "data", "type": "application/json"},
        ],
    }


@router.get("/conformance", summary="Conformance classes")
def conformance() -> dict:
    return {"conformsTo": CONFORMANCE}


def _collection(base: str, cid: str, extent: dict | None) -> dict:
    spatial = {
        "bbox": [list(extent["bbox"])] if extent and extent.get("bbox") else [[-180, -90, 180, 90]],
        "crs": CRS84,
    }
    interval = extent.get("interval") if extent else None
    if interval:  # RFC 3339 instants: the first day's start, the last day's end
        interval = [
            f"{interval[0][:10]}T00:00:00Z" if interval[0] else None,
            f"{interval[1][:10]}T23:59:59Z" if interval[1] else None,
        ]
    return {
        "id": cid,
        "title": cid,
        "description": COLLECTIONS[cid],
        "itemType": "feature",
        "crs": list(CRS_LIST),
        "storageCrs": CRS84,
        "extent": {
            "spatial": spatial,
            **(
                {
                    "temporal": {
                        "interval": [list(interval)],
                        "trs": "http://www.opengis.net/def/uom/ISO-8601/0/Gregorian",
                    }
                }
                if interval
                else {}
            ),
        },
        "links": [
            {"href": f"{base}/collections/{cid}", "rel": "self", "type": "application/json"},
            {"href": f"{base}/collections/{cid}/items", "rel": "items", "type": GEOJSON},
            {
                "href": f"{base}/collections/{cid}/queryables",
                "rel": "http://www.opengis.net/def/rel/ogc/1.0/queryables",
                "type": SCHEMA_JSON,
            },
            {
                "href": f"{base}/collections/{cid}/tiles",
                "rel": "http://www.opengis.net/def/rel/ogc/1.0/tilesets-vector",
                "type": "application/json",
            },
        ],
    }


def _extent(store, user, cid: str) -> dict | None:
    """The collection's real extent, from the data (flags: those the caller may see)."""
    return store.extent(cid, user.scope() if cid == "flags" else None)


@router.get("/collections", summary="Feature collections", responses=BAD_PARAMETER)
def collections(request: Request, store: StoreDep, user: CurrentUser) -> dict:
    reject_unknown(request, ("f",))
    _format(request.query_params.get("f"))
    base = _base(request)
    return {
        "links": [{"href": f"{base}/collections", "rel": "self", "type": "application/json"}],
        "collections": [_collection(base, cid, _extent(store, user, cid)) for cid in COLLECTIONS],
    }


@router.get("/collections/{collection_id}", summary="One collection", responses=BAD_PARAMETER)
def collection(request: Request, collection_id: str, store: StoreDep, user: CurrentUser) -> dict:
    reject_unknown(request, ("f",))
    _format(request.query_params.get("f"))
    cid = _known(collection_id)
    return _collection(_base(request), cid, _extent(store, user, cid))


@router.get(
    "/collections/{collection_id}/queryables",
    summary="Queryable properties (JSON Schema)",
    response_class=JSONResponse,
    responses={200: {"content": {SCHEMA_JSON: {}}}, **BAD_PARAMETER},
)
def queryables(request: Request, collection_id: str, user: CurrentUser) -> Any:
    reject_unknown(request, ("f",))
    cid = _known(collection_id)
    return JSONResponse(cql.json_schema(cid, f"{_base(request)}/collections/{cid}/queryables"), media_type=SCHEMA_JSON)


def _flag_feature(f: dict, crs_uri: str, crs) -> dict:
    geom = f.pop("geometry")
    return {
        "type": "Feature",
        "id": f["id"],
        "geometry": shapely.geometry.mapping(_output(geom, crs_uri, crs)),
        "properties": f,
    }


_dumps = json.JSONEncoder(ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode  # as JSONResponse


_POLYGON = '{"type":"Polygon","coordinates":'


def _flag_features(rows: list[dict], crs_uri: str, crs) -> list[str]:
    """Flags as the texts of their GeoJSON features (what :func:`_flag_feature` gives, encoded):
    the geometries written by GEOS all at once, a page of 10,000 without a Python object per
    coordinate."""
    geoms = [r.pop("geometry") for r in rows]
    if crs_uri != CRS84:
        geoms = [_output(g, crs_uri, crs) for g in geoms]
    texts = shapely.to_geojson(np.array(geoms, dtype=object)).tolist() if geoms else []
    if crs_uri == CRS84:  # a Polygon as _output makes it: a MultiPolygon of one, the same coordinates
        texts = [
            f'{{"type":"MultiPolygon","coordinates":[{t[len(_POLYGON) : -1]}]}}' if t.startswith(_POLYGON) else t
            for t in texts
        ]
    return [
        f'{{"type":"Feature","id":{int(r["id"])},"geometry":{g},"properties":{_dumps(r)}}}'
        for r, g in zip(rows, texts, strict=True)
    ]


def _feature_collection(body: dict, headers: dict) -> Response:
    """A FeatureCollection whose features may be GeoJSON texts already (:func:`_flag_features`)."""
    features = body["features"]
    if not features or not isinstance(features[0], str):
        return _geojson(body, headers)
    rest = _dumps({k: v for k, v in body.items() if k not in ("type", "features")})
    text = '{"type":"FeatureCollection","features":[' + ",".join(features) + "]," + rest[1:]
    return Response(text.encode(), media_type=GEOJSON, headers=headers)


def _zone_feature(z: Zone, crs_uri: str, crs) -> dict:
    return {
        "type": "Feature",
        "id": z.id,
        "geometry": shapely.geometry.mapping(_output(z.geometry, crs_uri, crs)),
        "properties": z.properties(),
    }


def _box_shape(bbox: tuple):
    """A lon/lat bbox as the shape it is: a box, or the line or point a zero width or height
    leaves (what it may intersect)."""
    minx, miny, maxx, maxy = bbox
    if minx == maxx and miny == maxy:
        return shapely.Point(minx, miny)
    if minx == maxx or miny == maxy:
        return shapely.LineString([(minx, miny), (maxx, maxy)])
    return shapely.box(*bbox)


def _content_crs(uri: str) -> dict:
    return {"Content-Crs": f"<{uri}>"}


@router.get(
    "/collections/{collectionId}/items",
    summary="Features of a collection (GeoJSON)",
    response_class=JSONResponse,
    responses={200: {"content": {GEOJSON: {}}}, **BAD_PARAMETER},
)
def items(
    request: Request,
    collection_id: Annotated[str, Path(alias="collectionId")],
    store: StoreDep,
    user: CurrentUser,
    flt: FlagQuery,
    limit: Annotated[int, Query(ge=1, le=10_000, description="Page size.")] = 100,
    after: Annotated[
        int | None, Query(ge=0, le=MAX_ID, description="Keyset cursor: features with id > after (without sortby).")
    ] = None,
    offset: Annotated[int | None, Query(ge=0, le=10_000_000, description="Skip this many (with sortby).")] = None,
    crs: Annotated[str | None, Query(description=f"Output CRS: {', '.join(CRS_LIST)}.")] = None,
    bbox_crs: Annotated[str | None, Query(alias="bbox-crs", description="CRS of bbox (default CRS84).")] = None,
    filter: Annotated[str | None, Query(description="CQL2 filter (see /queryables).")] = None,
    filter_lang: FilterLang = None,
    filter_crs: FilterCrs = None,
    sortby: Annotated[str | None, Query(description="+name,-name over the queryables.")] = None,
    f: Annotated[str | None, Query(description="json (GeoJSON, the default).")] = None,
) -> Any:
    cid = _known(collection_id)
    reject_unknown(request, (*COMMON_PARAMS, *(FLAG_PARAMS if cid == "flags" else ZONE_PARAMS)))
    _format(f)
    crs_uri, out_crs = _crs(crs)
    bbox = _bbox(request.query_params.get("bbox"), bbox_crs)
    node = parse_filter(cid, filter, filter_lang, filter_crs)
    order = cql.parse_sortby(sortby, cid)
    if order and after is not None:
        raise BadParameterError("after pages in id order: with sortby, page with offset")
    rows: list[Any]  # flag rows or zones
    features: list[Any]  # GeoJSON feature texts (flags) or objects (zones)
    # a first page that holds every match has counted them: no count query
    whole = after is None and not offset
    if cid == "flags":
        scoped = replace(flt, bbox=bbox, cql=node, sortby=order)
        rows = store.flags(replace(scoped, limit=limit + 1, after_id=after, offset=offset))
        matched = len(rows) if whole and len(rows) <= limit else store.count_flags(scoped)
        features = _flag_features(rows[:limit], crs_uri, out_crs)  # GeoJSON texts
        last = rows[limit - 1]["id"] if len(rows) > limit else None
    else:
        zflt = ZoneFilter(region=_box_shape(bbox) if bbox is not None else None, cql=node, sortby=order)
        rows = store.zone_page(cid, replace(zflt, limit=limit + 1, offset=offset, after_id=after))
        matched = len(rows) if whole and len(rows) <= limit else store.count_zones(cid, zflt)
        features = [_zone_feature(z, crs_uri, out_crs) for z in rows[:limit]]
        last = features[-1]["id"] if features else None
    base = f"{_base(request)}/collections/{cid}/items"
    params = [(k, v) for k, v in request.query_params.multi_items() if k not in ("after", "limit", "offset")]
    links = [{"href": f"{base}?{urlencode(list(request.query_params.multi_items()))}", "rel": "self", "type": GEOJSON}]
    if len(rows) > limit:
        cursor = ("offset", (offset or 0) + limit) if order or offset is not None else ("after", last)
        links.append(
            {"href": f"{base}?{urlencode([*params, ('limit', limit), cursor])}", "rel": "next", "type": GEOJSON}
        )
    return _feature_collection(
        {
            "type": "FeatureCollection",
            "features": features,
            "numberMatched": matched,
            "numberReturned": len(features),
            "links": links,
        },
        _content_crs(crs_uri),
    )


@router.get(
    "/collections/{collectionId}/items/{featureId}",
    summary="One feature (GeoJSON)",
    response_class=JSONResponse,
    responses={200: {"content": {GEOJSON: {}}}, **BAD_PARAMETER},
)
def item(
    request: Request,
    collection_id: Annotated[str, Path(alias="collectionId")],
    feature_id: Annotated[int, Path(alias="featureId", ge=1, le=MAX_ID)],
    store: StoreDep,
    user: CurrentUser,
    crs: Annotated[str | None, Query(description=f"Output CRS: {', '.join(CRS_LIST)}.")] = None,
    f: Annotated[str | None, Query(description="json (GeoJSON, the default).")] = None,
) -> Any:
    cid = _known(collection_id)
    reject_unknown(request, ("crs", "f"))
    _format(f)
    crs_uri, out_crs = _crs(crs)
    if cid == "flags":
        flag = store.flag(feature_id)
        user.require_flag(flag)
        return _geojson(_flag_feature(flag, crs_uri, out_crs), _content_crs(crs_uri))
    return _geojson(_zone_feature(store.zone(cid, feature_id), crs_uri, out_crs), _content_crs(crs_uri))
