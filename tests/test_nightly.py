"""The nightly batch: discovery, ledger, failures, digest, STAC, and SIGKILL at any point."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import rasterio
from rasterio.transform import from_origin

from redline.nightly import KILL_ENV, NightlyOptions, run_nightly

from .conftest import ORIGIN, UTM49, blank, pixel_box

REDLINE = str(Path(sys.executable).with_name("redline"))
CLASSES = "code,activity,confidence\n0,none,\n1,mining,high\n2,industrial,high\n4,road,high\n6,farmland,nominal\n"


def write(folder: Path, name: str, arr, *, day="2026-06-01", crs=UTM49, origin=ORIGIN, sidecar=True, block=128):
    path = folder / name
    profile = dict(
        driver="GTiff",
        width=arr.shape[1],
        height=arr.shape[0],
        count=1,
        dtype=arr.dtype,
        crs=crs,
        transform=from_origin(*origin, 10.0, 10.0),
        nodata=255 if arr.dtype == np.uint8 else None,
        tiled=True,
        blockxsize=block,
        blockysize=block,
        compress="deflate",
    )
    with rasterio.open(path, "w", **profile) as ds:
        ds.write(arr, 1)
    if sidecar:
        path.with_suffix(".json").write_text(
            json.dumps(
                {
                    "product_id": path.stem.upper(),
                    "sensor": "GF-1 WFV",
                    "acquired_after": day,
                    "class_table": "classes.csv",
                }
            )
        )
    return path


def good_pair(folder: Path):
    a, b = blank(), blank()
    a[100:140, 100:140] = 6  # farmland in the red line
    a[400:440, 400:440] = 1  # mining in the reserve core
    b[120:160, 120:170] = 6  # grown: a new observation of the first flag
    b[300:305, 0:700] = 4  # a road across the scene
    write(folder, "chg_2026-06.tif", a, day="2026-06-01")
    write(folder, "chg_2026-09.tif", b, day="2026-09-01")


def corrupt(folder: Path, name="corrupt.tif"):
    arr = np.random.default_rng(3).integers(0, 3, (600, 700)).astype(np.uint8)
    path = write(folder, name, arr, day="2026-07-01", block=64)
    path.write_bytes(path.read_bytes()[: int(path.stat().st_size * 0.6)])  # truncated in transit
    return path


@pytest.fixture
def inbox(tmp_path):
    folder = tmp_path / "inbox"
    folder.mkdir()
    (folder / "classes.csv").write_text(CLASSES)
    (folder / "notes.json").write_text('{"not": "a product"}')
    return folder


@pytest.fixture
def layers(load_zones):
    load_zones("redline", [(pixel_box(0, 0, 350, 600), {"name": "RL-A", "function_type": "防风固沙"})])
    load_zones("reserve", [(pixel_box(350, 300, 700, 600), {"zone": "核心区", "name": "R"})])
    load_zones(
        "admin",
        [
            (pixel_box(0, 0, 350, 600), {"name": "锡尼镇", "code": "150625100"}),
            (pixel_box(350, 0, 700, 600), {"name": "伊和乌素苏木", "code": "150625201"}),
        ],
    )


def night(store, inbox, tmp_path, **kw):
    opts = NightlyOptions(watch=[inbox], digest_dir=tmp_path / "digests", settle=0, **kw)
    return run_nightly(store, opts)


def test_each_new_product_is_scanned_once_and_bad_ones_do_not_stop_the_night(store, layers, inbox, tmp_path):
    good_pair(inbox)
    corrupt(inbox)
    write(inbox, "nocrs.tif", blank(), crs=None)
    write(inbox, "float.tif", blank().astype(np.float32))
    write(inbox, "far.tif", blank(), origin=(700000.0, 3000000.0))
    d = night(store, inbox, tmp_path)
    assert d["status"] == "failures"
    reasons = {f["item_id"]: f["reason"] for f in d["failures"]}
    assert set(reasons) == {"corrupt", "nocrs", "float", "far"}
    assert "corrupt or truncated" in reasons["corrupt"] and "no CRS" in reasons["nocrs"]
    assert "float32" in reasons["float"] and "does not overlap" in reasons["far"]
    assert [s["product_id"] for s in d["scans"]] == ["CHG_2026-06", "CHG_2026-09"]  # in acquisition order
    t = d["totals"]
    assert (t["discovered"], t["scanned"], t["failed"], t["new_flags"]) == (6, 2, 4, 3)
    # the 09 product re-observed a flag the 06 product created tonight: that is a new flag, not a new observation
    assert t["new_observations"] == 0
    assert d["new_flags"]["by_severity"] == {"critical": 2, "medium": 1}  # the road reaches the core zone
    assert d["new_flags"]["by_activity"] == {"farmland": 1, "mining": 1, "transport": 1}
    assert d["new_flags"]["by_admin"] == {"伊和乌素苏木 (150625201)": 2, "锡尼镇 (150625100)": 1}
    digests = tmp_path / "digests"
    assert json.loads(Path(d["files"]["json"]).read_text())["run_id"] == d["run_id"]
    assert "CHG_2026-06" in Path(d["files"]["html"]).read_text() and (digests / "latest.html").exists()
    assert not [p for p in digests.iterdir() if p.name.endswith(".tmp")]
    assert {e["state"] for e in store.ledger_entries()} == {"done", "failed"}

    again = night(store, inbox, tmp_path)  # nothing new: nothing scanned, nothing re-reported
    assert again["status"] == "ok" and again["totals"]["unchanged"] == 2 and again["scans"] == []
    assert {f["item_id"] for f in again["known_failures"]} == set(reasons)
    assert len(store.scans()) == 2 and len(store.flags()) == 3


def test_fixed_file_is_scanned_and_failures_are_retried_only_when_asked(store, layers, inbox, tmp_path):
    good_pair(inbox)
    corrupt(inbox)
    night(store, inbox, tmp_path)
    d = night(store, inbox, tmp_path, retry_failed=True)
    assert [f["attempts"] for f in d["failures"]] == [2]
    arr = blank()
    arr[500:540, 100:140] = 2
    write(inbox, "corrupt.tif", arr, day="2026-07-01")  # re-delivered intact: new content, new entry
    d = night(store, inbox, tmp_path)
    assert d["status"] == "ok" and [s["item_id"] for s in d["scans"]] == ["corrupt"]
    assert d["new_flags"]["count"] == 1
    states = sorted((e["item_id"], e["state"]) for e in store.ledger_entries())
    assert states == [("chg_2026-06", "done"), ("chg_2026-09", "done"), ("corrupt", "done"), ("corrupt", "failed")]


def test_product_interrupted_too_often_is_recorded_as_failed(store, layers, inbox, tmp_path):
    good_pair(inbox)
    from redline.discovery import discover

    (cand, _), _ = discover([inbox], [])
    for _ in range(3):  # three nights died while scanning it
        store.ledger_start(
            {
                "key": cand.fingerprint(),
                "source": cand.source,
                "item_id": cand.item_id,
                "location": cand.location,
                "stamp": cand.stamp(),
            }
        )
    d = night(store, inbox, tmp_path)
    assert [f["item_id"] for f in d["failures"]] == ["chg_2026-06"]
    assert "interrupted 3 times" in d["failures"][0]["reason"]
    assert [s["item_id"] for s in d["scans"]] == ["chg_2026-09"]


def test_copied_or_touched_file_is_not_a_new_product(store, layers, inbox, tmp_path):
    good_pair(inbox)
    night(store, inbox, tmp_path)
    sub = inbox / "2026" / "09"
    sub.mkdir(parents=True)
    for name in ("chg_2026-09.tif", "chg_2026-09.json"):
        shutil.copy2(inbox / name, sub / name)
    shutil.copy2(inbox / "classes.csv", sub / "classes.csv")
    os.utime(inbox / "chg_2026-06.tif")
    d = night(store, inbox, tmp_path)
    assert d["totals"]["unchanged"] == 3 and d["scans"] == [] and len(store.scans()) == 2


def test_files_still_being_written_wait_for_the_next_night(store, layers, inbox, tmp_path):
    good_pair(inbox)
    d = run_nightly(store, NightlyOptions(watch=[inbox], digest_dir=tmp_path / "d", settle=3600))
    assert d["totals"]["discovered"] == 0 and len(d["not_settled"]) == 2


def test_stac_item_collection_and_catalog(store, layers, inbox, tmp_path):
    pystac = pytest.importorskip("pystac")

    good_pair(inbox)
    for p in inbox.glob("*.json"):
        p.unlink()  # STAC carries the metadata

    def item(id_, raster, end, **assets):
        it = pystac.Item(
            id_,
            geometry=None,
            bbox=None,
            datetime=None,
            properties={
                "start_datetime": "2025-08-01T00:00:00Z",
                "end_datetime": end,
                "platform": "gaofen-1",
                "instruments": ["wfv"],
            },
        )
        it.add_asset("change", pystac.Asset(str(raster), media_type=pystac.MediaType.COG, roles=["data"]))
        it.add_asset("classes", pystac.Asset(str(inbox / "classes.csv"), media_type="text/csv"))
        for k, href in assets.items():
            it.add_asset(k, pystac.Asset(href))
        return it

    items = [
        item("gf1-0601", inbox / "chg_2026-06.tif", "2026-06-01T03:00:00Z"),
        item("gf1-0901", inbox / "chg_2026-09.tif", "2026-09-01T03:00:00Z"),
        item("remote", inbox / "chg_2026-09.tif", "2026-10-01T03:00:00Z"),
    ]
    items[2].assets["change"].href = "https://example.org/x.tif"
    coll = tmp_path / "items.json"
    pystac.ItemCollection(items).save_object(dest_href=str(coll))
    opts = NightlyOptions(stac=[str(coll)], digest_dir=tmp_path / "d", settle=0)
    d = run_nightly(store, opts)
    assert [s["product_id"] for s in d["scans"]] == ["gf1-0601", "gf1-0901"]
    assert [f["item_id"] for f in d["failures"]] == ["remote"] and "not a local file" in d["failures"][0]["reason"]
    obs = store.observations(d["new_flags"]["flags"][0]["id"])
    assert obs[0]["sensor"] == "gaofen-1 wfv"
    # the same items in a catalog are the same products: nothing new
    cat = pystac.Catalog("night", "test")
    cat.add_items(items[:2])
    cat.normalize_hrefs(str(tmp_path / "cat"))
    cat.save(catalog_type=pystac.CatalogType.SELF_CONTAINED)
    d = run_nightly(
        store, NightlyOptions(stac=[str(tmp_path / "cat" / "catalog.json")], digest_dir=tmp_path / "d", settle=0)
    )
    assert d["scans"] == [] and d["totals"]["unchanged"] == 2


def test_cli_exit_status_and_one_line_errors(tmp_path, inbox):
    env = {**os.environ, "REDLINE_DATABASE_URL": f"sqlite:///{tmp_path / 'x.db'}"}
    proc = subprocess.run(
        [REDLINE, "nightly", "--digest-dir", str(tmp_path / "d")], capture_output=True, text=True, env=env
    )
    assert proc.returncode == 2 and proc.stderr.startswith("error: nothing to watch")
    proc = subprocess.run(
        [REDLINE, "nightly", "--watch", str(tmp_path / "nope"), "--digest-dir", str(tmp_path / "d")],
        capture_output=True,
        text=True,
        env=env,
    )
    assert proc.returncode == 2 and "watched folder does not exist" in proc.stderr and "Traceback" not in proc.stderr


# --- SIGKILL at any point -------------------------------------------------------------


def _snapshot(db: Path) -> dict:
    """The store's content, minus wall-clock times and run bookkeeping (attempts, run ids)."""
    con = sqlite3.connect(db)
    drop = {
        "scans": ("started_at", "finished_at"),
        "flags": ("created_at", "updated_at"),
        "audit": ("at",),
        "batch_ledger": ("attempts", "run_id", "reported_in", "first_seen_at", "updated_at", "stamp"),
    }
    out = {}
    for table in ("scans", "flags", "observations", "conflicts", "audit", "batch_ledger"):
        cols = [r[1] for r in con.execute(f"PRAGMA table_info({table})") if r[1] not in drop.get(table, ())]
        out[table] = con.execute(f"SELECT {', '.join(cols)} FROM {table} ORDER BY 1").fetchall()
    out["unreported"] = con.execute("SELECT COUNT(*) FROM batch_ledger WHERE reported_in IS NULL").fetchone()
    con.close()
    return out


def _run(db: Path, inbox: Path, digests: Path, kill: str | None = None, after: float | None = None):
    env = {**os.environ, "REDLINE_DATABASE_URL": f"sqlite:///{db}"}
    env.pop(KILL_ENV, None)
    if kill:
        env[KILL_ENV] = kill
    cmd = [
        REDLINE,
        "nightly",
        "--watch",
        str(inbox),
        "--digest-dir",
        str(digests),
        "--settle",
        "0",
        "--max-attempts",
        "20",
        "--json",
    ]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if after is not None:
        time.sleep(after)
        proc.kill()
    out, err = proc.communicate(timeout=120)
    return proc.returncode, out, err


@pytest.fixture
def kill_setup(tmp_path, inbox):
    """An SQLite store with layers and an inbox; the store file is copied for each scenario."""
    import geopandas as gpd

    from redline.layers import read_layer
    from redline.store import open_store

    seed = tmp_path / "seed.db"  # layers loaded, nothing scanned
    s = open_store(f"sqlite:///{seed}")
    for kind, geom, attrs in (
        ("redline", pixel_box(0, 0, 350, 600), {"name": "RL-A", "function_type": "防风固沙"}),
        ("reserve", pixel_box(350, 300, 700, 600), {"zone": "核心区", "name": "R"}),
    ):
        gpd.GeoDataFrame([attrs], geometry=[geom], crs=UTM49).to_file(tmp_path / f"{kind}.gpkg")
        s.add_layer_version(read_layer(kind, tmp_path / f"{kind}.gpkg"))
    s.close()
    good_pair(inbox)
    corrupt(inbox)
    arr = blank()
    arr[500:540, 200:260] = 2
    write(inbox, "chg_2026-07.tif", arr, day="2026-07-15")
    base = tmp_path / "base.db"
    shutil.copy(seed, base)
    t0 = time.monotonic()
    rc, out, err = _run(base, inbox, tmp_path / "base-digests")
    seconds = time.monotonic() - t0
    assert rc == 1, err  # the corrupt product fails, the night goes on
    return seed, _snapshot(base), json.loads(out), seconds


@pytest.mark.parametrize(
    "chain",
    [
        # each run of a chain is SIGKILLed at the named point (n-th time it is reached), then a clean run finishes
        ["discovered", "started:1", "in-transaction:1", "in-transaction:2", "started:2", "committed:1", "scanned"],
        ["in-transaction:3", "committed:1", "digest-json", "digest-written", "reported"],
    ],
)
def test_sigkill_at_named_points_then_rerun_ends_as_uninterrupted(tmp_path, kill_setup, inbox, chain):
    seed, expected, base_digest, _ = kill_setup
    db = tmp_path / "killed.db"
    shutil.copy(seed, db)
    for point in chain:
        rc, _, err = _run(db, inbox, tmp_path / "digests", kill=point)
        assert rc == -9, (point, err)
    rc, out, _ = _run(db, inbox, tmp_path / "digests")
    assert rc in (0, 1)
    assert _snapshot(db) == expected  # no duplicate flag, no lost flag, same ledger
    # every product is reported in some digest (at least once), none is lost between digests
    reported = set()
    for p in (tmp_path / "digests").glob("digest-*.json"):
        d = json.loads(p.read_text())
        reported |= {s["item_id"] for s in d["scans"]} | {f["item_id"] for f in d["failures"]}
    assert reported == {s["item_id"] for s in base_digest["scans"]} | {f["item_id"] for f in base_digest["failures"]}


def test_sigkill_after_random_delays_then_rerun_ends_as_uninterrupted(tmp_path, kill_setup, inbox):
    seed, expected, _, seconds = kill_setup
    db = tmp_path / "killed.db"
    shutil.copy(seed, db)
    killed = 0
    # at fractions of an uninterrupted night, wherever the process happens to be: a scan, a commit, the digest
    for share in (0.75, 0.85, 0.95):
        rc, _, _ = _run(db, inbox, tmp_path / "digests", after=share * seconds)
        killed += rc == -9
    # the night was measured on a busier machine than now and each run finished first: start again
    # from the seed, killing earlier, until a run really dies mid-night
    for share in (0.5, 0.25, 0.1, 0.05):
        if killed:
            break
        for side in ("-wal", "-shm"):  # a killed run's journal belongs to the old copy
            Path(f"{db}{side}").unlink(missing_ok=True)
        shutil.copy(seed, db)
        rc, _, _ = _run(db, inbox, tmp_path / "digests", after=share * seconds)
        killed += rc == -9
    assert killed  # at least one run really died mid-night (a later one may finish first: less is left to do)
    rc, _, _ = _run(db, inbox, tmp_path / "digests")
    assert rc in (0, 1) and _snapshot(db) == expected


def test_store_trouble_stops_the_night_without_blaming_the_product(store, layers, inbox, tmp_path, monkeypatch):
    import sqlite3

    import redline.nightly as nightly_module

    good_pair(inbox)

    def locked(*args, **kwargs):
        raise sqlite3.OperationalError("database is locked")

    monkeypatch.setattr(nightly_module, "scan_product", locked)
    with pytest.raises(sqlite3.OperationalError):
        night(store, inbox, tmp_path)
    assert [e["state"] for e in store.ledger_entries()] == ["running"]  # retried next night, not 'failed'


def test_cli_nightly_on_a_local_dask_cluster(tmp_path, kill_setup, inbox):
    seed, expected, _, _ = kill_setup
    db = tmp_path / "dask.db"
    shutil.copy(seed, db)
    env = {**os.environ, "REDLINE_DATABASE_URL": f"sqlite:///{db}"}
    proc = subprocess.run(
        [
            REDLINE,
            "nightly",
            "--watch",
            str(inbox),
            "--digest-dir",
            str(tmp_path / "d"),
            "--settle",
            "0",
            "--workers",
            "2",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert proc.returncode == 1 and "1 product(s) failed" in proc.stderr  # the corrupt one
    assert _snapshot(db) == expected  # the same store as the serial night


def land_cover_pair(inbox: Path, table: str = "before,after,activity\n30,50,construction\n") -> Path:
    """A before/after land-cover pair in a sub-folder and its manifest (a JSON with ``after``) in the inbox."""
    lc = inbox / "lc"
    lc.mkdir(exist_ok=True)
    before = np.full((600, 700), 30, dtype=np.uint8)
    after = before.copy()
    after[100:140, 100:140] = 50  # grassland -> built-up, in the red line
    write(lc, "before.tif", before, sidecar=False)
    write(lc, "after.tif", after, sidecar=False)
    (inbox / "transitions.csv").write_text(table)
    manifest = inbox / "lc_2026-08.json"
    manifest.write_text(
        json.dumps(
            {
                "product_id": "LC_2026-08",
                "mode": "transition",
                "before": "lc/before.tif",
                "after": "lc/after.tif",
                "transition_table": "transitions.csv",
                "acquired_before": "2025-08-01",
                "acquired_after": "2026-08-01",
            }
        )
    )
    return manifest


def test_land_cover_pair_manifest_is_discovered_as_one_product(inbox):
    from redline.discovery import discover

    manifest = land_cover_pair(inbox)
    cands, unsettled = discover([inbox], [])
    assert unsettled == []
    # the manifest is the product; the rasters it names are not products by themselves; notes.json is no product
    (cand,) = cands
    assert (cand.item_id, Path(cand.location)) == ("lc_2026-08", manifest.resolve())
    names = sorted(p.relative_to(inbox.resolve()).as_posix() for p in cand.files)
    assert names == ["lc/after.tif", "lc/before.tif", "lc_2026-08.json", "transitions.csv"]
    assert cand.acquired == "2026-08-01"
    product = cand.resolve()
    assert (product.mode, product.product_id) == ("transition", "LC_2026-08")
    assert (product.before_path, product.path) == ((inbox / "lc" / "before.tif"), (inbox / "lc" / "after.tif"))


def test_land_cover_pair_manifest_is_scanned_once_and_again_when_its_table_is_corrected(store, layers, inbox, tmp_path):
    land_cover_pair(inbox)
    d = night(store, inbox, tmp_path)
    assert d["status"] == "ok", d["failures"]
    assert [s["product_id"] for s in d["scans"]] == ["LC_2026-08"]
    (flag,) = store.flags()
    assert (flag["activity"], flag["zone_name"], flag["first_seen"]) == ("construction", "RL-A", "2026-08-01")
    again = night(store, inbox, tmp_path)
    assert again["scans"] == [] and again["totals"]["unchanged"] == 1 and len(store.scans()) == 1

    (inbox / "transitions.csv").write_text("before,after,activity\n30,50,mining\n")  # the table was wrong
    fixed = night(store, inbox, tmp_path)
    (scan,) = fixed["scans"]
    assert scan["product_id"] == "LC_2026-08" and not scan.get("already_scanned")
    assert len(store.scans()) == 2
    (flag,) = store.flags()  # the same place: a second observation, now judged as mining
    assert (flag["activity"], flag["n_observations"]) == ("mining", 2)
    keys = [e["key"] for e in store.ledger_entries()]
    assert len(keys) == len(set(keys)) == 2


def test_ledger_key_of_a_manifest_covers_every_file_and_parameter(inbox):
    """The nightly ledger keys on the content of every file a product is made of."""
    from redline.discovery import discover

    manifest = land_cover_pair(inbox)

    def key():
        (cand,), _ = discover([inbox], [])
        return cand.fingerprint()

    first = key()
    os.utime(manifest)  # touched, same content
    assert key() == first
    changes = [
        lambda: (inbox / "transitions.csv").write_text("before,after,activity\n30,50,mining\n"),
        lambda: write(inbox / "lc", "before.tif", np.full((600, 700), 31, dtype=np.uint8), sidecar=False),
        lambda: write(inbox / "lc", "after.tif", np.full((600, 700), 31, dtype=np.uint8), sidecar=False),
        lambda: manifest.write_text(manifest.read_text().replace('"transition"', '"transition", "sensor": "x"')),
    ]
    seen = {first}
    for change in changes:
        change()
        k = key()
        assert k not in seen
        seen.add(k)
