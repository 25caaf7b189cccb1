"""The rectification ledger (台账): entries, progress notes, overdue days, close-out, exports.

Dates are the test's: every move and every ledger view is given its ``today``.
"""

from __future__ import annotations

import csv
import io
import json
from datetime import date

import openpyxl
import pytest
import shapely
from typer.testing import CliRunner

from redline.auth import OPERATOR, Principal
from redline.change import resolve_product
from redline.cli import app
from redline.config import Settings
from redline.errors import ConflictError, InputError, PermissionDeniedError
from redline.ledger import CloseOutError, add_note, archive, entry_detail, export, ledger_rows, summary
from redline.scan import scan_product
from redline.store import FlagFilter
from redline.workflow import move

from .conftest import blank
from .test_recheck import flags  # noqa: F401  (fixture: three flags from a real scan)
from .test_workflow import FLAG

ADMIN = Principal("chief", "admin")
INSPECTOR = Principal("insp", "inspector", ("150625100",))
D = date.fromisoformat


def new_flag(store, activity="mining", admin=("150625100", "A"), area=1.0) -> int:
    return store.insert_flag(
        {
            **FLAG,
            "activity": activity,
            "admin_code": admin[0],
            "admin_name": admin[1],
            "area_ha": area,
            "area_mu": area * 15,
        },
        shapely.box(108, 39, 108.01, 39.01),
    )


def evidence(store, fid):
    store.add_evidence(
        {
            "flag_id": fid,
            "stored_name": "0" * 32 + ".jpg",
            "original_name": "site.jpg",
            "content_type": "image/jpeg",
            "size": 10,
            "sha256": "x",
            "lon": None,
            "lat": None,
            "note": "revegetated",
            "actor": "insp",
            "at": "2026-09-01T08:00:00+00:00",
        }
    )


def verdict(store, fid, what="recovered"):
    """What the nightly batch writes (redline.recovery.RecoveryCheck.record)."""
    store.audit(
        fid,
        "scan",
        "recovery",
        {
            "verdict": what,
            "observed_fraction": 1.0,
            "changed_fraction": 0.0,
            "changed_ha": 0.0,
            "activities": [],
            "observed_on": "2026-09-10",
            "scan_id": 1,
            "product_id": "p",
        },
    )


def to_rectified(store, fid, deadline="2026-08-31"):
    move(store, fid, "dispatched", "insp", principal=INSPECTOR, today=D("2026-07-01"))
    move(store, fid, "verified_violation", "insp", "mine pit found", principal=INSPECTOR, today=D("2026-07-02"))
    move(
        store,
        fid,
        "rectifying",
        "insp",
        "plan approved",
        principal=INSPECTOR,
        today=D("2026-07-05"),
        ledger={
            "responsible": "Hangjin natural resources bureau",
            "person": "Wang",
            "measures": "fill, replant",
            "deadline": deadline,
            "plan": "HJ-2026-017",
        },
    )
    move(store, fid, "rectified", "insp", "replanted", principal=INSPECTOR, today=D("2026-08-20"))


def test_a_verified_violation_gets_an_entry_and_dated_progress(store):
    fid = new_flag(store)
    move(store, fid, "dispatched", "insp", principal=INSPECTOR, today=D("2026-07-01"))
    assert store.rectification(fid) is None
    move(store, fid, "verified_violation", "insp", "pit 2 ha", principal=INSPECTOR, today=D("2026-07-02"))
    e = store.rectification(fid)
    assert e["verified_on"] == "2026-07-02" and e["deadline"] is None
    move(
        store,
        fid,
        "rectifying",
        "insp",
        "works start",
        principal=INSPECTOR,
        today=D("2026-07-05"),
        ledger={"responsible": "bureau", "deadline": "2026-08-31", "measures": "fill"},
    )
    e = store.rectification(fid)
    assert (e["responsible_unit"], e["deadline"], e["measures"], e["verified_on"]) == (
        "bureau",
        "2026-08-31",
        "fill",
        "2026-07-02",
    )
    add_note(store, fid, "half filled", "insp", INSPECTOR, on="2026-07-20")
    detail = entry_detail(store, fid, INSPECTOR, today=D("2026-07-21"))
    assert [(n["noted_on"], n["note"]) for n in detail["notes"]] == [
        ("2026-07-02", "pit 2 ha"),
        ("2026-07-05", "works start"),
        ("2026-07-20", "half filled"),
    ]
    status = [h for h in store.history(fid) if h["action"] == "status"]
    assert status[-1]["detail"]["ledger"] == {
        "responsible_unit": "bureau",
        "deadline": "2026-08-31",
        "measures": "fill",
    }
    assert status[0]["detail"] == {"from": "new", "to": "dispatched", "note": None}  # off the ledger: as before
    with pytest.raises(InputError, match="not a date"):
        move(store, fid, "rectified", "insp", principal=INSPECTOR, ledger={"deadline": "31/08/2026"})
    with pytest.raises(ConflictError, match="not on the rectification ledger"):
        add_note(store, new_flag(store), "x", "insp", INSPECTOR)


def test_ledger_fields_only_on_ledger_moves(store):
    fid = new_flag(store)
    with pytest.raises(InputError, match="ledger fields"):
        move(store, fid, "dispatched", "insp", ledger={"deadline": "2026-08-31"})
    assert store.flag(fid)["status"] == "new" and store.rectification(fid) is None


def test_overdue_days_on_dates_the_test_controls(store):
    fid = new_flag(store)
    to_rectified(store, fid, deadline="2026-08-31")
    day = lambda d: ledger_rows(store, OPERATOR, today=D(d))[0]["overdue_days"]  # noqa: E731
    assert day("2026-08-31") == 0 and day("2026-08-01") == 0
    assert day("2026-09-10") == 10
    late = new_flag(store, "farmland")
    to_rectified(store, late, deadline="2026-07-31")
    evidence(store, late)
    move(store, late, "closed", "chief", principal=ADMIN, today=D("2026-08-05"))
    rows = {r["id"]: r for r in ledger_rows(store, OPERATOR, today=D("2026-12-31"))}
    assert rows[late]["overdue_days"] == 5  # closed five days late; the count stops there
    assert rows[late]["closed_on"] == "2026-08-05" and rows[late]["approved_by"] == "chief"
    assert summary(list(rows.values())) == [
        {
            "admin_code": "150625100",
            "admin_name": "A",
            "problems": 2,
            "rectified": 2,
            "overdue": 1,
            "rectified_share": 1.0,
        }
    ]


@pytest.mark.parametrize("lacking", ["evidence", "approval", "recovery"])
def test_close_out_refused_without_each_requirement(store, lacking):
    fid = new_flag(store, "mining")
    to_rectified(store, fid)
    if lacking != "evidence":
        evidence(store, fid)
    if lacking != "recovery":
        verdict(store, fid)
    who = INSPECTOR if lacking == "approval" else ADMIN
    before = store.history(fid)
    with pytest.raises(CloseOutError) as info:
        move(store, fid, "closed", who.name, principal=who, today=D("2026-09-15"))
    assert isinstance(info.value, ConflictError) and info.value.missing == [lacking]
    assert f"flag {fid} cannot be closed" in str(info.value)
    assert store.flag(fid)["status"] == "rectified" and store.history(fid) == before
    assert store.rectification(fid)["closed_on"] is None


def test_close_out_lists_everything_missing_and_needs_an_approver(store):
    fid = new_flag(store, "industrial")
    to_rectified(store, fid)
    with pytest.raises(CloseOutError) as info:
        move(store, fid, "closed", "insp", principal=None)
    assert info.value.missing == ["evidence", "approval", "recovery"]
    assert "override reason" in str(info.value)


def test_recovery_verdict_must_say_recovered_and_be_newer_than_rectified(store):
    fid = new_flag(store, "construction")
    move(store, fid, "dispatched", "insp")
    move(store, fid, "verified_violation", "insp")
    move(store, fid, "rectifying", "insp")
    move(store, fid, "rectified", "insp")
    evidence(store, fid)
    verdict(store, fid, "persists")
    rows = ledger_rows(store, OPERATOR, today=D("2026-09-15"))
    assert rows[0]["activity_persists"] is True
    with pytest.raises(CloseOutError, match="activity persists"):
        move(store, fid, "closed", "chief", principal=ADMIN)
    verdict(store, fid, "recovered")
    move(store, fid, "rectifying", "insp", "still bare soil")  # back: the earlier verdicts no longer count
    move(store, fid, "rectified", "insp")
    with pytest.raises(CloseOutError, match="no recovery verdict"):
        move(store, fid, "closed", "chief", principal=ADMIN)
    verdict(store, fid, "recovered")
    assert move(store, fid, "closed", "chief", principal=ADMIN)["status"] == "closed"


def test_override_with_a_reason_and_activities_that_need_no_verdict(store):
    fid = new_flag(store, "mining")
    to_rectified(store, fid)
    evidence(store, fid)
    move(
        store,
        fid,
        "closed",
        "chief",
        principal=ADMIN,
        override_reason="cloudy all autumn; site visit photos",
        today=D("2026-09-30"),
    )
    e = store.rectification(fid)
    assert (e["approved_by"], e["closed_on"], e["override_reason"]) == (
        "chief",
        "2026-09-30",
        "cloudy all autumn; site visit photos",
    )
    last = store.history(fid)[-1]["detail"]
    assert last["override_reason"] == e["override_reason"] and last["approved_by"] == "chief"
    farm = new_flag(store, "farmland")  # not in the default list: no verdict needed
    to_rectified(store, farm)
    evidence(store, farm)
    assert move(store, farm, "closed", "chief", principal=ADMIN)["status"] == "closed"
    strict = Settings(close_requires_recovery_for=["farmland"])
    farm2 = new_flag(store, "farmland")
    to_rectified(store, farm2)
    evidence(store, farm2)
    with pytest.raises(CloseOutError, match="farmland needs new imagery"):
        move(store, farm2, "closed", "chief", principal=ADMIN, settings=strict)
    with pytest.raises(InputError, match="override reason goes with the close-out"):
        move(store, new_flag(store), "dispatched", "insp", override_reason="x")


def test_false_positives_close_as_before_and_stay_off_the_ledger(store):
    fid = new_flag(store)
    move(store, fid, "dispatched", "insp")
    move(store, fid, "false_positive", "insp")
    move(store, fid, "closed", "insp", principal=INSPECTOR)
    assert store.rectification(fid) is None and ledger_rows(store, OPERATOR) == []


def test_activity_persists_while_rectifying_when_new_imagery_sees_it(store):
    fid = new_flag(store)
    move(store, fid, "dispatched", "insp")
    move(store, fid, "verified_violation", "insp")
    move(store, fid, "rectifying", "insp")
    assert ledger_rows(store, OPERATOR)[0]["activity_persists"] is False
    store.update_flag(fid, {"last_seen": "2999-01-01"})  # a later scan observed it again
    assert ledger_rows(store, OPERATOR)[0]["activity_persists"] is True


def test_the_ledger_respects_jurisdiction(store):
    mine, other = new_flag(store), new_flag(store, admin=("150625200", "B"))
    for fid in (mine, other):
        move(store, fid, "dispatched", "a")
        move(store, fid, "verified_violation", "a")
    assert [r["id"] for r in ledger_rows(store, INSPECTOR)] == [mine]
    assert [r["id"] for r in ledger_rows(store, OPERATOR)] == [mine, other]


def test_xlsx_opens_and_its_sums_match_the_store(store, tmp_path):
    ids = []
    for i, (activity, admin) in enumerate(
        [("mining", ("150625100", "A")), ("farmland", ("150625100", "A")), ("industrial", ("150625200", "B"))]
    ):
        fid = new_flag(store, activity, admin, area=1.5 + i)
        to_rectified(store, fid, deadline="2026-08-01")
        ids.append(fid)
    evidence(store, ids[1])
    move(store, ids[1], "closed", "chief", principal=ADMIN, today=D("2026-08-10"))
    new_flag(store)  # not on the ledger
    data = export(store, OPERATOR, "xlsx", today=D("2026-09-01"))
    wb = openpyxl.load_workbook(io.BytesIO(data))
    assert wb.sheetnames == ["ledger", "summary"]
    ws = wb["ledger"]
    header = [c.value for c in ws[1]]
    assert header[:3] == ["id", "source", "admin code"] and "overdue days" in header and "approved by" in header
    body = [dict(zip(header, [c.value for c in row])) for row in ws.iter_rows(min_row=2)]
    on_ledger = store.flags(FlagFilter(status=["rectified", "closed"]), with_geometry=False)
    assert sorted(r["id"] for r in body) == sorted(ids) == sorted(f["id"] for f in on_ledger)
    assert sum(r["area ha"] for r in body) == pytest.approx(sum(f["area_ha"] for f in on_ledger))
    assert {r["id"]: r["overdue days"] for r in body} == {ids[0]: 31, ids[1]: 9, ids[2]: 31}
    sm = wb["summary"]
    groups = {row[0].value: [c.value for c in row] for row in sm.iter_rows(min_row=2)}
    assert groups == {"150625100": ["150625100", "A", 2, 2, 1.0, 1], "150625200": ["150625200", "B", 1, 1, 1.0, 1]}
    assert sum(g[2] for g in groups.values()) == len(on_ledger)
    text = export(store, OPERATOR, "csv", today=D("2026-09-01")).decode("utf-8-sig")
    assert text.splitlines()[0].startswith("id,source,admin code") and len(text.splitlines()) == 4


def test_cli_move_and_ledger_export(store, store_url, tmp_path):
    fid = new_flag(store)
    runner = CliRunner()

    def cli(*args):
        r = runner.invoke(app, ["--db", store_url, *map(str, args)])
        return r

    for status in ("dispatched", "verified_violation"):
        assert cli("flags", "move", fid, status, "--actor", "wang").exit_code == 0
    r = cli(
        "flags",
        "move",
        fid,
        "rectifying",
        "--deadline",
        "2026-08-31",
        "--responsible",
        "bureau",
        "--measures",
        "fill",
        "--note",
        "go",
        "--actor",
        "wang",
        "--json",
    )
    assert r.exit_code == 0, r.output
    assert store.rectification(fid)["deadline"] == "2026-08-31"
    r = cli("flags", "move", fid, "closed", "--actor", "wang")
    assert r.exit_code != 0 and "cannot move from rectifying to closed" in str(r.exception)
    assert cli("flags", "move", fid, "rectified", "--actor", "wang").exit_code == 0
    r = cli("flags", "move", fid, "closed", "--actor", "wang")
    assert isinstance(r.exception, CloseOutError) and r.exception.missing == ["evidence", "recovery"]
    assert cli("ledger", "note", fid, "checked again", "--on", "2026-08-25", "--actor", "wang").exit_code == 0
    out = tmp_path / "ledger.xlsx"
    r = cli("ledger", "export", out, "--today", "2026-09-02")
    assert r.exit_code == 0, r.output
    ws = openpyxl.load_workbook(out)["ledger"]
    header = [c.value for c in ws[1]]
    row = dict(zip(header, [c.value for c in ws[2]]))
    assert (row["id"], row["responsible"], row["deadline"], row["overdue days"], row["status"]) == (
        fid,
        "bureau",
        "2026-08-31",
        2,
        "rectified",
    )
    assert cli("ledger", "export", tmp_path / "l.txt").exit_code != 0


def test_cli_ledger_list_and_export_take_the_flag_filters(store, store_url, tmp_path):
    mining, road = new_flag(store, "mining"), new_flag(store, "transport", admin=("150625201", "B"))
    to_rectified(store, mining)
    for status in ("dispatched", "verified_violation"):
        move(store, road, status, "chief", principal=ADMIN)

    def listed(*args) -> dict:
        r = CliRunner().invoke(app, ["--db", store_url, "ledger", "list", "--json", *args])
        assert r.exit_code == 0, r.output
        return json.loads(r.output)

    every = listed()
    assert {r["id"] for r in every["items"]} == {mining, road}
    assert every["states"] == {"verified_violation": 1, "rectifying": 0, "rectified": 1, "closed": 0}
    only = listed("--activity", "road")
    assert [r["id"] for r in only["items"]] == [road] and [g["admin_code"] for g in only["summary"]] == ["150625201"]
    assert only["states"]["verified_violation"] == 1 and only["states"]["rectified"] == 0
    assert [r["id"] for r in listed("--status", "rectified", "--status", "new")["items"]] == [mining]
    assert listed("--status", "new")["items"] == [] and listed("--since", "2100-01-01")["summary"] == []
    out = tmp_path / "ledger.csv"
    r = CliRunner().invoke(app, ["--db", store_url, "ledger", "export", str(out), "--admin", "150625100"])
    assert r.exit_code == 0, r.output
    assert [int(row["id"]) for row in csv.DictReader(io.StringIO(out.read_text(encoding="utf-8-sig")))] == [mining]
    r = CliRunner().invoke(app, ["--db", store_url, "ledger", "list", "--status", "done"])
    assert r.exit_code != 0 and "--status 'done'" in str(r.exception)


def test_the_nightly_recovery_verdict_opens_the_close_out(store, flags, write_raster, class_table):  # noqa: F811
    """End to end: the verdict the scan writes (redline.recovery) is the one the close-out reads."""
    _, _, mine = flags  # mining in the reserve core, from a real scan
    to_rectified(store, mine)
    evidence(store, mine)
    with pytest.raises(CloseOutError, match="no recovery verdict"):
        move(store, mine, "closed", "chief", principal=ADMIN)

    def scan(name, arr, day):
        scan_product(store, resolve_product(write_raster(arr, name), class_table=class_table, acquired_after=day))

    still = blank()
    still[405:440, 400:440] = 1  # the pit is still there
    scan("still.tif", still, "2099-01-01")
    assert [r["activity_persists"] for r in ledger_rows(store, OPERATOR) if r["id"] == mine] == [True]
    with pytest.raises(CloseOutError, match="the latest recovery verdict says the activity persists"):
        move(store, mine, "closed", "chief", principal=ADMIN)
    clear = blank()
    clear[20, 20] = 2
    scan("clear.tif", clear, "2099-02-01")
    assert [r["activity_persists"] for r in ledger_rows(store, OPERATOR) if r["id"] == mine] == [False]
    assert move(store, mine, "closed", "chief", principal=ADMIN)["status"] == "closed"


def test_the_setting_is_a_list_of_known_activities(monkeypatch):
    monkeypatch.setenv("REDLINE_CLOSE_REQUIRES_RECOVERY_FOR", "mining, energy")
    assert Settings().close_requires_recovery_for == ["mining", "energy"]
    monkeypatch.setenv("REDLINE_CLOSE_REQUIRES_RECOVERY_FOR", "mining,quarrying")
    with pytest.raises(ValueError, match="unknown activity quarrying"):
        Settings()
    monkeypatch.delenv("REDLINE_CLOSE_REQUIRES_RECOVERY_FOR")
    assert Settings().close_requires_recovery_for == ["mining", "industrial", "construction"]


def test_the_close_out_archive_holds_sheet_evidence_approvals_history_and_a_manifest(
    store, store_url, tmp_path, monkeypatch
):
    import hashlib
    import json
    import zipfile

    from redline.evidence import save_evidence

    fid = new_flag(store)
    to_rectified(store, fid)
    add_note(store, fid, "soil brought in", "insp", INSPECTOR, on="2026-08-01")
    root = tmp_path / "ev"
    jpeg = b"\xff\xd8\xff\xe0" + b"\x00\x10JFIF\x00" + b"\x00" * 100 + b"\xff\xd9"
    save_evidence(store, root, fid, io.BytesIO(jpeg), original_name="replanted.jpg", actor="insp", note="done")
    move(store, fid, "closed", "chief", principal=ADMIN, override_reason="site visit confirmed", today=D("2026-09-03"))
    monkeypatch.setenv("REDLINE_EVIDENCE_DIR", str(root))
    out = tmp_path / "archive.zip"
    r = CliRunner().invoke(app, ["--db", store_url, "ledger", "archive", str(fid), "-o", str(out)])
    assert r.exit_code == 0, r.output
    with zipfile.ZipFile(out) as z:
        files = {n.split("/", 1)[1]: z.read(n) for n in z.namelist()}
    manifest = json.loads(files.pop("manifest.json"))
    assert {m["name"] for m in manifest["members"]} == set(files)
    for m in manifest["members"]:
        assert hashlib.sha256(files[m["name"]]).hexdigest() == m["sha256"] and len(files[m["name"]]) == m["size"]
    assert files["sheet.pdf"].startswith(b"%PDF-")
    evidence_files = [n for n in files if n.startswith("evidence/")]
    assert len(evidence_files) == 1 and files[evidence_files[0]] == jpeg
    approvals = json.loads(files["approvals.json"])
    assert (approvals["approved_by"], approvals["closed_on"], approvals["override_reason"]) == (
        "chief",
        "2026-09-03",
        "site visit confirmed",
    )
    ledger = json.loads(files["ledger.json"])
    assert (ledger["plan"], ledger["deadline"], ledger["status"]) == ("HJ-2026-017", "2026-08-31", "closed")
    history = json.loads(files["history.json"])
    assert [h["id"] for h in history] == [h["id"] for h in store.history(fid)]
    rows = list(csv.reader(io.StringIO(files["history.csv"].decode("utf-8-sig"))))
    assert rows[0] == ["id", "at", "actor", "action", "detail"] and len(rows) == len(history) + 1
    notes = files["notes.csv"].decode("utf-8-sig")
    assert "soil brought in" in notes and "plan approved" in notes
    assert json.loads(files["evidence.json"])[0]["original_name"] == "replanted.jpg"
    # only problems on the ledger, only inside the jurisdiction, only to a .zip
    other = new_flag(store, admin=("150625201", "B"))
    with pytest.raises(ConflictError, match="not on the rectification ledger"):
        archive(store, other, OPERATOR, sheet=False)
    move(store, other, "dispatched", "x")
    move(store, other, "verified_violation", "x")
    with pytest.raises(PermissionDeniedError):
        archive(store, other, INSPECTOR, sheet=False)
    assert CliRunner().invoke(app, ["--db", store_url, "ledger", "archive", str(fid), "-o", "x.tar"]).exit_code != 0
