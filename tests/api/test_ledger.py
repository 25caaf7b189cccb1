"""The rectification ledger through the API: PATCH /flags/{id} with ledger fields, GET /ledger."""

from __future__ import annotations

import csv
import io

import openpyxl
from typer.testing import CliRunner

from redline.cli import app as cli_app
from redline.store import open_store

from .conftest import XIN, YIHE, assert_problem

JPEG = b"\xff\xd8\xff\xe0" + b"\x00\x10JFIF\x00" + b"\x00" * 200 + b"\xff\xd9"
FIELDS = {
    "responsible": "Hangjin natural resources bureau",
    "person": "Wang",
    "measures": "fill and replant",
    "deadline": "2026-08-31",
    "plan": "HJ-2026-017",
}


def _flags(client, auth, code):
    items = client.get(f"/collections/flags/items?admin={code}&limit=1000", headers=auth("admin")).json()
    return [f["id"] for f in items["features"] if f["properties"]["status"] == "new"]


def _api_moves(client, headers, fid, steps):
    for status, extra in steps:
        r = client.patch(f"/flags/{fid}", json={"status": status, **extra}, headers=headers)
        assert r.status_code == 200, r.text


STEPS = [
    ("dispatched", {}),
    ("verified_violation", {"note": "pit found"}),
    ("rectifying", {"note": "plan approved", **FIELDS}),
]


def test_cli_and_api_moves_leave_the_same_audit(env, client, auth):
    by_api, by_cli = _flags(client, auth, XIN)[:2]
    _api_moves(client, auth("inspector"), by_api, STEPS)
    runner = CliRunner()
    for status, extra in STEPS:
        args = ["--db", env["url"], "flags", "move", str(by_cli), status, "--actor", "i"]
        for k, v in extra.items():
            args += [f"--{k}", v]
        r = runner.invoke(cli_app, args)
        assert r.exit_code == 0, r.output
    store = open_store(env["url"])
    try:

        def trail(fid):  # the scans' own entries differ from flag to flag
            return [(h["actor"], h["action"], h["detail"]) for h in store.history(fid) if h["actor"] != "scan"]

        assert trail(by_api) == trail(by_cli) and len(trail(by_api)) == 3
        assert trail(by_api)[-1][2]["ledger"]["deadline"] == "2026-08-31"
        strip = lambda e: {k: v for k, v in e.items() if k not in ("id", "flag_id", "created_at", "updated_at")}  # noqa
        assert strip(store.rectification(by_api)) == strip(store.rectification(by_cli))
        notes = lambda fid: [(n["note"], n["actor"]) for n in store.rectification_notes(fid)]  # noqa: E731
        assert notes(by_api) == notes(by_cli) == [("pit found", "i"), ("plan approved", "i")]
    finally:
        store.close()


def test_close_out_through_the_api(client, auth):
    fid = _flags(client, auth, XIN)[2]
    h = auth("inspector")
    _api_moves(client, h, fid, [*STEPS, ("rectified", {"note": "replanted"})])
    body = assert_problem(
        client.patch(f"/flags/{fid}", json={"status": "closed"}, headers=h),
        409,
        f"flag {fid} cannot be closed",
        "no completion evidence",
        "may not approve",
    )
    assert body["title"] == "CloseOutError"
    assert client.post(f"/flags/{fid}/evidence", headers=h, files={"file": ("done.jpg", JPEG)}).status_code == 201
    activity = client.get(f"/flags/{fid}", headers=h).json()["activity"]
    r = client.patch(f"/flags/{fid}", json={"status": "closed"}, headers=auth("admin"))
    if activity in ("mining", "industrial", "construction"):
        assert_problem(r, 409, "needs new imagery showing the site recovered")
        r = client.patch(
            f"/flags/{fid}", json={"status": "closed", "override_reason": "site visit"}, headers=auth("admin")
        )
    assert r.status_code == 200, r.text
    assert_problem(
        client.patch(f"/flags/{fid}", json={"status": "closed", "deadline": "soon"}, headers=auth("admin")), 422
    )
    rows = client.get("/ledger?today=2026-09-05", headers=auth("admin")).json()["items"]
    (row,) = [r for r in rows if r["id"] == fid]
    assert (row["status"], row["approved_by"], row["responsible"]) == ("closed", "root", FIELDS["responsible"])


def test_ledger_formats_and_jurisdiction(client, auth):
    yihe = _flags(client, auth, YIHE)[0]
    _api_moves(client, auth("inspector_yihe"), yihe, STEPS)
    r = client.get("/ledger?today=2026-09-10", headers=auth("admin"))
    assert r.status_code == 200
    body = r.json()
    rows = {x["id"]: x for x in body["items"]}
    assert rows[yihe]["overdue_days"] == 10 and rows[yihe]["admin_code"] == YIHE
    assert {x["admin_code"] for x in body["items"]} == {XIN, YIHE}
    assert sum(g["problems"] for g in body["summary"]) == len(body["items"])
    own = client.get("/ledger", headers=auth("inspector_yihe")).json()["items"]
    assert [x["id"] for x in own] == [yihe]
    x = client.get("/ledger?f=xlsx&today=2026-09-10", headers=auth("inspector"))
    assert x.status_code == 200 and x.headers["content-type"].startswith("application/vnd.openxmlformats")
    wb = openpyxl.load_workbook(io.BytesIO(x.content))
    header = [c.value for c in wb["ledger"][1]]
    listed = [dict(zip(header, [c.value for c in row])) for row in wb["ledger"].iter_rows(min_row=2)]
    assert listed and {r["admin code"] for r in listed} == {XIN}
    assert sum(r["area ha"] for r in listed) == sum(v["area_ha"] for v in rows.values() if v["admin_code"] == XIN)
    c = client.get("/ledger?f=csv", headers=auth("viewer"))
    assert c.status_code == 200 and c.headers["content-type"].startswith("text/csv")
    assert len(list(csv.reader(io.StringIO(c.content.decode("utf-8-sig"))))) == len(body["items"]) + 1
    assert_problem(client.get("/ledger?f=pdf", headers=auth("admin")), 422)
    assert_problem(client.get("/ledger"), 401)


def test_progress_notes_through_the_api_as_through_the_cli(env, client, auth):
    by_api, by_cli = _flags(client, auth, XIN)[-2:]
    h = auth("inspector")
    for fid in (by_api, by_cli):
        _api_moves(client, h, fid, STEPS[:2])
    r = client.post(f"/flags/{by_api}/ledger/notes", json={"note": "half filled", "on": "2026-07-20"}, headers=h)
    assert r.status_code == 201, r.text
    assert (r.json()["flag_id"], r.json()["noted_on"], r.json()["note"], r.json()["actor"]) == (
        by_api,
        "2026-07-20",
        "half filled",
        "i",
    )
    args = ["--db", env["url"], "ledger", "note", str(by_cli), "half filled", "--on", "2026-07-20", "--actor", "i"]
    assert CliRunner().invoke(cli_app, args).exit_code == 0
    store = open_store(env["url"])
    try:
        last = lambda fid: [(h["actor"], h["action"], h["detail"]) for h in store.history(fid)][-1]  # noqa: E731
        assert last(by_api) == last(by_cli) == ("i", "progress", {"noted_on": "2026-07-20", "note": "half filled"})
        notes = [(n["noted_on"], n["note"]) for n in store.rectification_notes(by_api)]
        assert ("2026-07-20", "half filled") in notes
    finally:
        store.close()
    entry = client.get("/ledger?today=2026-07-21", headers=h).json()["items"]
    assert by_api in [row["id"] for row in entry]
    # the same rules: on the ledger only, inside the jurisdiction, some text, a real date
    new = _flags(client, auth, XIN)[0]
    assert_problem(client.post(f"/flags/{new}/ledger/notes", json={"note": "x"}, headers=h), 409, "not on the")
    yihe = auth("inspector_yihe")
    assert_problem(client.post(f"/flags/{by_api}/ledger/notes", json={"note": "x"}, headers=yihe), 403, "outside")
    assert_problem(client.post(f"/flags/{by_api}/ledger/notes", json={"note": "x"}, headers=auth("viewer")), 403)
    for body in ({"note": ""}, {"note": "x", "on": "soon"}, {"note": "x", "extra": 1}):
        assert_problem(client.post(f"/flags/{by_api}/ledger/notes", json=body, headers=h), 422)
    assert_problem(client.post("/flags/987654/ledger/notes", json={"note": "x"}, headers=auth("admin")), 404)
