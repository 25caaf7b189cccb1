"""Field packets (redline.packet): GeoPackage, KML, GPX, problem sheets and a manifest in one
zip, holding exactly the filtered flags; opened with GDAL (pyogrio), not with our own code."""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import subprocess
import sys
import zipfile
from pathlib import Path

import pyogrio
import pytest
from defusedxml.ElementTree import fromstring

from redline.auth import Principal
from redline.config import Settings
from redline.errors import InputError, PermissionDeniedError
from redline.packet import write_packet
from redline.store import FlagFilter, open_store

from .scenario import build

REDLINE = str(Path(sys.executable).with_name("redline"))
XIN, YIHE = "150625100", "150625201"
GPX = "{http://www.topografix.com/GPX/1/1}"


@pytest.fixture(scope="module")
def sample(tmp_path_factory):
    out = tmp_path_factory.mktemp("packet")
    _, url = build(out)
    return out, url


def _unpack(path: Path, into: Path) -> dict:
    with zipfile.ZipFile(path) as z:
        z.extractall(into)
        names = set(z.namelist())
    manifest = json.loads((into / "manifest.json").read_text())
    assert names == {*manifest["files"], "manifest.json", "README.txt"}
    for name, meta in manifest["files"].items():  # the sums are those of the files
        data = (into / name).read_bytes()
        assert hashlib.sha256(data).hexdigest() == meta["sha256"] and len(data) == meta["bytes"]
    return manifest


def _ids(path: Path, layer: str | None = None) -> list[int]:
    df = pyogrio.read_dataframe(path, layer=layer)
    return sorted(int(i) for i in df["id"])


def test_packet_by_cli_holds_exactly_the_filtered_flags(sample, tmp_path):
    out, url = sample
    store = open_store(url)
    try:
        want = sorted(f["id"] for f in store.flags(FlagFilter(admin_code=[XIN], severity=["high", "critical"])))
        every = sorted(f["id"] for f in store.flags())
    finally:
        store.close()
    assert want and len(want) < len(every)  # the filter matters
    env = {**os.environ, "REDLINE_DATABASE_URL": url}
    dest = tmp_path / "xin.zip"
    args = ["packet", "--admin", XIN, "--severity", "high", "--severity", "critical", "-o", str(dest), "--json"]
    r = subprocess.run([REDLINE, *args], env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    said = json.loads(r.stdout)
    assert said["counts"]["flags"] == len(want) and said["flag_ids"] == want
    got = tmp_path / "got"
    manifest = _unpack(dest, got)
    assert manifest["filters"] == {"severity": ["high", "critical"], "admin_code": [XIN]}
    # GeoPackage: flags (polygons) with the QGIS style, their centroids, the zones they touch
    gpkg = got / "flags.gpkg"
    layers = dict(pyogrio.list_layers(gpkg))
    assert layers == {"flags": "MultiPolygon", "flag_points": "Point", "zones": "MultiPolygon", "layer_styles": None}
    assert _ids(gpkg, "flags") == want and _ids(gpkg, "flag_points") == want
    zones = pyogrio.read_dataframe(gpkg, layer="zones")
    assert len(zones) == manifest["counts"]["zones"] > 0 and set(zones["kind"]) <= {"redline", "reserve", "permit"}
    flags = pyogrio.read_dataframe(gpkg, layer="flags")
    assert all(zones.geometry.union_all().intersects(g) for g in flags.geometry)
    with sqlite3.connect(gpkg) as db:
        (qml,) = db.execute("SELECT styleQML FROM layer_styles WHERE f_table_name = 'flags'").fetchone()
    assert "categorizedSymbol" in qml
    # KML: named placemarks styled by severity
    kml = got / "flags.kml"
    assert len(pyogrio.read_dataframe(kml)) == len(want)
    root = fromstring(kml.read_bytes())
    q = "{http://www.opengis.net/kml/2.2}"
    marks = list(root.iter(f"{q}Placemark"))
    assert sorted(int(m.find(f"{q}name").text.split()[0].lstrip("#")) for m in marks) == want
    assert {m.find(f"{q}styleUrl").text for m in marks} <= {"#severity-high", "#severity-critical"}
    # GPX: one waypoint per flag at its centroid, named by flag id
    gpx = fromstring((got / "flags.gpx").read_bytes())
    wpts = gpx.findall(f"{GPX}wpt")
    assert sorted(int(w.find(f"{GPX}name").text.lstrip("#")) for w in wpts) == want
    points = pyogrio.read_dataframe(gpkg, layer="flag_points").set_index("id")
    for w in wpts:
        p = points.loc[int(w.find(f"{GPX}name").text.lstrip("#"))]
        assert float(w.get("lon")) == pytest.approx(p["lon"]) and float(w.get("lat")) == pytest.approx(p["lat"])
    # the problem sheets when PDF rendering works, else the manifest says why not
    sheets = manifest["problem_sheets"]
    if sheets["included"]:
        assert (got / "problem-sheets.pdf").read_bytes().startswith(b"%PDF")
    else:
        assert sheets["reason"] and "problem sheets" in (got / "README.txt").read_text()
    assert str(len(want)) in (got / "README.txt").read_text()


def test_packet_limits_and_jurisdiction(sample, tmp_path):
    out, url = sample
    store = open_store(url)
    try:
        n = store.count_flags()
        with pytest.raises(InputError, match=f"{n} flags match; a field packet holds at most 2"):
            write_packet(store, tmp_path / "p.zip", settings=Settings(database_url=url, packet_max_flags=2))
        assert not (tmp_path / "p.zip").exists() and list(tmp_path.iterdir()) == []  # nothing left behind
        with pytest.raises(InputError, match="no flags match"):
            write_packet(store, tmp_path / "p.zip", FlagFilter(admin_code=["nowhere"]))
        with pytest.raises(InputError, match=".zip"):
            write_packet(store, tmp_path / "p.gpkg")
        # an inspector's packet: their township's flags only, whatever the filters ask
        yihe = Principal("j", "inspector", (YIHE,))
        with pytest.raises(PermissionDeniedError):
            write_packet(store, tmp_path / "p.zip", FlagFilter(admin_code=[XIN]), principal=yihe)
        manifest = write_packet(store, tmp_path / "yihe.zip", principal=yihe, sheets=False)
        want = sorted(f["id"] for f in store.flags(FlagFilter(admin_code=[YIHE])))
        assert manifest["flag_ids"] == want and manifest["problem_sheets"]["included"] is False
    finally:
        store.close()
    got = tmp_path / "got"
    _unpack(tmp_path / "yihe.zip", got)
    assert _ids(got / "flags.gpkg", "flags") == want
    assert len(pyogrio.read_dataframe(got / "flags.gpx", layer="waypoints")) == len(want)
    # a CLI mistake is one line, no traceback
    env = {**os.environ, "REDLINE_DATABASE_URL": url}
    r = subprocess.run(
        [REDLINE, "packet", "--admin", "nowhere", "-o", str(tmp_path / "x.zip")],
        env=env,
        capture_output=True,
        text=True,
    )
    assert r.returncode == 2 and "no flags match" in r.stderr and "Traceback" not in r.stderr
