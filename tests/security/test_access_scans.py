"""``POST /scans`` is no oracle for the server's files, and no message shows a server path.

A path outside the data folder (given directly, through ``..``, through a symbolic link, or
named by a product manifest) gets the same 403 whether it exists or not, decided before the file
system is touched: a canary name outside is never stat'ed, resolved or opened. Messages (the
answer's detail, a failed job's message) name files relative to the data folder.
"""

from __future__ import annotations

import builtins
import io
import json
import os
import shutil
import time

import numpy as np
import pytest
import rasterio
from rasterio.transform import from_origin

from redline.jobs import hide_paths

from .conftest import assert_problem

CANARY = "canary-7f3a"  # in the name of every file outside that a request names


@pytest.fixture(scope="module")
def outside(env):
    """An existing file outside the data folder, and the name of one that does not exist."""
    there = env["out"] / f"{CANARY}.tif"
    there.write_bytes(b"II*\x00" + b"\x00" * 64)
    (env["out"] / f"{CANARY}.csv").write_text("code,activity\n1,mining\n")
    shutil.copy(env["out"] / "change_2026-06.tif", env["settings"].data_dir / "again.tif")  # a real product inside
    return {"exists": there, "missing": env["out"] / f"{CANARY}-missing.tif"}


@pytest.fixture
def watch_fs(monkeypatch):
    """Every stat, lstat, open, listdir and scandir of a path naming the canary, while the test runs."""
    seen: list[tuple[str, str]] = []

    def spy(name, fn):
        def wrapped(path, *args, **kwargs):
            if isinstance(path, (str, bytes, os.PathLike)) and CANARY in os.fsdecode(path):
                seen.append((name, os.fsdecode(path)))
            return fn(path, *args, **kwargs)

        return wrapped

    for mod, name in (
        (os, "stat"),
        (os, "lstat"),
        (os, "open"),
        (os, "listdir"),
        (os, "scandir"),
        (os, "access"),
        (os.path, "realpath"),
        (builtins, "open"),
        (io, "open"),
    ):
        monkeypatch.setattr(mod, name, spy(name, getattr(mod, name)))
    return seen


def _post(client, auth, **body):
    body.setdefault("acquired_after", "2026-06-21")
    return client.post("/scans", json=body, headers=auth("admin"))


def _same_refusal(a, b, name_a: str, name_b: str) -> None:
    """Both 403 problem+json, and the same answer once the name the client sent is set aside."""
    da = assert_problem(a, 403, "outside the server's data folder")
    db = assert_problem(b, 403, "outside the server's data folder")
    assert da["detail"].replace(name_a, "NAME") == db["detail"].replace(name_b, "NAME")
    assert {k: v for k, v in da.items() if k != "detail"} == {k: v for k, v in db.items() if k != "detail"}


@pytest.mark.parametrize("field", ["product", "class_table", "transition_table", "before"])
def test_outside_paths_same_403_whether_they_exist_or_not(client, auth, env, outside, watch_fs, field):
    base = {"product": "again.tif", "class_table": "change_classes.csv"}
    for form in ("../{}", "sub/../../{}", "./../{}"):
        a, b = form.format(outside["exists"].name), form.format(outside["missing"].name)
        _same_refusal(_post(client, auth, **{**base, field: a}), _post(client, auth, **{**base, field: b}), a, b)
    # absolute: the same words exactly, the path not even echoed
    ra = _post(client, auth, **{**base, field: str(outside["exists"])})
    rb = _post(client, auth, **{**base, field: str(outside["missing"])})
    assert assert_problem(ra, 403) == assert_problem(rb, 403)
    assert watch_fs == [], "a path outside the data folder was touched"


def test_links_inside_pointing_out_are_refused_alike(client, auth, env, outside, watch_fs):
    data = env["settings"].data_dir
    for name, target in (("link-a.tif", outside["exists"]), ("link-b.tif", outside["missing"])):
        (data / name).unlink(missing_ok=True)
        (data / name).symlink_to(target)
    _same_refusal(
        _post(client, auth, product="link-a.tif", class_table="change_classes.csv"),
        _post(client, auth, product="link-b.tif", class_table="change_classes.csv"),
        "link-a.tif",
        "link-b.tif",
    )
    assert not [op for op, _ in watch_fs if op not in ("lstat", "realpath")], watch_fs  # resolved, never opened


@pytest.mark.parametrize("key", ["after", "path", "before", "class_table", "transition_table"])
def test_manifest_naming_files_outside_is_refused_alike(client, auth, env, outside, watch_fs, key):
    data = env["settings"].data_dir
    manifest = {"after": "again.tif", "class_table": "change_classes.csv", "acquired_after": "2026-06-21"}
    answers = []
    for i, target in enumerate((outside["exists"], outside["missing"])):
        for j, value in enumerate((str(target), f"../{target.name}")):
            name = f"m-{key}-{i}{j}.json"
            (data / name).write_text(json.dumps({**manifest, key: value}))
            r = _post(client, auth, product=name)
            answers.append((r, name))
    first, first_name = answers[0]
    for r, name in answers[1:]:
        _same_refusal(first, r, first_name, name)
    assert str(outside["exists"]) not in first.text and str(env["out"]) not in first.text
    assert watch_fs == [], "a file a manifest names outside the data folder was touched"


def test_sidecar_json_of_a_raster_is_held_to_the_data_folder(client, auth, env, outside):
    data = env["settings"].data_dir
    (data / "side.tif").write_bytes((data / "again.tif").read_bytes())
    (data / "side.json").write_text(json.dumps({"class_table": str(env["out"] / f"{CANARY}.csv")}))
    assert_problem(_post(client, auth, product="side.tif"), 403, "class_table", "outside")


def test_messages_name_files_relative_to_the_data_folder(client, auth, env):
    data = env["settings"].data_dir
    roots = {str(data), str(data.resolve()), str(env["out"]), str(env["out"].resolve())}
    (data / "sub").mkdir(exist_ok=True)
    (data / "sub" / "broken.tif").write_bytes(b"II*\x00" + b"\x00" * 64)
    (data / "sub" / "bad.json").write_text("{not json")
    (data / "sub" / "names-missing.json").write_text(json.dumps({"after": "gone.tif", "class_table": "x.csv"}))
    cases = [
        ({"product": "sub/nope.tif"}, 404, "sub/nope.tif"),
        ({"product": "sub/broken.tif", "class_table": "change_classes.csv"}, 422, "sub/broken.tif"),
        ({"product": "sub/bad.json"}, 422, "sub/bad.json"),
        ({"product": "sub/names-missing.json"}, 404, "sub/gone.tif"),
        ({"product": "again.tif", "class_table": "sub/none.csv"}, 404, "sub/none.csv"),
    ]
    for body, status, shown in cases:
        detail = assert_problem(_post(client, auth, **body), status)["detail"]
        assert shown in detail, detail
        assert not any(root in detail for root in roots), detail
        assert not any(w.startswith("/") for w in detail.replace("(", " ").split()), detail


def _wait(client, headers, location, timeout=60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = client.get(location, headers=headers).json()
        if job["state"] in ("successful", "failed"):
            return job
        time.sleep(0.1)
    raise AssertionError("job did not finish")


def test_failed_job_message_has_no_server_path(client, auth, env):
    data = env["settings"].data_dir
    arr = np.zeros((300, 300), dtype=np.uint8)
    arr[10, 10] = 99  # not in the class table: found while scanning, after the job started
    (data / "jobs").mkdir(exist_ok=True)
    with rasterio.open(
        data / "jobs" / "odd.tif",
        "w",
        driver="GTiff",
        width=300,
        height=300,
        count=1,
        dtype="uint8",
        crs="EPSG:32649",
        transform=from_origin(300000, 4410000, 10, 10),
    ) as ds:
        ds.write(arr, 1)
    r = _post(client, auth, product="jobs/odd.tif", class_table="change_classes.csv", acquired_after="2026-10-02")
    assert r.status_code == 201, r.text
    job = _wait(client, auth("admin"), r.headers["location"])
    assert job["state"] == "failed" and "99" in job["message"], job
    assert "jobs/odd.tif" in job["message"] and "change_classes.csv" in job["message"], job
    assert str(data) not in job["message"] and str(data.resolve()) not in job["message"], job
    assert not any(w.startswith("/") for w in job["message"].split()), job


@pytest.mark.parametrize(
    "text,expected",
    [
        ("{root}/x.tif: no such file", "x.tif: no such file"),
        ("{root}/a/b.tif: class code(s) 99 are not in {root}/t.csv", "a/b.tif: class code(s) 99 are not in t.csv"),
        ("'{root}' is the folder", "'.' is the folder"),
        (
            "/etc/passwd: not a readable raster (/etc/passwd: not recognised)",
            "…/passwd: not a readable raster (…/passwd: not recognised)",
        ),
        ("{root}-other/x.tif is outside", "…/x.tif is outside"),
        ("see https://example.org/a/b and 3/4/5 and sub/x.tif", "see https://example.org/a/b and 3/4/5 and sub/x.tif"),
    ],
)
def test_hide_paths(tmp_path, text, expected):
    root = tmp_path / "data"
    root.mkdir()
    assert hide_paths(text.format(root=root), root) == expected
