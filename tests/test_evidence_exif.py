"""EXIF GPS position and time of evidence photos (JPEG, HEIC): stored, the distance to the flag
measured on the ellipsoid, a warning when the photo was taken far from it; hostile photos are
stored without a position, never a server error."""

from __future__ import annotations

import io
import json
import os
import struct
import subprocess
import sys
from pathlib import Path

import pytest
import shapely
from PIL import Image
from PIL.TiffImagePlugin import IFDRational

from redline.errors import InputError
from redline.evidence import photo_position, save_evidence
from redline.geo import GEOD

from .api.conftest import XIN, assert_problem, auth, client, env  # noqa: F401  (fixtures)
from .test_store import FLAG

REDLINE = str(Path(sys.executable).with_name("redline"))
BOX = shapely.box(108, 39, 108.01, 39.01)  # the flag


def _dms(value: float) -> tuple:
    value = abs(value)
    d = int(value)
    m = int((value - d) * 60)
    s = round(((value - d) * 60 - m) * 60, 4)
    return (IFDRational(d), IFDRational(m), IFDRational(int(s * 10000), 10000))


def exif_for(lon: float | None, lat: float | None, when: str | None = "2026:09:01", at=(2, 30, 5), **raw) -> Image.Exif:
    exif = Image.Exif()
    gps: dict = {}
    if lon is not None and lat is not None:
        gps = {1: "N" if lat >= 0 else "S", 2: _dms(lat), 3: "E" if lon >= 0 else "W", 4: _dms(lon)}
    if when:
        gps |= {29: when, 7: tuple(IFDRational(x) for x in at)}
    gps |= raw
    if gps:
        exif[0x8825] = gps
    return exif


def photo(lon=None, lat=None, fmt="JPEG", exif: Image.Exif | None = None, **kw) -> bytes:
    img = Image.new("RGB", (64, 48), (40, 120, 40))
    buf = io.BytesIO()
    exif = exif if exif is not None else exif_for(lon, lat, **kw)
    if fmt == "HEIF":
        import pillow_heif

        pillow_heif.register_heif_opener()
        img.save(buf, format="HEIF", exif=exif.tobytes())
    else:
        img.save(buf, format=fmt, exif=exif)
    return buf.getvalue()


def _save(store, tmp_path, fid, data: bytes, **kw) -> dict:
    return save_evidence(store, tmp_path / "evidence", fid, io.BytesIO(data), original_name="p.jpg", actor="insp", **kw)


@pytest.fixture
def fid(store):
    return store.insert_flag({**FLAG, "admin_code": XIN}, BOX)


def test_a_photo_on_the_flag_gets_its_position_time_and_no_warning(store, tmp_path, fid):
    e = _save(store, tmp_path, fid, photo(108.005, 39.005))
    assert e["position_source"] == "exif" and e["distance_m"] == 0 and e["warning"] is None
    assert e["lon"] == pytest.approx(108.005, abs=1e-6) and e["lat"] == pytest.approx(39.005, abs=1e-6)
    assert e["taken_at"] == "2026-09-01T02:30:05+00:00"  # GPS time is UTC
    (row,) = store.evidence(fid)
    assert {k: row[k] for k in ("lon", "lat", "position_source", "distance_m", "warning")} == {
        k: e[k] for k in ("lon", "lat", "position_source", "distance_m", "warning")
    }
    assert row["taken_at"].replace(" ", "T").startswith("2026-09-01T02:30:05")


@pytest.mark.parametrize("fmt", ["JPEG", "HEIF"])
def test_a_photo_far_from_its_flag_is_stored_with_a_warning(store, tmp_path, fid, fmt):
    lon, lat = 108.005, 39.02  # north of the flag's top edge (39.01)
    e = _save(store, tmp_path, fid, photo(lon, lat, fmt=fmt), max_distance_m=200)
    _, _, expected = GEOD.inv(lon, lat, lon, 39.01)  # to the nearest point of the flag, on the ellipsoid
    assert e["distance_m"] == pytest.approx(expected, abs=0.5) and 1000 < e["distance_m"] < 1200
    assert e["warning"].startswith(f"taken {expected:,.0f} m from the flag (more than 200 m)")
    assert e["content_type"] == ("image/heic" if fmt == "HEIF" else "image/jpeg")
    assert store.evidence(fid)[0]["warning"] == e["warning"]
    # the same photo, with a larger allowance: no warning
    assert _save(store, tmp_path, fid, photo(lon, lat, fmt=fmt), max_distance_m=5000)["warning"] is None


def test_the_given_point_wins_and_times_without_gps(store, tmp_path, fid):
    # a point given with the upload is the evidence's position, whatever the photo says
    e = _save(store, tmp_path, fid, photo(110.0, 30.0), lon=108.005, lat=39.005)
    assert e["position_source"] == "given" and e["distance_m"] == 0 and e["warning"] is None
    # no GPS: the camera's original time (with its offset, else China Standard Time), no position
    exif = Image.Exif()
    exif[0x8769] = {36867: "2026:09:01 10:30:05", 36881: "+08:00"}
    e = _save(store, tmp_path, fid, photo(exif=exif))
    assert e["position_source"] is None and e["lon"] is None and e["distance_m"] is None and e["warning"] is None
    assert e["taken_at"] == "2026-09-01T10:30:05+08:00"
    exif[0x8769] = {36867: "2026:09:01 10:30:05"}
    assert _save(store, tmp_path, fid, photo(exif=exif))["taken_at"] == "2026-09-01T10:30:05+08:00"
    # PNG and PDF: no EXIF read at all
    e = _save(store, tmp_path, fid, photo(108.005, 39.005, fmt="PNG"))
    assert e["content_type"] == "image/png" and e["position_source"] is None


def _bomb() -> bytes:
    """A small JPEG whose frame header claims 65000 × 65000 pixels."""
    data = bytearray(photo(108.005, 39.005))
    sof = data.index(b"\xff\xc0")
    data[sof + 5 : sof + 9] = struct.pack(">HH", 65000, 65000)
    return bytes(data)


@pytest.mark.parametrize(
    "make,problem",
    [
        (lambda: photo(108.005, 39.005)[:300], "photo metadata unreadable"),  # truncated inside the EXIF
        (_bomb, "photo metadata unreadable (DecompressionBombError)"),
        (lambda: photo(exif=exif_for(108.005, 95.5)), "EXIF GPS position unreadable"),  # latitude 95°
        (lambda: photo(exif=_zero_denominators()), "EXIF GPS position unreadable"),
        (lambda: photo(108.005, 39.005, when="20xx:99:99"), "EXIF date unreadable"),
    ],
    ids=["truncated", "bomb", "latitude-95", "zero-denominators", "bogus-date"],
)
def test_hostile_photos_are_stored_without_a_position(store, tmp_path, fid, make, problem):
    e = _save(store, tmp_path, fid, make())
    assert problem in e["warning"]
    if "date" not in problem:
        assert e["lon"] is None and e["lat"] is None and e["distance_m"] is None and e["position_source"] is None
    assert len(store.evidence(fid)) == 1


def _zero_denominators() -> Image.Exif:
    exif = Image.Exif()
    exif[0x8825] = {1: "N", 2: (IFDRational(39, 0),) * 3, 3: "E", 4: (IFDRational(108),) * 3}
    return exif


def test_photo_position_of_junk_never_raises(tmp_path):
    junk = tmp_path / "junk.jpg"
    junk.write_bytes(b"\xff\xd8\xff" + os.urandom(4000))
    assert photo_position(junk).lon is None and photo_position(junk).problem
    with pytest.raises(InputError):  # not a photo at all: refused before anything is stored
        from redline.evidence import sniff

        sniff(b"GIF89a")


def test_cli_add_and_list_show_the_distance_and_warning(tmp_path):
    from redline.store import open_store

    url = f"sqlite:///{tmp_path / 'store.db'}"
    s = open_store(url)
    try:
        fid = s.insert_flag({**FLAG, "admin_code": XIN}, BOX)
    finally:
        s.close()
    (tmp_path / "far.heic").write_bytes(photo(108.005, 39.02, fmt="HEIF"))
    environ = {**os.environ, "REDLINE_DATABASE_URL": url, "REDLINE_EVIDENCE_DIR": str(tmp_path / "ev")}
    r = subprocess.run(
        [REDLINE, "evidence", "add", str(fid), str(tmp_path / "far.heic"), "--json"],
        env=environ,
        capture_output=True,
        text=True,
    )
    assert r.returncode == 0, r.stderr
    added = json.loads(r.stdout)
    assert added["content_type"] == "image/heic" and "from the flag" in added["warning"]
    r = subprocess.run([REDLINE, "evidence", "list", str(fid), "--json"], env=environ, capture_output=True, text=True)
    (row,) = json.loads(r.stdout)
    assert row["distance_m"] == added["distance_m"] and row["warning"] == added["warning"]
    r = subprocess.run([REDLINE, "evidence", "list", str(fid)], env=environ, capture_output=True, text=True)
    assert "from the flag" in r.stdout and "far.heic" in r.stdout
    r = subprocess.run(
        [REDLINE, "evidence", "add", str(fid), str(tmp_path / "nope.jpg")], env=environ, capture_output=True, text=True
    )
    assert r.returncode == 2 and "no such file" in r.stderr and "Traceback" not in r.stderr
    r = subprocess.run([REDLINE, "evidence", "list", "999"], env=environ, capture_output=True, text=True)
    assert r.returncode == 2 and "does not exist" in r.stderr


def test_api_upload_answers_the_position_distance_and_warning(env, client, auth):  # noqa: F811
    from redline.store import FlagFilter, open_store

    store = open_store(env["url"])
    try:
        flag = store.flags(FlagFilter(admin_code=[XIN], limit=1))[0]
    finally:
        store.close()
    c = flag["geometry"].centroid
    far = photo(c.x, c.y + 0.05)  # ~5.5 km north
    r = client.post(
        f"/flags/{flag['id']}/evidence", files={"file": ("far.jpg", far, "image/jpeg")}, headers=auth("inspector")
    )
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["position_source"] == "exif" and body["distance_m"] > 5000 and "from the flag" in body["warning"]
    assert body["taken_at"] == "2026-09-01T02:30:05+00:00"
    near = client.post(
        f"/flags/{flag['id']}/evidence",
        files={"file": ("near.heic", photo(c.x, c.y, fmt="HEIF"), "image/heic")},
        headers=auth("inspector"),
    ).json()
    assert near["content_type"] == "image/heic" and near["distance_m"] < 200 and near["warning"] is None
    listed = {e["id"]: e for e in client.get(f"/flags/{flag['id']}/evidence", headers=auth("inspector")).json()}
    assert listed[body["id"]]["warning"] == body["warning"] and listed[near["id"]]["warning"] is None
    # hostile photos: stored without a position (201), never a 500
    for data in (_bomb(), far[:300]):
        r = client.post(f"/flags/{flag['id']}/evidence", files={"file": ("x.jpg", data)}, headers=auth("inspector"))
        assert r.status_code == 201 and r.json()["lon"] is None and r.json()["warning"]
    assert_problem(
        client.post(
            f"/flags/{flag['id']}/evidence", files={"file": ("x.gif", b"GIF89a....")}, headers=auth("inspector")
        ),
        422,
    )


@pytest.mark.parametrize("fmt", ["JPEG", "HEIF"])
def test_the_problem_sheet_shows_the_photo_its_distance_and_the_warning(store, tmp_path, fid, fmt):
    from redline.reports.sheet import evidence_items

    e = _save(store, tmp_path, fid, photo(108.005, 39.02, fmt=fmt), max_distance_m=200)
    [item] = evidence_items(store, tmp_path / "evidence", fid)
    assert item["src"] and item["src"].startswith("data:image/jpeg;base64,")  # a thumbnail, HEIC included
    assert (item["distance_m"], item["warning"], item["taken_at"]) == (e["distance_m"], e["warning"], e["taken_at"])
    from redline.reports import flag_report

    html = flag_report(store, fid, "html", evidence_dir=tmp_path / "evidence").decode()
    assert e["warning"] in html and f"{e['distance_m']:,.0f} m from the flag" in html
    assert item["src"] in html
