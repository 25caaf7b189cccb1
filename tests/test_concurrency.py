"""Concurrency with real processes, on both backends: scans racing each other, readers
during a scan's write transaction, two processes opening a fresh store at once.

Each worker is a separate process with its own store connection. The scan workers meet
at a barrier, then hold their write transaction open for a while (the scan's ``on_commit``
hook sleeps), so without the writers' lock both transactions would overlap and both
would create a flag for the same patch.
"""

from __future__ import annotations

import json
import multiprocessing
import time
from pathlib import Path

import pytest
import shapely

from redline.store import FlagFilter, open_store

from .conftest import BACKENDS, backend_url, blank, pixel_box
from .test_store import FLAG

HOLD_S = 0.8  # how long each scan keeps its write transaction open
# workers fork from a clean server process that has imported the engine once (fast starts,
# and no parent connections or threads inherited)
SPAWN = multiprocessing.get_context("forkserver")
SPAWN.set_forkserver_preload(["redline.scan", "redline.change", "redline.store.postgis", "api.app", __name__])


def _scan_worker(
    url: str,
    raster: str,
    table: str,
    day: str,
    barrier,
    out: str,
    hold: float = HOLD_S,
    inside: str | None = None,
    release: str | None = None,
) -> None:
    from redline.change import resolve_product
    from redline.scan import scan_product

    product = resolve_product(Path(raster), class_table=Path(table), acquired_after=day)
    store = open_store(url)

    def on_commit(_store, _result):  # inside the write transaction, everything written
        if inside:
            Path(inside).touch()
        deadline = time.monotonic() + 60
        while release and not Path(release).exists() and time.monotonic() < deadline:
            time.sleep(0.02)
        time.sleep(hold)

    if barrier is not None:
        barrier.wait(timeout=60)
    t0 = time.time()
    result = scan_product(store, product, on_commit=on_commit)
    store.close()
    Path(out).write_text(json.dumps({**result.summary(), "t0": t0, "t1": time.time()}))


def _open_worker(url: str, barrier, out: str) -> None:
    barrier.wait(timeout=60)
    store = open_store(url)
    fid = store.insert_flag(FLAG, shapely.box(108, 39, 108.01, 39.01))
    store.close()
    Path(out).write_text(json.dumps({"flag": fid}))


def run_all(*jobs) -> None:
    procs = [SPAWN.Process(target=target, args=args) for target, args in jobs]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
        assert p.exitcode == 0, f"worker failed with exit code {p.exitcode}"


@pytest.fixture
def zones(load_zones):
    load_zones("redline", [(pixel_box(0, 0, 350, 600), {"name": "RL-A", "function_type": "防风固沙"})])
    load_zones("reserve", [(pixel_box(350, 0, 700, 600), {"zone": "核心区", "name": "R"})])


@pytest.fixture
def products(write_raster, class_table):
    a, b = blank(), blank()
    a[100:140, 100:140] = 6  # farmland
    a[400:440, 400:440] = 1  # mining in the core zone
    b[120:160, 120:170] = 6  # the farmland, grown: the same place
    b[400:440, 400:440] = 1  # the mine again
    b[200:240, 200:240] = 2  # new: industrial
    return {
        "june": (str(write_raster(a, "june.tif")), str(class_table), "2026-06-01"),
        "sept": (str(write_raster(b, "sept.tif")), str(class_table), "2026-09-01"),
    }


def _results(tmp_path, names):
    return [json.loads((tmp_path / f"{n}.json").read_text()) for n in names]


def test_overlapping_scans_at_once_make_no_duplicate_flags(store, store_url, zones, products, tmp_path):
    barrier = SPAWN.Barrier(2)
    run_all(
        (_scan_worker, (store_url, *products["june"], barrier, str(tmp_path / "june.json"))),
        (_scan_worker, (store_url, *products["sept"], barrier, str(tmp_path / "sept.json"))),
    )
    june, sept = _results(tmp_path, ("june", "sept"))
    assert max(june["t0"], sept["t0"]) < min(june["t1"], sept["t1"])  # they really ran at the same time
    flags = store.flags()
    assert len(flags) == 3  # farmland, mine, industrial: one flag per place
    assert sorted(f["n_observations"] for f in flags) == [1, 2, 2]
    assert sum(len(store.observations(f["id"])) for f in flags) == 5
    assert len(store.scans()) == 2
    # whichever committed first, the flags end with the latest observation's dates
    assert sorted((f["first_seen"], f["last_seen"]) for f in flags) == [
        ("2026-06-01", "2026-09-01"),
        ("2026-06-01", "2026-09-01"),
        ("2026-09-01", "2026-09-01"),
    ]


def test_same_product_by_two_processes_is_scanned_once(store, store_url, zones, products, tmp_path):
    barrier = SPAWN.Barrier(2)
    run_all(
        *[(_scan_worker, (store_url, *products["june"], barrier, str(tmp_path / f"{n}.json"))) for n in ("p1", "p2")]
    )
    results = _results(tmp_path, ("p1", "p2"))
    assert sorted(r["skipped"] for r in results) == [False, True]
    assert len(store.scans()) == 1 and len(store.flags()) == 2


def test_readers_see_a_scan_whole_or_not_at_all(store, store_url, zones, products, tmp_path):
    from fastapi.testclient import TestClient

    from api.app import create_app
    from redline.auth import create_token
    from redline.config import Settings

    june = products["june"]
    run_all((_scan_worker, (store_url, *june, None, str(tmp_path / "june.json"), 0.0)))
    token = create_token(store, "reader", "analyst")
    region = shapely.geometry.mapping(shapely.box(*shapely.bounds(store.flags()[0]["geometry"])).buffer(0.05))

    def answers(client) -> dict:
        h = {"Authorization": f"Bearer {token}"}
        items = client.get("/collections/flags/items?limit=100", headers=h).json()
        check = client.post("/checks", json=region, headers=h).json()["summary"]
        stats = client.get("/stats?group_by=severity", headers=h).json()["groups"]
        return {
            "matched": items["numberMatched"],
            "ids": [f["id"] for f in items["features"]],
            "check": {k: check[k] for k in ("flags", "conflicts", "scans")},
            "stats": stats,
            "engine": store.count_flags(FlagFilter()),
        }

    inside, release = tmp_path / "inside", tmp_path / "release"
    with TestClient(create_app(Settings(database_url=store_url))) as client:
        before = answers(client)
        writer = SPAWN.Process(
            target=_scan_worker,
            args=(store_url, *products["sept"], None, str(tmp_path / "sept.json"), 0.0, str(inside), str(release)),
        )
        writer.start()
        try:
            deadline = time.monotonic() + 60
            while not inside.exists() and writer.is_alive() and time.monotonic() < deadline:
                time.sleep(0.02)
            assert inside.exists(), "the writer never reached its write transaction"
            t = time.perf_counter()
            during = answers(client)  # the scan has written everything but not committed
            assert time.perf_counter() - t < 10  # readers are not blocked by the writer
            assert during == before
        finally:
            release.touch()
            writer.join(120)
        assert writer.exitcode == 0
        after = answers(client)
    assert after["matched"] == after["engine"] == before["matched"] + 1  # the industrial patch
    assert after["check"]["scans"] == before["check"]["scans"] + 1


@pytest.mark.parametrize("backend", BACKENDS)
def test_two_processes_opening_a_fresh_store_at_once(request, backend, tmp_path):
    if backend == "postgis":  # an empty database: both openers try to create the schema
        server = request.getfixturevalue("postgis")
        url = server.database(schema=False)
        request.addfinalizer(lambda: server.drop(url))
    else:
        url = backend_url(request, backend, tmp_path)
    barrier = SPAWN.Barrier(2)
    run_all(*[(_open_worker, (url, barrier, str(tmp_path / f"{n}.json"))) for n in ("p1", "p2")])
    assert sorted(r["flag"] for r in _results(tmp_path, ("p1", "p2"))) == [1, 2]
    s = open_store(url)
    try:
        assert s.count_flags() == 2
    finally:
        s.close()
