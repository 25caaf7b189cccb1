"""Access control, table-driven from the app's own route list.

Every endpoint × (no token, malformed token, revoked token, wrong role, inspector of another
jurisdiction, inspector with an empty jurisdiction). ``ROWS`` holds one row per route of the app;
``test_every_route_has_a_row`` fails when an endpoint is added without one, so nobody can add an
endpoint without saying who may call it. Every refusal must be ``application/problem+json``, be
declared in the OpenAPI document, and leave the store (and the evidence folder) unchanged.
"""

from __future__ import annotations

import csv
import hashlib
import json
import secrets
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field

import mapbox_vector_tile
import morecantile
import pytest
import shapely

from redline.auth import OPERATOR, create_token
from redline.jobs import new_job
from redline.notify import new_subscription
from redline.store import open_store
from redline.workflow import move

from .conftest import XIN, YIHE, assert_problem

ROLES = ("viewer", "inspector", "analyst", "admin")
PUBLIC = None  # a row's ``roles`` for endpoints that need no token
JPEG = b"\xff\xd8\xff\xe0" + b"\x00" * 64
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64
TABLES = (
    "flags",
    "observations",
    "conflicts",
    "audit",
    "evidence",
    "jobs",
    "tokens",
    "scans",
    "subscriptions",
    "deliveries",
    "leads",
)


@dataclass(frozen=True)
class Row:
    """One endpoint: who is admitted, what it is about, and how to call it.

    ``scope``: "flag" (one flag: an inspector of another township is refused), "list" (lists
    flags: an inspector sees only their township), "none" (not about flags).
    ``call(w)`` gives request arguments that would *do* the thing (a write for a write endpoint):
    used for every case that must be refused. ``harmless(w)`` gives arguments that an admitted
    caller may send without changing anything (an illegal move, a bad file), answered ``ok``.
    """

    method: str
    path: str
    roles: tuple[str, ...] | None
    scope: str = "none"
    call: Callable[[dict], dict] = field(default=lambda w: {}, repr=False)
    harmless: Callable[[dict], dict] | None = field(default=None, repr=False)
    ok: int = 200

    @property
    def id(self) -> str:
        return f"{self.method} {self.path}"

    def request(self, w: dict, harmless: bool = False) -> dict:
        kwargs = (self.harmless if harmless and self.harmless else self.call)(w)
        return {"method": self.method, "url": kwargs.pop("url", self.path), **kwargs}


def _get(url: Callable[[dict], str]) -> Callable[[dict], dict]:
    return lambda w: {"url": url(w)}


ROWS = (
    # the service and its documents: public
    Row("GET", "/health", PUBLIC),
    Row("GET", "/ready", PUBLIC),
    Row("GET", "/", PUBLIC),
    Row("GET", "/conformance", PUBLIC),
    Row("GET", "/openapi.json", PUBLIC),
    Row("GET", "/docs", PUBLIC),
    Row("GET", "/static/docs/{name}", PUBLIC, call=_get(lambda w: "/static/docs/swagger-ui.css")),
    Row("GET", "/redoc", PUBLIC),
    # the web app (api/webapp.py): its built files and settings are public; /me needs a token
    Row("GET", "/app/config.json", PUBLIC),
    Row("GET", "/app/{path:path}", PUBLIC, call=_get(lambda w: "/app/index.html")),
    Row("GET", "/me", ROLES),
    # OGC API - Features
    Row("GET", "/collections", ROLES),
    Row("GET", "/collections/{collection_id}", ROLES, call=_get(lambda w: "/collections/flags")),
    Row(
        "GET",
        "/collections/{collectionId}/items",
        ROLES,
        "list",
        call=_get(lambda w: "/collections/flags/items?limit=1000"),
    ),
    Row(
        "GET",
        "/collections/{collectionId}/items/{featureId}",
        ROLES,
        "flag",
        call=_get(lambda w: f"/collections/flags/items/{w['xin']}"),
    ),
    Row("GET", "/collections/{collection_id}/queryables", ROLES, call=_get(lambda w: "/collections/flags/queryables")),
    # OGC API - Tiles (the flag tile at zoom 11 that holds every flag of the scenario: polygons)
    Row("GET", "/tileMatrixSets", ROLES),
    Row("GET", "/tileMatrixSets/{tile_matrix_set_id}", ROLES, call=_get(lambda w: "/tileMatrixSets/WebMercatorQuad")),
    Row("GET", "/collections/{collection_id}/tiles", ROLES, call=_get(lambda w: "/collections/flags/tiles")),
    Row(
        "GET",
        "/collections/{collection_id}/tiles/{tile_matrix_set_id}",
        ROLES,
        call=_get(lambda w: "/collections/flags/tiles/WebMercatorQuad"),
    ),
    Row(
        "GET",
        "/collections/{collection_id}/tiles/{tile_matrix_set_id}/{tile_matrix}/{tile_row}/{tile_col}",
        ROLES,
        "list",
        call=_get(lambda w: w["tile"]),
    ),
    # inspectors
    Row("POST", "/checks", ROLES, "list", call=lambda w: {"json": w["region"]}),
    Row("POST", "/screenings", ROLES, call=lambda w: {"json": {"footprint": w["region"], "activity": "mining"}}),
    # workflow
    Row("GET", "/flags/{flag_id}", ROLES, "flag", call=_get(lambda w: f"/flags/{w['xin']}")),
    Row(
        "PATCH",
        "/flags/{flag_id}",
        ("inspector", "admin"),
        "flag",
        call=lambda w: {"url": f"/flags/{w['xin']}", "json": {"status": "dispatched", "note": "on my way"}},
        harmless=lambda w: {"url": f"/flags/{w['xin']}", "json": {"status": "closed"}},
        ok=409,
    ),
    Row("GET", "/flags/{flag_id}/history", ROLES, "flag", call=_get(lambda w: f"/flags/{w['xin']}/history")),
    Row("GET", "/flags/{flag_id}/report", ROLES, "flag", call=_get(lambda w: f"/flags/{w['xin']}/report?f=html")),
    Row(
        "POST",
        "/flags/{flag_id}/evidence",
        ("inspector", "admin"),
        "flag",
        call=lambda w: {
            "url": f"/flags/{w['xin']}/evidence",
            "files": {"file": ("site.jpg", JPEG, "image/jpeg")},
            "data": {"note": "excavator"},
        },
        harmless=lambda w: {"url": f"/flags/{w['xin']}/evidence", "files": {"file": ("x.html", b"<html>")}},
        ok=422,
    ),
    Row("GET", "/flags/{flag_id}/evidence", ROLES, "flag", call=_get(lambda w: f"/flags/{w['xin']}/evidence")),
    Row("GET", "/evidence/{evidence_id}", ROLES, "flag", call=_get(lambda w: f"/evidence/{w['evidence_xin']}")),
    # analysts
    Row("GET", "/exports", ("analyst", "admin"), "list", call=_get(lambda w: "/exports?format=geojson")),
    Row("GET", "/stats", ROLES, "list", call=_get(lambda w: "/stats?group_by=region")),
    # field packets (api/packets.py): inspectors and admins, the jurisdiction's flags only
    Row("GET", "/packet", ("inspector", "admin"), "list", call=_get(lambda w: "/packet?sheets=false")),
    # the rectification ledger (one problem in each township: see ``world``)
    Row("GET", "/ledger", ROLES, "list", call=_get(lambda w: "/ledger")),
    Row(
        "POST",
        "/flags/{flag_id}/ledger/notes",
        ("inspector", "admin"),
        "flag",
        call=lambda w: {"url": f"/flags/{w['ledger_xin']}/ledger/notes", "json": {"note": "half filled"}},
        harmless=lambda w: {"url": f"/flags/{w['ledger_xin']}/ledger/notes", "json": {"note": ""}},
        ok=422,
    ),
    # ground reports: inspectors inside their jurisdiction (a place in XIN), admins anywhere
    Row(
        "POST",
        "/reports/ground",
        ("inspector", "admin"),
        "flag",
        call=lambda w: {
            "data": {"geometry": w["xin_point"], "activity": "mining", "note": "excavators"},
            "files": {"photos": ("site.jpg", JPEG, "image/jpeg")},
        },
        harmless=lambda w: {
            "data": {"geometry": w["xin_point"], "activity": "mining", "note": "x"},
            "files": {"photos": ("x.html", b"<html>")},
        },
        ok=422,
    ),
    # national leads (api/leads.py): imported by inspectors and admins (an inspector's leads outside
    # their jurisdiction are refused row by row: tests/api/test_leads_api.py), results read by all
    Row(
        "POST",
        "/leads",
        ("inspector", "admin"),
        call=lambda w: {"data": {"batch": "access"}, "files": {"file": ("leads.csv", w["leads_csv"])}},
        harmless=lambda w: {"data": {"batch": "access"}, "files": {"file": ("x.png", PNG)}},
        ok=422,
    ),
    Row("GET", "/leads/{batch}", ROLES, call=_get(lambda w: "/leads/never-imported?f=csv"), ok=404),
    # scans
    Row(
        "POST",
        "/scans",
        ("admin",),
        call=lambda w: {
            "json": {
                "product": "again.tif",
                "class_table": "change_classes.csv",
                "acquired_after": "2026-06-21",
                "product_id": "again",
            }
        },
        harmless=lambda w: {"json": {"product": "missing.tif", "acquired_after": "2026-06-21"}},
        ok=404,
    ),
    Row("GET", "/jobs/{job_id}", ROLES, call=_get(lambda w: f"/jobs/{w['job']}")),
    # OGC API - Processes (the world's job is only accepted: its results are not ready, 404)
    Row("GET", "/processes", ROLES),
    Row("GET", "/processes/{process_id}", ROLES, call=_get(lambda w: "/processes/scan")),
    Row(
        "POST",
        "/processes/scan/execution",
        ("admin",),
        call=lambda w: {
            "json": {
                "inputs": {
                    "product": "again.tif",
                    "class_table": "change_classes.csv",
                    "acquired_after": "2026-06-21",
                    "product_id": "again",
                }
            }
        },
        harmless=lambda w: {"json": {"inputs": {"product": "missing.tif", "acquired_after": "2026-06-21"}}},
        ok=404,
    ),
    Row("GET", "/jobs", ROLES),
    Row("GET", "/jobs/{job_id}/results", ROLES, call=_get(lambda w: f"/jobs/{w['job']}/results"), ok=404),
    # area subscriptions (redline.notify): inspectors within their jurisdiction, admins all
    Row("GET", "/subscriptions", ("inspector", "admin")),
    Row(
        "POST",
        "/subscriptions",
        ("inspector", "admin"),
        call=lambda w: {"json": {"name": "new-hook", "admin_codes": [XIN], "webhook": "https://hooks.example.cn/x"}},
        harmless=lambda w: {"json": {"name": "bad", "region": w["region"], "webhook": "ftp://hooks.example.cn/x"}},
        ok=422,
    ),
    Row(
        "DELETE",
        "/subscriptions/{name}",
        ("inspector", "admin"),
        call=_get(lambda w: "/subscriptions/doomed"),
        harmless=_get(lambda w: "/subscriptions/no-such-subscription"),
        ok=404,
    ),
    Row("GET", "/deliveries", ("inspector", "admin")),
)
PROTECTED = [r for r in ROWS if r.roles is not PUBLIC]


def _hash(token: str) -> str:  # as stored: sha256 of the token (independent of redline.auth)
    return hashlib.sha256(token.encode()).hexdigest()


def _bearer(token: str) -> dict:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture(scope="module")
def world(env):
    """Ids and tokens the rows need: a XIN flag in status new, evidence on a XIN and on the YIHE
    flag, a job, a revoked admin token, inspector rows with an empty jurisdiction, a product."""
    client, admin = env["client"], _bearer(env["tokens"]["admin"])
    flags = client.get("/collections/flags/items?limit=1000", headers=admin).json()["features"]
    by_unit = {code: sorted(f["id"] for f in flags if f["properties"]["admin_code"] == code) for code in (XIN, YIHE)}
    assert by_unit[XIN] and by_unit[YIHE], "the scenario has flags in both townships"
    xin = next(f["id"] for f in flags if f["properties"]["admin_code"] == XIN and f["properties"]["status"] == "new")
    evidence = {}
    for name, fid in (("evidence_xin", xin), ("evidence_yihe", by_unit[YIHE][0])):
        r = client.post(f"/flags/{fid}/evidence", headers=admin, files={"file": ("a.jpg", JPEG, "image/jpeg")})
        assert r.status_code == 201, r.text
        evidence[name] = r.json()["id"]
    bounds = shapely.MultiPolygon([shapely.geometry.shape(f["geometry"]).buffer(0.001).envelope for f in flags]).bounds
    region = shapely.geometry.mapping(shapely.box(*bounds).buffer(0.01, join_style="mitre"))
    tokens = {"empty": f"rl_{secrets.token_urlsafe(32)}", "blank": f"rl_{secrets.token_urlsafe(32)}"}
    store = open_store(env["url"])
    try:
        job = new_job(store, "scan", {"product": "x.tif"}, "root")
        tokens["revoked"] = create_token(store, "gone", "admin")
        gone = next(t["id"] for t in store.tokens() if t["name"] == "gone")
        store.revoke_token(gone)
        # written around create_token, which refuses them: must never mean "everywhere"
        store.add_token("nowhere", "inspector", [], _hash(tokens["empty"]))
        store.add_token("blanks", "inspector", ["", "  "], _hash(tokens["blank"]))
        store.add_subscription(new_subscription(OPERATOR, "doomed", admin_codes=[XIN], email="a@example.cn"))
        # one problem on the rectification ledger in each township (GET /ledger)
        ledger_xin = next(i for i in by_unit[XIN] if i != xin)
        for fid in (ledger_xin, by_unit[YIHE][0]):
            for to in ("dispatched", "verified_violation"):
                move(store, fid, to, "root")
    finally:
        store.close()
    shutil.copy(env["out"] / "change_2026-06.tif", env["settings"].data_dir / "again.tif")
    centre = shapely.box(*bounds).centroid
    t = morecantile.tms.get("WebMercatorQuad").tile(centre.x, centre.y, 11)
    tile = f"/collections/flags/tiles/WebMercatorQuad/{t.z}/{t.y}/{t.x}"
    # a place in XIN clear of every flag (the sample lead XS-2026-0003, in a red line)
    with (env["out"] / "national_leads.csv").open(encoding="utf-8") as f:
        lead = next(r for r in csv.DictReader(f) if r["线索编号"] == "XS-2026-0003")
    xin_point = json.dumps({"type": "Point", "coordinates": [float(lead["经度"]), float(lead["纬度"])]})
    return {
        "xin": xin,
        "ledger_xin": ledger_xin,
        "xin_point": xin_point,
        "leads_csv": (env["out"] / "national_leads.csv").read_bytes(),
        "flags": by_unit,
        "job": job,
        "region": region,
        "tokens": tokens,
        "tile": tile,
        **evidence,
    }


def snapshot(env) -> dict:
    """Every row of the tables a request could write, and every file in the evidence folder."""
    store = open_store(env["url"])
    try:
        if hasattr(store, "db"):  # SQLite
            rows = {t: [tuple(r) for r in store.db.execute(f"SELECT * FROM {t} ORDER BY 1")] for t in TABLES}
        else:  # PostGIS
            rows = {
                t: [tuple(sorted(r.items())) for r in store.conn.execute(f"SELECT * FROM {t} ORDER BY 1")]
                for t in TABLES
            }
    finally:
        store.close()
    root = env["settings"].evidence_dir
    rows["files"] = sorted(str(p.relative_to(root)) for p in root.rglob("*"))
    return rows


def refused(env, row: Row, response, status: int, *fragments: str, before: dict | None = None) -> None:
    """A refusal: the status, problem+json, declared in the OpenAPI document, nothing written."""
    assert_problem(response, status, *fragments)
    if status == 401:
        assert response.headers["www-authenticate"] == "Bearer"
    doc = env["app"].openapi()
    declared = doc["paths"][row.path][row.method.lower()]["responses"]
    assert str(status) in declared, f"{row.id} answers {status} but its OpenAPI responses are {sorted(declared)}"
    assert "application/problem+json" in declared[str(status)]["content"]
    if before is not None:
        assert snapshot(env) == before, f"{row.id}: a refused request changed the store"


def send(client, row: Row, w: dict, headers: dict | None = None, harmless: bool = False):
    return client.request(**row.request(w, harmless), headers=headers or {})


def admin_codes(env, row: Row, response) -> list[str]:
    """The township of every flag a listing answered."""
    if row.path == "/checks":
        body = response.json()
        s = body["summary"]
        assert s["flags"] == len(body["flags"]) == sum(s["by_status"].values())
        assert sum(s["by_severity"].values()) == s["conflicts"] <= s["flags"]
        return [f["admin_code"] for f in body["flags"]]
    if row.path == "/stats":
        return [g["admin_code"] for g in response.json()["groups"]]
    if row.path == "/ledger":
        return [r["admin_code"] for r in response.json()["items"]]
    if row.path == "/packet":  # a zip: the flags layer of its GeoPackage
        import io
        import warnings
        import zipfile

        import pyogrio

        with zipfile.ZipFile(io.BytesIO(response.content)) as z:
            gpkg = z.read("flags.gpkg")
        with warnings.catch_warnings():  # GDAL: an in-memory GeoPackage has no .gpkg name
            warnings.simplefilter("ignore", RuntimeWarning)
            return list(pyogrio.read_dataframe(io.BytesIO(gpkg), layer="flags")["admin_code"])
    if "/tiles/" in row.path:  # a vector tile: its flags' units, in id order
        layers = mapbox_vector_tile.decode(response.content) if response.content else {}
        return [
            f["properties"]["admin_code"]
            for f in sorted(layers.get("flags", {}).get("features", []), key=lambda f: f["id"])
        ]
    return [f["properties"]["admin_code"] for f in response.json()["features"]]  # items, geojson export


# --- the table covers the app ------------------------------------------------------------


def _app_routes(app) -> set[tuple[str, str]]:
    try:  # FastAPI >= 0.120 keeps included routers unflattened
        from fastapi.routing import iter_route_contexts

        routes = [c.original_route for c in iter_route_contexts(app.routes)]
    except ImportError:
        routes = list(app.routes)
    return {(m, r.path) for r in routes for m in (getattr(r, "methods", None) or ()) if m != "HEAD"}


def test_every_route_has_a_row(env):
    routes = _app_routes(env["app"])
    rows = {(r.method, r.path) for r in ROWS}
    assert len(rows) == len(ROWS), "one row per endpoint"
    assert routes - rows == set(), "endpoints without an access row: add them to ROWS"
    assert rows - routes == set(), "rows for endpoints the app no longer has"


# --- the matrix ----------------------------------------------------------------------------


@pytest.mark.parametrize("row", ROWS, ids=lambda r: r.id)
def test_no_token(env, world, row):
    client = env["client"]
    if row.roles is PUBLIC:
        assert send(client, row, world).status_code == 200
        return
    before = snapshot(env)
    refused(env, row, send(client, row, world), 401, "missing bearer token", before=before)


def _malformed(env) -> list[dict]:
    good = env["tokens"]["admin"]
    return [
        {"Authorization": "Bearer"},
        {"Authorization": "Bearer "},
        {"Authorization": f"Basic {good}"},
        {"Authorization": f"Token {good}"},
        {"Authorization": good},
        {"Authorization": f"Bearer {good}x"},
        {"Authorization": f"Bearer {good[:-1]}"},
        {"Authorization": f"Bearer {good.upper()}"},
        {"Authorization": f"Bearer {good} {good}"},
        {"Authorization": "Bearer rl_' OR '1'='1"},
        {"Authorization": "Bearer " + "A" * 8000},
        {"Authorization": f"Bearer {_hash(good)}"},  # the stored hash is not a token
    ]


@pytest.mark.parametrize("row", PROTECTED, ids=lambda r: r.id)
def test_malformed_token(env, world, row):
    before = snapshot(env)
    for headers in _malformed(env):
        r = send(env["client"], row, world, headers)
        refused(env, row, r, 401)
    assert snapshot(env) == before


@pytest.mark.parametrize("row", PROTECTED, ids=lambda r: r.id)
def test_revoked_token(env, world, row):
    before = snapshot(env)
    refused(
        env,
        row,
        send(env["client"], row, world, _bearer(world["tokens"]["revoked"])),
        401,
        "invalid or revoked",
        before=before,
    )


@pytest.mark.parametrize("row", PROTECTED, ids=lambda r: r.id)
def test_roles(env, world, row, auth):
    """Roles outside the row are refused (and write nothing); roles in it are admitted."""
    client = env["client"]
    for role in ROLES:
        if role in row.roles:
            r = send(client, row, world, auth(role), harmless=True)
            assert r.status_code == row.ok, (role, r.text)
        else:
            before = snapshot(env)
            refused(env, row, send(client, row, world, auth(role)), 403, f"role {role} may not", before=before)


@pytest.mark.parametrize("row", PROTECTED, ids=lambda r: r.id)
def test_inspector_of_another_jurisdiction(env, world, row, auth):
    """The YIHE inspector on a XIN flag is refused; a listing shows them YIHE flags only."""
    client, headers = env["client"], auth("inspector_yihe")
    if "inspector" not in row.roles:
        before = snapshot(env)
        refused(env, row, send(client, row, world, headers), 403, "may not", before=before)
    elif row.scope == "flag":
        before = snapshot(env)
        refused(env, row, send(client, row, world, headers), 403, "outside your jurisdiction", before=before)
    elif row.scope == "list":
        r = send(client, row, world, headers)
        assert r.status_code == 200, r.text
        codes = admin_codes(env, row, r)
        assert codes and set(codes) == {YIHE}, f"{row.id} shows the YIHE inspector flags of {set(codes)}"
    else:
        assert send(client, row, world, headers, harmless=True).status_code == row.ok


@pytest.mark.parametrize("row", PROTECTED, ids=lambda r: r.id)
@pytest.mark.parametrize("which", ["empty", "blank"])
def test_inspector_with_an_empty_jurisdiction_is_refused(env, world, row, which):
    """A stored inspector token bound to no unit ([] or blank codes) is refused everywhere,
    never shown everything."""
    before = snapshot(env)
    refused(
        env,
        row,
        send(env["client"], row, world, _bearer(world["tokens"][which])),
        403,
        "no jurisdiction",
        before=before,
    )


# --- listings: an inspector's answers hold exactly their township's flags ------------------

LISTS = [r for r in ROWS if r.scope == "list"]


@pytest.mark.parametrize("row", LISTS, ids=lambda r: r.id)
@pytest.mark.parametrize("role,code", [("inspector", XIN), ("inspector_yihe", YIHE)])
def test_listings_hold_exactly_the_jurisdiction(env, world, auth, row, role, code):
    """Complete and no more: what the admin sees of that township, and nothing of another."""
    client = env["client"]
    everything = send(client, row, world, auth("admin"))
    assert everything.status_code == 200
    all_codes = admin_codes(env, row, everything)
    assert {XIN, YIHE} <= set(all_codes), "the probe covers both townships"
    r = send(client, row, world, auth(role))
    if "inspector" not in row.roles:  # exports: not an inspector's tool at all
        assert_problem(r, 403)
        return
    assert r.status_code == 200, r.text
    assert admin_codes(env, row, r) == [c for c in all_codes if c == code]


def test_analyst_filters_by_unit_in_exports_and_stats(client, auth):
    r = client.get(f"/exports?format=geojson&admin={YIHE}", headers=auth("analyst"))
    assert r.status_code == 200
    codes = {f["properties"]["admin_code"] for f in r.json()["features"]}
    assert codes == {YIHE}
    groups = client.get(f"/stats?group_by=region&admin={YIHE}", headers=auth("analyst")).json()["groups"]
    assert [g["admin_code"] for g in groups] == [YIHE]


# --- evidence --------------------------------------------------------------------------------


def test_evidence_of_another_jurisdiction_is_403_and_own_is_a_safe_download(env, world, auth):
    client = env["client"]
    for eid, own, other in (
        (world["evidence_xin"], "inspector", "inspector_yihe"),
        (world["evidence_yihe"], "inspector_yihe", "inspector"),
    ):
        assert_problem(client.get(f"/evidence/{eid}", headers=auth(other)), 403, "outside your jurisdiction")
        r = client.get(f"/evidence/{eid}", headers=auth(own))
        assert r.status_code == 200 and r.content == JPEG
        assert r.headers["content-type"] == "image/jpeg"
        assert r.headers["x-content-type-options"] == "nosniff"
        assert r.headers["content-disposition"].startswith("attachment;")
        assert f'filename="evidence-{eid}.jpg"' in r.headers["content-disposition"]
    assert_problem(client.get("/evidence/987654", headers=auth("admin")), 404)


def test_evidence_listing_of_another_jurisdiction_is_403(env, world, auth):
    client = env["client"]
    yihe_flag = world["flags"][YIHE][0]
    assert_problem(client.get(f"/flags/{yihe_flag}/evidence", headers=auth("inspector")), 403, "jurisdiction")
    listed = client.get(f"/flags/{yihe_flag}/evidence", headers=auth("inspector_yihe")).json()
    assert world["evidence_yihe"] in [e["id"] for e in listed]


def test_refused_evidence_upload_leaves_no_file(env, world, auth):
    """The jurisdiction is checked before the body touches the disk."""
    before = snapshot(env)
    yihe_flag = world["flags"][YIHE][0]
    r = env["client"].post(
        f"/flags/{yihe_flag}/evidence",
        headers=auth("inspector"),
        files={"file": ("big.jpg", JPEG + b"\x00" * 200_000, "image/jpeg")},
    )
    assert_problem(r, 403, "jurisdiction")
    assert snapshot(env) == before


def test_problem_bodies_are_json(env, world):
    """A refusal body is a problem document a client can parse, whatever it sent."""
    r = env["client"].get("/flags/1", headers={"Authorization": "Bearer rl_nope", "Accept": "text/html"})
    assert r.headers["content-type"].startswith("application/problem+json")
    assert json.loads(r.text)["status"] == 401
