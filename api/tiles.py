"""OGC API – Tiles: vector tiles (MVT) of flags and protection layers on WebMercatorQuad.

Thin: parse the request, scope the filter to the caller (``Principal.scope``), ask
:mod:`redline.tiles` for the version, the ETag and the tile, answer. Empty tiles are 204.
"""

from __future__ import annotations

import gzip
from typing import Annotated, Literal
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Query, Request, Response

from redline import tiles as engine
from redline.errors import NotFoundError
from redline.store import FlagFilter

from .deps import CurrentUser, StoreDep
from .filters import FilterCrs, parse_filter
from .inputs import parse_datetime_interval
from .params import BAD_PARAMETER, reject_unknown
from .schemas import Activity, Severity, Status

router = APIRouter(tags=["tiles"])

MVT = "application/vnd.mapbox-vector-tile"
TMS_URI = "http://www.opengis.net/def/tilematrixset/OGC/1.0/WebMercatorQuad"
WEB_MERCATOR = "http://www.opengis.net/def/crs/EPSG/0/3857"
TILING_SCHEME = "http://www.opengis.net/def/rel/ogc/1.0/tiling-scheme"
# per principal (private); revalidated on every use, which costs a 304 while nothing changed
CACHE_CONTROL = "private, no-cache"
FLAG_PARAMS = ("status", "severity", "activity", "admin", "datetime")
CQL_PARAMS = ("filter", "filter-lang", "filter-crs")
FILTER_PARAMS = (*FLAG_PARAMS, *CQL_PARAMS)
GZIPPED = engine.TileCache(32 << 20)  # gzip-compressed tiles by database and ETag


def _base(request: Request) -> str:
    return str(request.base_url).rstrip("/")


def _collection(collection_id: str) -> str:
    if collection_id not in engine.COLLECTIONS:
        raise NotFoundError(f"no tiles for collection {collection_id!r}; there are: {', '.join(engine.COLLECTIONS)}")
    return collection_id


def _tms(tile_matrix_set_id: str) -> str:
    if tile_matrix_set_id != engine.TMS_ID:
        raise NotFoundError(f"no tile matrix set {tile_matrix_set_id!r}; there is: {engine.TMS_ID}")
    return tile_matrix_set_id


def tile_filter(
    user: CurrentUser,
    collection_id: str,
    status: Annotated[list[Status] | None, Query(description="Flag status (repeatable; flags only).")] = None,
    severity: Annotated[list[Severity] | None, Query(description="Severity (repeatable; flags only).")] = None,
    activity: Annotated[list[Activity] | None, Query(description="Activity type (repeatable; flags only).")] = None,
    admin: Annotated[list[str] | None, Query(description="Admin-unit code (repeatable; flags only).")] = None,
    datetime: Annotated[str | None, Query(description="RFC 3339 instant or interval (flags only).")] = None,
    filter: Annotated[str | None, Query(description="CQL2 filter over the collection's queryables.")] = None,
    filter_lang: Annotated[
        str | None, Query(alias="filter-lang", description="cql2-text (default) or cql2-json.")
    ] = None,
    filter_crs: FilterCrs = None,
) -> FlagFilter:
    since, until = parse_datetime_interval(datetime)
    where = parse_filter(_collection(collection_id), filter, filter_lang, filter_crs)
    return user.scope(
        FlagFilter(
            status=status, severity=severity, activity=activity, admin_code=admin, since=since, until=until, cql=where
        )
    )


TileFilter = Annotated[FlagFilter, Depends(tile_filter)]


@router.get("/tileMatrixSets", summary="Tile matrix sets", responses=BAD_PARAMETER)
def tile_matrix_sets(request: Request, user: CurrentUser) -> dict:
    reject_unknown(request, ())
    base = _base(request)
    return {
        "tileMatrixSets": [
            {
                "id": engine.TMS_ID,
                "title": engine.TMS.title,
                "uri": TMS_URI,
                "crs": WEB_MERCATOR,
                "links": [
                    {
                        "href": f"{base}/tileMatrixSets/{engine.TMS_ID}",
                        "rel": "self",
                        "type": "application/json",
                        "title": engine.TMS_ID,
                    }
                ],
            }
        ]
    }


@router.get("/tileMatrixSets/{tile_matrix_set_id}", summary="One tile matrix set (OGC 2DTMS)", responses=BAD_PARAMETER)
def tile_matrix_set(request: Request, tile_matrix_set_id: str, user: CurrentUser) -> dict:
    reject_unknown(request, ())
    _tms(tile_matrix_set_id)
    return engine.tile_matrix_set()


def _params(cid: str) -> tuple[str, ...]:
    """The filter parameters a collection's tiles take: the flag filters are for flags only."""
    return FILTER_PARAMS if cid == "flags" else CQL_PARAMS


def _template(base: str, cid: str, query: str) -> str:
    url = f"{base}/collections/{cid}/tiles/{engine.TMS_ID}/{{tileMatrix}}/{{tileRow}}/{{tileCol}}"
    return url + (f"?{query}" if query else "")


def _filter_query(request: Request) -> str:
    return urlencode([(k, v) for k, v in request.query_params.multi_items() if k in FILTER_PARAMS])


def _fields(cid: str) -> dict:
    names = engine.FLAG_PROPERTIES if cid == "flags" else engine.ZONE_PROPERTIES
    out = {n: ("Number" if n in ("id", "area_ha") else "String") for n in names}
    if cid == "flags":
        out["pixel_flags"] = f"Number (points, below zoom {engine.FLAG_POINT_ZOOM}): flags sharing the pixel"
    return out


def _tileset(request: Request, cid: str) -> dict:
    base = _base(request)
    query = _filter_query(request)
    lo, hi = engine.zoom_limits(cid)
    template = _template(base, cid, query)
    tilejson = template.replace("{tileMatrix}", "{z}").replace("{tileRow}", "{y}").replace("{tileCol}", "{x}")
    geometry = (
        f"points below zoom {engine.FLAG_POINT_ZOOM} (thinned to one per pixel), polygons from it on"
        if cid == "flags"
        else "polygons"
    )
    self_url = f"{base}/collections/{cid}/tiles/{engine.TMS_ID}" + (f"?{query}" if query else "")
    return {
        "title": f"{cid} vector tiles",
        "description": f"{engine.COLLECTIONS[cid]}. One MVT layer named {cid!r}: {geometry}. Empty tiles answer 204.",
        "dataType": "vector",
        "crs": WEB_MERCATOR,
        "tileMatrixSetURI": TMS_URI,
        "tileMatrixSetLimits": [
            {
                "tileMatrix": str(z),
                "minTileRow": 0,
                "maxTileRow": (1 << z) - 1,
                "minTileCol": 0,
                "maxTileCol": (1 << z) - 1,
            }
            for z in range(lo, hi + 1)
        ],
        "layers": [
            {
                "id": cid,
                "dataType": "vector",
                "geometryDimension": 2,
                "minTileMatrix": str(lo),
                "maxTileMatrix": str(hi),
                "propertiesSchema": {
                    "type": "object",
                    "properties": {
                        k: {"type": "integer" if k == "id" else "number" if v.startswith("Number") else "string"}
                        for k, v in _fields(cid).items()
                    },
                },
            }
        ],
        "links": [
            {"href": self_url, "rel": "self", "type": "application/json"},
            {"href": f"{base}/tileMatrixSets/{engine.TMS_ID}", "rel": TILING_SCHEME, "type": "application/json"},
            {"href": f"{base}/collections/{cid}", "rel": "collection", "type": "application/json"},
            {"href": template, "rel": "item", "type": MVT, "templated": True},
        ],
        # TileJSON 3.0 members, so that MapLibre/Mapbox GL can use this document as a source URL
        "tilejson": "3.0.0",
        "tiles": [tilejson],
        "minzoom": lo,
        "maxzoom": hi,
        "scheme": "xyz",
        "vector_layers": [{"id": cid, "fields": _fields(cid), "minzoom": lo, "maxzoom": hi}],
    }


@router.get("/collections/{collection_id}/tiles", summary="Tilesets of a collection", responses=BAD_PARAMETER)
def tilesets(request: Request, collection_id: str, user: CurrentUser) -> dict:
    cid = _collection(collection_id)
    reject_unknown(request, _params(cid))
    one = _tileset(request, cid)
    return {
        "tilesets": [
            {k: one[k] for k in ("title", "dataType", "crs", "tileMatrixSetURI")}
            | {"links": [dict(one["links"][0], rel="self"), one["links"][1]]}
        ]
    }


@router.get(
    "/collections/{collection_id}/tiles/{tile_matrix_set_id}",
    summary="Tileset metadata (OGC API – Tiles, and TileJSON 3.0)",
    responses=BAD_PARAMETER,
)
def tileset(request: Request, collection_id: str, tile_matrix_set_id: str, user: CurrentUser) -> dict:
    cid = _collection(collection_id)
    reject_unknown(request, _params(cid))
    _tms(tile_matrix_set_id)
    return _tileset(request, cid)


def _matches(if_none_match: str | None, tag: str) -> bool:
    if not if_none_match:
        return False
    tags = [t.strip().removeprefix("W/") for t in if_none_match.split(",")]
    return "*" in tags or tag in tags


@router.get(
    "/collections/{collection_id}/tiles/{tile_matrix_set_id}/{tile_matrix}/{tile_row}/{tile_col}",
    summary="One vector tile (MVT)",
    response_class=Response,
    responses={
        200: {"content": {MVT: {}}, "description": "The tile"},
        204: {"description": "No feature in this tile"},
        304: {"description": "Not modified (If-None-Match)"},
        **BAD_PARAMETER,
    },
)
def tile(
    request: Request,
    collection_id: str,
    tile_matrix_set_id: str,
    tile_matrix: int,
    tile_row: int,
    tile_col: int,
    store: StoreDep,
    flt: TileFilter,
    f: Annotated[Literal["mvt"] | None, Query(description="Format: mvt (the only one).")] = None,
) -> Response:
    cid = _collection(collection_id)
    reject_unknown(request, ("f", *_params(cid)))
    _tms(tile_matrix_set_id)
    ref = engine.TileRef(tile_matrix, tile_col, tile_row)
    version = engine.data_version(store, cid)
    headers = {"Cache-Control": CACHE_CONTROL, "Vary": "Authorization"}
    if version is not None:
        headers["ETag"] = engine.etag(cid, ref, flt, version)
        if _matches(request.headers.get("if-none-match"), headers["ETag"]):
            return Response(status_code=304, headers=headers)
    body = engine.render(store, cid, ref, flt, version=version)
    if version is None:
        headers["ETag"] = engine.etag(cid, ref, flt, None, body)
        if _matches(request.headers.get("if-none-match"), headers["ETag"]):
            return Response(status_code=304, headers=headers)
    if not body:
        return Response(status_code=204, headers=headers)
    headers["Vary"] = "Authorization, Accept-Encoding"
    if len(body) >= request.app.state.settings.gzip_min_bytes and "gzip" in request.headers.get("accept-encoding", ""):
        # compressed once per tile and data version, not per request by the gzip middleware
        key = (store.identity, headers["ETag"])  # an ETag names the data version, not the database
        packed = GZIPPED.get(key)
        if packed is None:
            packed = gzip.compress(body, 6)
            GZIPPED.put(key, packed)
        return Response(packed, media_type=MVT, headers={**headers, "Content-Encoding": "gzip"})
    return Response(body, media_type=MVT, headers=headers)
