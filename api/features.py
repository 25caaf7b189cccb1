"""OGC API – Features (Part 1, core + GeoJSON): flags, red lines and reserve zones."""

from __future__ import annotations

from dataclasses import replace
from typing import Annotated, Any
from urllib.parse import urlencode

import shapely
from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse

from redline.errors import NotFoundError

from .deps import CurrentUser, StoreDep
from .filters import FlagQuery
from .schemas import MAX_ID, Id

router = APIRouter(tags=["features"])

GEOJSON = "application/geo+json"
CRS84 = "http://www.opengis.net/def/crs/OGC/1.3/CRS84"
CONFORMANCE = [
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/core",
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/geojson",
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/oas30",
]
COLLECTIONS = {
    "flags": "Flags: persistent human-activity conflicts with red lines and reserve zones",
    "redline": "Ecological protection red lines (current layer version)",
    "reserve": "Nature-reserve zones (current layer version)",
}
ZONE_FIELDS = ("name", "regime", "code", "area_ha")


def _base(request: Request) -> str:
    return str(request.base_url).rstrip("/")


def _geojson(body: dict) -> JSONResponse:
    return JSONResponse(body, media_type=GEOJSON)


@router.get("/", summary="Landing page")
def landing(request: Request) -> dict:
    base = _base(request)
    return {
        "title": "redline",
        "description": "Ecological red-line supervision: flags, red lines and reserve zones",
        "links": [
            {"href": f"{base}/", "rel": "self", "type": "application/json", "title": "this document"},
            {"href": f"{base}/openapi.json", "rel": "service-desc", "type": "application/vnd.oai.openapi+json;version=3.0"},
            {"href": f"{base}/docs", "rel": "service-doc", "type": "text/html"},
            {"href": f"{base}/conformance", "rel": "conformance", "type": "application/json"},
            {"href": f"{base}/collections", "rel": "data", "type": "application/json"},
        ],
    }


@router.get("/conformance", summary="Conformance classes")
def conformance() -> dict:
    return {"conformsTo": CONFORMANCE}


def _collection(base: str, cid: str, bbox=None, interval=None) -> dict:
    return {
        "id": cid,
        "title": cid,
        "description": COLLECTIONS[cid],
        "itemType": "feature",
        "crs": [CRS84],
        "extent": {"spatial": {"bbox": [list(bbox or (-180, -90, 180, 90))], "crs": CRS84},
                   **({"temporal": {"interval": [list(interval)]}} if interval else {})},
        "links": [
            {"href": f"{base}/collections/{cid}", "rel": "self", "type": "application/json"},
            {"href": f"{base}/collections/{cid}/items", "rel": "items", "type": GEOJSON},
        ],
    }


@router.get("/collections", summary="Feature collections")
def collections(request: Request, user: CurrentUser) -> dict:
    base = _base(request)
    return {
        "links": [{"href": f"{base}/collections", "rel": "self", "type": "application/json"}],
        "collections": [_collection(base, cid) for cid in COLLECTIONS],
    }


@router.get("/collections/{collection_id}", summary="One collection")
def collection(request: Request, collection_id: str, user: CurrentUser) -> dict:
    if collection_id not in COLLECTIONS:
        raise NotFoundError(f"no collection {collection_id!r}; there are: {', '.join(COLLECTIONS)}")
    return _collection(_base(request), collection_id)


def _flag_feature(f: dict) -> dict:
    geom = f.pop("geometry")
    return {"type": "Feature", "id": f["id"], "geometry": shapely.geometry.mapping(geom), "properties": f}


def _zone_feature(z) -> dict:
    props = {k: getattr(z, k) for k in ZONE_FIELDS}
    props.update(layer=z.kind, layer_version=z.attrs.get("layer_version"),
                 **{k: v for k, v in z.attrs.items() if k != "layer_version"})
    return {"type": "Feature", "id": z.id, "geometry": shapely.geometry.mapping(z.geometry), "properties": props}


@router.get("/collections/{collection_id}/items", summary="Features of a collection (GeoJSON)",
            response_class=JSONResponse, responses={200: {"content": {GEOJSON: {}}}})
def items(
    request: Request, collection_id: str, store: StoreDep, user: CurrentUser, flt: FlagQuery,
    limit: Annotated[int, Query(ge=1, le=10_000, description="Page size.")] = 100,
    after: Annotated[int | None, Query(ge=0, le=MAX_ID, description="Keyset cursor: features with id > after.")] = None,
) -> Any:
    if collection_id not in COLLECTIONS:
        raise NotFoundError(f"no collection {collection_id!r}; there are: {', '.join(COLLECTIONS)}")
    if collection_id == "flags":
        matched = store.count_flags(flt)
        page = replace(flt, limit=limit + 1, after_id=after)
        rows = store.flags(page)
        features = [_flag_feature(f) for f in rows[:limit]]
    else:
        zones = [z for z in store.zones((collection_id,), bbox=flt.bbox)
                 if flt.bbox is None or shapely.intersects(z.geometry, shapely.box(*flt.bbox))]
        matched = len(zones)
        rows = [z for z in zones if after is None or z.id > after][: limit + 1]
        features = [_zone_feature(z) for z in rows[:limit]]
    base = f"{_base(request)}/collections/{collection_id}/items"
    params = [(k, v) for k, v in request.query_params.multi_items() if k not in ("after", "limit")]
    links = [{"href": f"{base}?{urlencode(list(request.query_params.multi_items()))}", "rel": "self", "type": GEOJSON}]
    if len(rows) > limit:
        cursor = features[-1]["id"]
        links.append({"href": f"{base}?{urlencode([*params, ('limit', limit), ('after', cursor)])}",
                      "rel": "next", "type": GEOJSON})
    return _geojson({"type": "FeatureCollection", "features": features, "numberMatched": matched,
                     "numberReturned": len(features), "links": links})


@router.get("/collections/{collection_id}/items/{feature_id}", summary="One feature (GeoJSON)",
            response_class=JSONResponse, responses={200: {"content": {GEOJSON: {}}}})
def item(collection_id: str, feature_id: Id, store: StoreDep, user: CurrentUser) -> Any:
    if collection_id == "flags":
        flag = store.flag(feature_id)
        user.require_flag(flag)
        return _geojson(_flag_feature(flag))
    if collection_id not in COLLECTIONS:
        raise NotFoundError(f"no collection {collection_id!r}")
    for z in store.zones((collection_id,)):
        if z.id == feature_id:
            return _geojson(_zone_feature(z))
    raise NotFoundError(f"{collection_id} feature {feature_id} does not exist")
