"""Reports through the API: a flag's problem sheet, a check as PDF/HTML (both stores)."""

from __future__ import annotations

import io
import json
import re
import subprocess

from fastapi.testclient import TestClient
from pypdf import PdfReader

from api.app import create_app

from ..scenario import ROOT
from .conftest import XIN, YIHE, assert_problem

RESERVE = "杭锦旗梭梭林自然保护区"


def _flags(client, auth) -> list[dict]:
    return client.get("/collections/flags/items?limit=1000", headers=auth("admin")).json()["features"]


def _text(data: bytes, tmp_path) -> str:
    path = tmp_path / "r.pdf"
    path.write_bytes(data)
    return subprocess.run(["pdftotext", "-raw", str(path), "-"], capture_output=True, text=True, check=True).stdout


def test_flag_report_pdf_and_html(client, auth, tmp_path):
    flag = next(f for f in _flags(client, auth) if f["properties"]["severity"] == "critical")
    r = client.get(f"/flags/{flag['id']}/report", headers=auth("viewer"))
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "application/pdf"
    assert f'filename="flag-{flag["id"]}.pdf"' in r.headers["content-disposition"]
    assert len(PdfReader(io.BytesIO(r.content)).pages) >= 1
    text = _text(r.content, tmp_path)
    assert RESERVE in text and "锡尼镇" in text and f"flag #{flag['id']}" in text

    r = client.get(f"/flags/{flag['id']}/report?f=html", headers=auth("inspector"))
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/html")
    assert "default-src 'none'" in r.headers["content-security-policy"]
    html = r.text
    assert RESERVE in html and not re.search(r"https?://", html) and "<script" not in html


def test_flag_report_refusals(client, auth):
    flags = _flags(client, auth)
    xin = next(f["id"] for f in flags if f["properties"]["admin_code"] == XIN)
    assert_problem(client.get(f"/flags/{xin}/report", headers=auth("inspector_yihe")), 403, "jurisdiction")
    assert_problem(client.get("/flags/999999/report", headers=auth("admin")), 404)
    assert_problem(client.get(f"/flags/{xin}/report?f=docx", headers=auth("admin")), 422)
    yihe = next(f["id"] for f in flags if f["properties"]["admin_code"] == YIHE)
    assert client.get(f"/flags/{yihe}/report?f=html", headers=auth("inspector_yihe")).status_code == 200


def test_check_report_from_the_api(client, auth, tmp_path):
    region = json.loads((ROOT / "sample_data" / "check_region.geojson").read_text())
    r = client.post("/checks?f=pdf", json=region, headers=auth("inspector_yihe"))
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "application/pdf"
    text = re.sub(r"\s+", "", _text(r.content, tmp_path))  # names wrap in table cells
    assert "Checkreport" in text and "伊和乌素苏木" in text and "毛乌素沙地生物多样性维护生态保护红线" in text
    r = client.post("/checks?f=html", json=region, headers=auth("inspector_yihe"))
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    html = r.text
    assert not re.search(r"https?://", html)
    # the inspector's report lists only their township's flags, as the JSON answer does
    answer = client.post("/checks", json=region, headers=auth("inspector_yihe")).json()
    ids = {int(i) for i in re.findall(r'<tr><td class="n">(\d+)</td>', html)}
    assert ids == {f["id"] for f in answer["flags"]} and ids
    assert_problem(client.post("/checks?f=xls", json=region, headers=auth("admin")), 422)


def test_report_maps_take_the_basemap_setting(env, auth, tile_server):
    # the app's REDLINE_BASEMAP_URL reaches the sheet and the check report its workers draw
    settings = env["settings"].model_copy(update={"basemap_url": tile_server.url})
    with TestClient(create_app(settings)) as client:
        flag_id = client.get("/collections/flags/items?limit=1", headers=auth("admin")).json()["features"][0]["id"]
        region = json.loads((ROOT / "sample_data" / "check_region.geojson").read_text())
        for method, path, body in (
            ("GET", f"/flags/{flag_id}/report?f=html", None),
            ("POST", "/checks?f=html", region),
        ):
            before = len(tile_server.asked)
            r = client.request(method, path, json=body, headers=auth("admin"))
            assert r.status_code == 200, r.text
            assert len(tile_server.asked) > before, f"no tile asked for by {path}"
            assert "底图" in r.text  # the legend names the basemap
