"""GET /ledger with the flag filters of /collections/flags/items: the rows, the counts by ledger
state and the summary by admin unit follow them, inside the caller's jurisdiction.

A module of its own: it moves flags of its own scenario onto the ledger."""

from __future__ import annotations

import csv
import io

import openpyxl

from redline.ledger import LEDGER_STATUSES

from .conftest import XIN, YIHE, assert_problem
from .test_ledger import STEPS, _api_moves, _flags


def test_the_ledger_takes_the_flag_filters(client, auth):
    """status, severity, activity, admin, datetime and CQL2 narrow the rows, the counts by state
    and the summary by admin unit alike, on top of the caller's jurisdiction."""
    admin = auth("admin")
    a, b = _flags(client, auth, XIN)[:2]
    _api_moves(client, auth("inspector"), a, STEPS[:2])  # verified violation
    _api_moves(client, auth("inspector"), b, STEPS)  # rectifying
    _api_moves(client, auth("inspector_yihe"), _flags(client, auth, YIHE)[0], STEPS[:2])
    flags = {
        f["id"]: f["properties"]
        for f in client.get("/collections/flags/items?limit=1000", headers=admin).json()["features"]
    }
    every = {r["id"]: r for r in client.get("/ledger", headers=admin).json()["items"]}
    assert {every[a]["status"], every[b]["status"]} == {"verified_violation", "rectifying"}

    def ledger(query: str, headers=admin) -> set[int]:
        r = client.get(f"/ledger?{query}", headers=headers)
        assert r.status_code == 200, r.text
        body = r.json()
        items = body["items"]
        assert body["states"] == {s: sum(x["status"] == s for x in items) for s in LEDGER_STATUSES}
        assert sum(g["problems"] for g in body["summary"]) == len(items)
        assert {g["admin_code"] for g in body["summary"]} == {x["admin_code"] for x in items}
        return {x["id"] for x in items}

    def where(test) -> set[int]:
        found = {i for i in every if test(every[i], flags[i])}
        assert found and found != set(every), "the filter must keep some rows and drop others"
        return found

    assert ledger("status=rectifying") == where(lambda r, f: r["status"] == "rectifying")
    assert ledger("status=rectifying&status=closed&status=new") == ledger("status=rectifying")
    assert ledger("status=new&status=dispatched") == set()  # statuses off the ledger match nothing
    activity = every[a]["activity"]
    assert ledger(f"activity={activity}") == {i for i in every if every[i]["activity"] == activity} >= {a}
    severity = flags[b]["severity"]
    assert ledger(f"severity={severity}") == {i for i in every if flags[i]["severity"] == severity} >= {b}
    assert ledger(f"admin={YIHE}") == where(lambda r, f: r["admin_code"] == YIHE)
    day = max(f["first_seen"] for i, f in flags.items() if i in every)
    assert ledger(f"datetime=../{day}") == {i for i in every if flags[i]["first_seen"] <= day}
    assert ledger(f"datetime={day}/..") == {i for i in every if flags[i]["last_seen"] >= day}
    assert ledger("datetime=2100-01-01/..") == set()
    assert ledger(f"filter=activity='{activity}'") == ledger(f"activity={activity}")
    cql_json = '{"op":"=","args":[{"property":"admin_code"},"%s"]}' % YIHE
    assert ledger(f"filter={cql_json}&filter-lang=cql2-json") == ledger(f"admin={YIHE}")
    # the files follow the filter too: the rows, and the XLSX summary sheet
    c = client.get("/ledger?f=csv&status=verified_violation", headers=admin)
    listed = list(csv.DictReader(io.StringIO(c.content.decode("utf-8-sig"))))
    assert {int(r["id"]) for r in listed} == ledger("status=verified_violation")
    x = client.get(f"/ledger?f=xlsx&admin={XIN}", headers=admin)
    wb = openpyxl.load_workbook(io.BytesIO(x.content))
    assert [r[0] for r in wb["summary"].iter_rows(min_row=2, values_only=True)] == [XIN]
    assert {r[0] for r in wb["ledger"].iter_rows(min_row=2, values_only=True)} == ledger(f"admin={XIN}")
    # jurisdiction on top: an inspector's filters stay inside it
    yihe = auth("inspector_yihe")
    assert ledger(f"activity={activity}", yihe) == {i for i in every if every[i]["admin_code"] == YIHE} & ledger(
        f"activity={activity}"
    )
    assert_problem(client.get(f"/ledger?admin={XIN}", headers=yihe), 403, "outside your jurisdiction")
    # refused as on the items endpoint: unknown parameters, values off the vocabulary, bad filters
    assert_problem(client.get("/ledger?state=closed", headers=admin), 400, "'state'")
    assert_problem(client.get("/ledger?status=done", headers=admin), 422)
    assert_problem(client.get("/ledger?datetime=soon", headers=admin), 422, "RFC 3339")
    assert_problem(client.get("/ledger?filter=nonsense%20%3D", headers=admin), 400)
    assert_problem(client.get("/ledger?filter-lang=cql2-json", headers=admin), 400, "need a filter")
