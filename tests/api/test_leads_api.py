"""National leads through the API (POST /leads, GET /leads/{batch}): the CLI's import and export,
inside the caller's jurisdiction; hostile files refused with nothing written; on both stores."""

from __future__ import annotations

import csv
import io
import json
import zipfile

import openpyxl
import pyogrio
import pytest
from typer.testing import CliRunner

from redline.cli import app as cli_app
from redline.store import open_store

from .conftest import XIN, YIHE, assert_problem

SAMPLE_IDS = ["XS-2026-0001", "XS-2026-0002", "XS-2026-0003"]  # 0001 on the farmland flag (伊和乌素)
RESULTS = ["flag_id", "status", "finding", "note", "verified", "deadline", "closed_on"]


@pytest.fixture
def store(env):
    s = open_store(env["url"])
    yield s
    s.close()


def post(client, headers, data: bytes, batch: str, name: str = "leads.csv", mapping: str | None = None):
    form = {"batch": batch, **({"mapping": mapping} if mapping is not None else {})}
    return client.post("/leads", headers=headers, files={"file": (name, data)}, data=form)


def written(store) -> tuple[int, int]:
    """Flags and their observations: what an import writes."""
    flags = store.flags(with_geometry=False)
    return len(flags), sum(f["n_observations"] for f in flags)


def cli(env, *args):
    r = CliRunner().invoke(cli_app, ["--db", env["url"], *map(str, args)])
    assert r.exit_code == 0, r.output
    return r


def test_import_export_and_jurisdiction_as_the_cli(env, client, auth, store, tmp_path):
    sample = (env["out"] / "national_leads.csv").read_bytes()
    farmland = next(f for f in store.flags(with_geometry=False) if f["admin_code"] == YIHE)
    before = written(store)
    # an inspector of 伊和乌素 imports the batch first: the lead on their farmland flag is an
    # observation of it; the two leads in 锡尼镇 are refused with the reason, nothing of them written
    r = post(client, auth("inspector_yihe"), sample, "api-1")
    assert r.status_code == 200, r.text
    body = r.json()
    assert (body["batch"], body["leads"], body["new_flags"], body["observed_flags"], body["unchanged"]) == (
        "api-1",
        3,
        [],
        [farmland["id"]],
        0,
    )
    assert [x["lead_id"] for x in body["refused"]] == SAMPLE_IDS[1:]
    assert all(f"admin unit {XIN}, outside your jurisdiction" in x["reason"] for x in body["refused"])
    assert written(store) == (before[0], before[1] + 1)
    assert [lead["lead_id"] for lead in store.leads("api-1")] == SAMPLE_IDS[:1]
    # an administrator imports the same batch: the refused leads become new flags, the
    # imported one is left alone; again: nothing changes (batch + lead id)
    r = post(client, auth("admin"), sample, "api-1")
    assert r.status_code == 200, r.text
    body = r.json()
    assert (len(body["new_flags"]), body["observed_flags"], body["unchanged"], body["refused"]) == (2, [], 1, [])
    new = [store.flag(i) for i in body["new_flags"]]
    assert sorted(f["source_ref"] for f in new) == SAMPLE_IDS[1:] and {f["source"] for f in new} == {"national"}
    assert {f["admin_code"] for f in new} == {XIN}
    after = written(store)
    assert after == (before[0] + 2, before[1] + 3)
    again = post(client, auth("admin"), sample, "api-1").json()
    assert (again["new_flags"], again["observed_flags"], again["unchanged"], again["refused"]) == ([], [], 3, [])
    assert written(store) == after
    # the API answers what `redline leads import --json` prints (a new batch: three observations)
    by_cli = json.loads(
        cli(env, "leads", "import", env["out"] / "national_leads.csv", "--batch", "cli-2", "--json").output
    )
    by_api = post(client, auth("admin"), sample, "api-2").json()
    assert {**by_api, "batch": "cli-2"} == {**by_cli, "refused": []}
    assert sorted(by_api["observed_flags"]) == sorted([farmland["id"], *body["new_flags"]])
    # an inspector of 锡尼镇: the leads on its flags are observed, the farmland one refused
    mine = post(client, auth("inspector"), sample, "api-3").json()
    assert sorted(mine["observed_flags"]) == sorted(body["new_flags"])
    assert mine["refused"] == [{"lead_id": SAMPLE_IDS[0], "reason": "it observes a flag outside your jurisdiction"}]

    # the results: the file `redline leads export` writes, in each format
    out = tmp_path / "cli.csv"
    cli(env, "leads", "export", "--batch", "api-1", "-o", out)
    r = client.get("/leads/api-1?f=csv", headers=auth("admin"))
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    assert r.content == out.read_bytes()
    table = list(csv.reader(io.StringIO(r.content.decode("utf-8-sig"))))
    assert table[0][-len(RESULTS) :] == RESULTS and [row[0] for row in table[1:]] == SAMPLE_IDS
    x = client.get("/leads/api-1", headers=auth("viewer"))  # xlsx by default; anyone may read
    assert x.status_code == 200 and x.headers["content-type"].startswith("application/vnd.openxmlformats")
    rows = list(openpyxl.load_workbook(io.BytesIO(x.content)).active.iter_rows(values_only=True))
    assert [r[0] for r in rows[1:]] == SAMPLE_IDS
    g = client.get("/leads/api-1?f=gpkg", headers=auth("admin"))
    assert g.status_code == 200 and g.headers["content-type"] == "application/geopackage+sqlite3"
    (tmp_path / "r.gpkg").write_bytes(g.content)
    back = pyogrio.read_dataframe(tmp_path / "r.gpkg")
    assert list(back["线索编号"]) == SAMPLE_IDS and back.crs.to_epsg() == 4490
    z = client.get("/leads/api-1?f=zip", headers=auth("admin"))
    assert z.status_code == 200 and z.headers["content-type"] == "application/zip"
    assert {"leads.shp", "leads.dbf", "columns.csv"} <= set(zipfile.ZipFile(io.BytesIO(z.content)).namelist())
    # an inspector gets the leads whose flags are theirs; a batch with none of those: 404
    own = client.get("/leads/api-1?f=csv", headers=auth("inspector_yihe")).content.decode("utf-8-sig")
    assert [row[0] for row in list(csv.reader(io.StringIO(own)))[1:]] == SAMPLE_IDS[:1]
    assert_problem(client.get("/leads/nope?f=csv", headers=auth("admin")), 404, "no leads were imported")
    assert_problem(client.get("/leads/api-1?f=pdf", headers=auth("admin")), 422)
    assert_problem(client.get("/leads/api-1?format=csv", headers=auth("admin")), 400, "'format'")
    assert_problem(client.get("/leads/api-1"), 401)


def test_who_may_import(client, auth, store, env):
    sample = (env["out"] / "national_leads.csv").read_bytes()
    for role in ("viewer", "analyst"):
        assert_problem(post(client, auth(role), sample, "who"), 403, "may not workflow")
    assert_problem(post(client, {}, sample, "who"), 401)
    assert store.leads("who") == []


def _zip(members: dict) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        for name, data in members.items():
            z.writestr(name, data)
    return buf.getvalue()


def test_hostile_lead_files_are_refused_and_write_nothing(env, client, auth, store):
    admin = auth("admin")
    before = written(store)
    vrt = (
        '<OGRVRTDataSource><OGRVRTLayer name="x">'
        "<SrcDataSource>/etc/passwd</SrcDataSource></OGRVRTLayer></OGRVRTDataSource>"
    )
    good = "线索编号,经度,纬度\nH-1,108.7,39.8\n"
    cases = [
        (
            "bad.xlsx",
            _zip({"[Content_Types].xml": "<Types/>", "xl/workbook.xml": "not xml"}),
            422,
            "not a readable XLSX",
        ),
        (
            "bomb.xlsx",
            _zip({"[Content_Types].xml": "<Types/>", "xl/worksheets/sheet1.xml": b"\0" * (40 << 20)}),
            413,
            "expands",
        ),
        ("leads.vrt", vrt.encode(), 422, "XML that is not KML"),
        ("old.xls", b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\0" * 500, 422, "save it as .xlsx"),
        ("photo.png", b"\x89PNG\r\n\x1a\n" + b"\0" * 500, 422, "unsupported file"),
        ("nan.csv", "线索编号,经度,纬度\nA,nan,39.8\n".encode(), 422, "not finite"),
        ("dup.csv", "线索编号,经度,纬度\nA,108.7,39.8\nA,108.7,39.8\n".encode(), 422, "appears twice"),
        ("leads.shp.zip", _zip({"readme.txt": "no shapefile here"}), 422, ""),
    ]
    for name, data, status, words in cases:
        body = assert_problem(post(client, admin, data, "H", name), status, words)
        assert "/tmp/" not in body["detail"] and "redline-upload" not in body["detail"], body  # no server paths
    # a mapping that is not one, or names a column the file lacks
    assert_problem(post(client, admin, good.encode(), "H", mapping="{not json"), 422, "not a JSON or TOML")
    assert_problem(post(client, admin, good.encode(), "H", mapping='{"colour": "x"}'), 422, "unknown field")
    assert_problem(post(client, admin, good.encode(), "H", mapping='{"lead_id": "编号X"}'), 422, "not in the file")
    assert_problem(post(client, admin, good.encode(), ""), 422)  # a batch id is required
    assert_problem(post(client, admin, good.encode(), "x" * 201), 422)
    # over the request limit: refused while it streams in
    big = (good + "#" * env["settings"].max_body_bytes).encode()
    assert_problem(post(client, admin, big, "H"), 413, "exceeds")
    assert_problem(
        client.post("/leads?dry=1", headers=admin, files={"file": ("l.csv", good)}, data={"batch": "H"}), 400
    )
    assert written(store) == before and store.leads("H") == []
