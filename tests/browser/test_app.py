"""The supervision map in a real browser (see conftest.py): each test signs in with a link,
drives the page as a person would and saves screenshots of its steps."""

from __future__ import annotations

import calendar

import httpx

from .conftest import XIN, YIHE, api


def test_sign_in_link_loads_the_map(app_page, store_server):
    server = store_server  # on SQLite and on PostGIS
    p, page = app_page, app_page.page
    p.sign_in(server["tokens"]["admin"])
    assert "token" not in page.url, "the sign-in link's token stays in the address bar"
    assert page.evaluate("() => sessionStorage.getItem('redline.token')") == server["tokens"]["admin"]
    assert page.evaluate("() => localStorage.length === 0 || !Object.keys(localStorage).some(k => k.includes('token'))")
    assert page.locator("html").get_attribute("lang") == "zh-CN"
    assert page.get_by_text("生态保护红线监管").first.is_visible()
    p.shot("map-zh")
    page.get_by_role("button", name="English").click()
    page.wait_for_function("() => window.redline && window.redline.ready")
    p.wait_idle()
    assert page.get_by_role("button", name="Sign out").is_visible()
    assert "token" not in page.url
    p.shot("map-en")


def test_a_bad_token_is_refused_and_a_good_one_signs_in(app_page, server):
    p, page = app_page, app_page.page
    p.expected_errors = ("the server responded with a status of 401",)
    page.goto(f"{server['base']}/#token=rl_not-a-token")
    page.locator("form.signin .error", has_text="invalid or revoked token").wait_for()
    assert "token" not in page.url
    assert page.evaluate("() => sessionStorage.getItem('redline.token')") is None
    p.shot("refused")
    page.locator("form.signin input[name=token]").fill(server["tokens"]["viewer"])
    page.locator("form.signin button[type=submit]").click()
    page.wait_for_function("() => window.redline && window.redline.ready")
    p.wait_idle()
    assert page.locator(".who").inner_text().startswith("查看员")
    page.locator("button.signout").click()
    page.locator("form.signin").wait_for()
    assert page.evaluate("() => sessionStorage.getItem('redline.token')") is None


def _ids(server, role: str = "admin", **params) -> list[int]:
    fc = api(server, role, "/collections/flags/items", limit=1000, **params)
    return sorted(f["id"] for f in fc["features"])


def _screen_point(page, lon: float, lat: float) -> tuple[float, float]:
    """Page coordinates of a lon/lat on the map."""
    box = page.locator("#map canvas").bounding_box()
    pt = page.evaluate("([lon, lat]) => window.redline.map.project([lon, lat])", [lon, lat])
    return box["x"] + pt["x"], box["y"] + pt["y"]


def _inside(feature) -> tuple[float, float]:
    import shapely.geometry

    pt = shapely.geometry.shape(feature["geometry"]).representative_point()
    return pt.x, pt.y


def test_the_flags_layer_shows_the_flags_the_api_returns(app_page, store_server):
    server = store_server  # on SQLite and on PostGIS
    p = app_page
    p.sign_in(server["tokens"]["admin"])
    assert p.page.evaluate("() => window.redline.config.tiles"), "the app draws the API's vector tiles"
    assert p.rendered() == _ids(server)
    assert p.page.locator(".flag-list li").count() == len(_ids(server))
    p.shot("all-flags")


def test_clicking_a_flag_opens_its_panel(app_page, store_server):
    server = store_server  # on SQLite and on PostGIS
    p, page = app_page, app_page.page
    p.sign_in(server["tokens"]["admin"])
    flag = next(f for f in server["flags"] if f["properties"]["severity"] == "critical")
    page.mouse.click(*_screen_point(page, *_inside(flag)))
    panel = page.locator(".panel")
    panel.locator(f"text=图斑 #{flag['id']}").wait_for()
    panel.locator(".history table tbody tr").first.wait_for()
    assert panel.locator(".badge.sev-critical").inner_text() == "严重"
    assert panel.locator("section h4", has_text="冲突区域").is_visible()
    assert panel.locator("section:has(h4:text('冲突区域')) tbody tr").count() >= 1
    assert panel.locator("section:has(h4:text('观测记录')) tbody tr").count() >= 1
    coords = panel.locator(".coords code").inner_text()
    lon, lat = (float(v) for v in coords.split(","))
    assert abs(lon - _inside(flag)[0]) < 0.01 and abs(lat - _inside(flag)[1]) < 0.01
    assert panel.locator("a.geo").get_attribute("href") == f"geo:{lat:.6f},{lon:.6f}"
    assert f"flag={flag['id']}" in page.url, "the open flag is part of the shared view"
    p.shot("panel")
    # the flag with the field photo shows its thumbnail (fetched with the token, shown from a blob)
    first = server["flags"][0]
    page.locator(f".flag-list a[data-flag='{first['id']}']").click()
    panel.locator(f"text=图斑 #{first['id']}").wait_for()
    img = panel.locator(".thumbs img")
    img.wait_for()
    page.wait_for_function("() => document.querySelector('.thumbs img').naturalWidth > 0")
    assert img.get_attribute("src").startswith("blob:")
    img.scroll_into_view_if_needed()
    p.shot("evidence-thumbnail")


def test_an_inspector_dispatches_a_flag_and_the_history_shows_it(app_page, server):
    p, page = app_page, app_page.page
    p.sign_in(server["tokens"]["inspector"])
    fid = next(
        f["id"] for f in api(server, "inspector", "/collections/flags/items", status="new", limit=100)["features"]
    )
    page.locator(f".flag-list a[data-flag='{fid}']").click()
    panel = page.locator(".panel")
    panel.locator(f"text=图斑 #{fid}").wait_for()
    assert [b.inner_text() for b in panel.locator("button.move").all()] == ["已派发"], "the moves the API allows now"
    panel.locator("textarea.note").fill("已通知镇生态站，明日到现场核查")
    p.shot("before-move")
    panel.locator("button.move", has_text="已派发").click()
    panel.locator(".history td", has_text="新发现 → 已派发 · 已通知镇生态站，明日到现场核查").wait_for()
    assert panel.locator(".badge.status").inner_text() == "已派发"
    assert api(server, "inspector", f"/flags/{fid}")["status"] == "dispatched"
    panel.locator(".history").scroll_into_view_if_needed()
    history = api(server, "inspector", f"/flags/{fid}/history")
    assert history[-1]["actor"] == "王伟" and history[-1]["detail"]["to"] == "dispatched"
    p.shot("dispatched")
    # a field photo from the page: it is stored with the flag's point and shows as a thumbnail
    from .conftest import _photo

    panel.locator("form.upload input[type=file]").set_input_files(
        files=[{"name": "现场.jpg", "mimeType": "image/jpeg", "buffer": _photo()}]
    )
    panel.locator("form.upload input[name=note]").fill("挖掘机两台")
    panel.locator("form.upload button").click()
    panel.locator(".thumbs figcaption", has_text="挖掘机两台").wait_for()
    page.wait_for_function("() => [...document.querySelectorAll('.thumbs img')].some(i => i.naturalWidth > 0)")
    stored = api(server, "inspector", f"/flags/{fid}/evidence")
    assert stored[-1]["note"] == "挖掘机两台" and stored[-1]["actor"] == "王伟" and stored[-1]["lon"] is not None
    panel.locator(".evidence").scroll_into_view_if_needed()
    p.shot("evidence-uploaded")


def test_a_viewer_sees_no_workflow_moves(app_page, server):
    p, page = app_page, app_page.page
    p.sign_in(server["tokens"]["viewer"])
    fid = server["flags"][0]["id"]
    page.locator(f".flag-list a[data-flag='{fid}']").click()
    page.locator(".panel .history tbody tr").first.wait_for()
    assert page.locator(".panel .workflow").count() == 0
    assert page.locator(".panel form.upload").count() == 0


def _imagery_east(server, lat: float) -> float:
    """The longitude of the east edge of the sample's change rasters, at ``lat``."""
    import pyproj
    import rasterio

    with rasterio.open(server["out"] / "change_2026-06.tif") as r:
        to_lonlat = pyproj.Transformer.from_crs(r.crs, "EPSG:4326", always_xy=True)
        utm_y = pyproj.Transformer.from_crs("EPSG:4326", r.crs, always_xy=True).transform(108.8, lat)[1]
        return to_lonlat.transform(r.bounds.right, utm_y)[0]


def test_a_drawn_region_runs_a_check_and_a_screening(app_page, server):
    import shapely.geometry

    p, page = app_page, app_page.page
    p.sign_in(server["tokens"]["admin"])
    page.locator("details.checks summary").click()
    flags = shapely.geometry.MultiPolygon(
        [
            g
            for f in server["flags"]
            for g in getattr(shapely.geometry.shape(f["geometry"]), "geoms", [shapely.geometry.shape(f["geometry"])])
        ]
    )
    minx, miny, maxx, maxy = flags.buffer(0.003).bounds
    # east past the edge of the imagery, so that part of the region was never observed
    maxx = _imagery_east(server, (miny + maxy) / 2) + 0.01
    page.evaluate(
        "(b) => window.redline.map.fitBounds([[b[0], b[1]], [b[2], b[3]]], {padding: 80, duration: 0})",
        [minx, miny, maxx, maxy],
    )
    p.wait_idle()
    page.locator(".check-tool button.draw").click()
    for lon, lat in ((minx, miny), (maxx, miny), (maxx, maxy), (minx, maxy)):
        page.mouse.click(*_screen_point(page, lon, lat))
    p.shot("drawn")
    page.locator(".check-tool button.finish").click()
    with page.expect_response(lambda r: r.url.endswith("/checks")) as answered:
        page.locator(".check-tool button.run-check").click()
    answer = answered.value.json()
    result = page.locator(".check-tool .result")
    result.locator(".zones table").wait_for()
    # on the map: the region, the zones it touched, the part no image observed (hatched)
    p.wait_idle()
    drawn = page.evaluate("() => window.redline.flagMap.checkDrawn()")
    assert answer["not_observed"] is not None, "the sample's scans do not cover the whole box"
    assert drawn["parts"] == ["not_observed", "region"] and drawn["unobserved"] > 0
    assert drawn["zones"] == sorted({f"{z['name']}|{z['regime']}" for z in answer["zones"] if z["layer"] != "permit"})
    assert result.locator("dd.not-observed").inner_text().strip() == "见地图斜线区域"
    zones = result.locator(".zones tbody tr").count()
    assert zones >= 1
    touched = int(result.locator("dt:text('涉及区域') + dd").inner_text())
    assert touched == zones
    inside = result.locator("a[data-flag]").count()
    assert inside == len(server["flags"]), "every flag lies inside the drawn box"
    assert "亩" in result.inner_text() and "公顷" in result.inner_text()
    p.shot("check")
    page.locator(".check-tool select.activity").select_option("mining")
    with page.expect_response(lambda r: r.url.endswith("/screenings")) as screened:
        page.locator(".check-tool button.run-screening").click()
    screening = screened.value.json()
    result.locator(".verdict").first.wait_for()
    assert result.locator("h4 .verdict").inner_text() in ("禁止", "需审批", "无冲突")
    # the control units the footprint touches: listed with their codes, outlined on the map
    codes = sorted(u["code"] for u in screening["control_units"])
    assert codes, "the drawn box lies in the scenario's control units"
    assert sorted(c.inner_text() for c in result.locator(".units tbody code").all()) == codes
    p.wait_idle()
    assert page.evaluate("() => window.redline.flagMap.checkDrawn()")["units"] == codes
    p.shot("screening")


def test_the_control_unit_layer_switches_on_and_a_click_names_the_unit(app_page, store_server):
    import shapely
    import shapely.geometry

    server = store_server  # on SQLite and on PostGIS
    p, page = app_page, app_page.page
    asked: list[str] = []
    page.on("request", lambda r: asked.append(r.url))
    p.sign_in(server["tokens"]["admin"])
    units = api(server, "viewer", "/collections/control/items")["features"]
    assert len(units) == 3
    switch = page.locator("input[data-layer=control]")
    assert not switch.is_checked(), "control units are off by default"
    drawn = "() => window.redline.map.queryRenderedFeatures({layers: ['control-fill']}).map(f => f.properties.code)"
    assert page.evaluate(drawn) == []
    assert not [u for u in asked if "/collections/control/" in u], "a layer that is off asks for no tile"
    assert page.locator(".legend").get_by_text("重点管控单元").is_visible()
    switch.check()
    p.wait_idle()
    assert [u for u in asked if "/collections/control/tiles/" in u]
    west, south, east, north = page.evaluate("() => window.redline.map.getBounds().toArray().flat()")
    view = shapely.geometry.box(west, south, east, north)
    in_view = sorted(u["properties"]["code"] for u in units if shapely.geometry.shape(u["geometry"]).intersects(view))
    assert in_view and sorted(set(page.evaluate(drawn))) == in_view
    p.shot("control-units")
    # a click inside a unit, away from any flag, names it: its name, type and code
    unit = next(u for u in units if u["properties"]["regime"] == "key_control_unit")
    area = shapely.geometry.shape(unit["geometry"]).intersection(view.buffer(-0.002))
    flags = shapely.union_all([shapely.geometry.shape(f["geometry"]) for f in server["flags"]]).buffer(0.003)
    spot = area.difference(flags).representative_point()
    page.mouse.click(*_screen_point(page, spot.x, spot.y))
    popup = page.locator(".maplibregl-popup.unit-popup")
    popup.wait_for()
    text = popup.inner_text()
    assert unit["properties"]["name"] in text and "ZH15062520001" in text and "重点管控单元" in text
    assert page.locator(".panel").is_hidden(), "no flag was clicked"
    p.shot("control-unit-popup")
    switch.uncheck()
    p.wait_idle()
    assert page.evaluate(drawn) == [] and popup.count() == 0


def test_an_uploaded_region_runs_a_check(app_page, server, tmp_path):
    import json

    import shapely.geometry

    p, page = app_page, app_page.page
    p.sign_in(server["tokens"]["admin"])
    page.locator("details.checks summary").click()
    flag = next(f for f in server["flags"] if f["properties"]["severity"] == "critical")
    region = shapely.geometry.mapping(shapely.geometry.shape(flag["geometry"]).buffer(0.002))
    path = tmp_path / "巡查区域.geojson"
    path.write_text(
        json.dumps(
            {
                "type": "FeatureCollection",
                "features": [{"type": "Feature", "properties": {"name": "巡查区域"}, "geometry": region}],
            }
        ),
        encoding="utf-8",
    )
    page.locator(".check-tool input.region-file").set_input_files(str(path))
    page.locator(".check-tool button.run-check").click()
    result = page.locator(".check-tool .result")
    result.locator(".zones table").wait_for()
    expected = httpx.post(
        f"{server['base']}/checks", json=region, headers={"Authorization": f"Bearer {server['tokens']['admin']}"}
    ).json()
    names = [
        r.inner_text().split("\n")[0].rsplit(" ", 1)[0].strip()
        for r in result.locator(".zones tbody td:first-child").all()
    ]
    assert sorted(names) == sorted(z["name"] for z in expected["zones"])
    p.wait_idle()
    drawn = page.evaluate("() => window.redline.flagMap.checkDrawn()")
    assert drawn["zones"] == sorted({f"{z['name']}|{z['regime']}" for z in expected["zones"]}), "only the zones touched"
    assert expected["region"]["type"] == "Polygon", "the region as the server read the file"
    assert drawn["parts"] == ["region"] and expected["not_observed"] is None, (
        "outlined; observed whole: nothing hatched"
    )
    assert [int(a.inner_text()) for a in result.locator("a[data-flag]").all()] == [f["id"] for f in expected["flags"]]
    p.shot("upload-check")


def test_a_filter_changes_what_is_drawn_and_lives_in_the_url(app_page, server):
    import time

    p, page = app_page, app_page.page
    p.sign_in(server["tokens"]["admin"])
    everything = p.rendered()
    assert everything == _ids(server)
    critical = _ids(server, severity="critical")
    assert critical and critical != everything
    start = time.perf_counter()
    page.locator("fieldset[data-key=severity] label", has_text="严重").locator("input").check()
    page.wait_for_function(
        "(ids) => JSON.stringify(window.redline.flagMap.renderedFlagIds()) === JSON.stringify(ids)", arg=critical
    )
    redraw = time.perf_counter() - start
    assert "severity=critical" in page.url
    assert page.locator(".flag-list li").count() == len(critical)
    p.shot("critical-only")
    # the URL is the view: opening it again shows the same filter
    page.goto(page.url)
    page.wait_for_function("() => window.redline && window.redline.ready")
    p.wait_idle()
    assert page.locator("fieldset[data-key=severity] input[value=critical]").is_checked()
    assert p.rendered() == critical
    # the time slider: one month at a time, the same answer as the API's datetime filter
    page.locator("fieldset[data-key=severity] input[value=critical]").uncheck()
    p.wait_idle()
    months = sorted(g["month"] for g in api(server, "admin", "/stats", group_by="month")["groups"])
    slider = page.locator("input.month")
    assert slider.get_attribute("max") == str(len(months))
    slider.evaluate(
        "(el) => { el.value = '2'; el.dispatchEvent(new Event('input')); el.dispatchEvent(new Event('change')); }"
    )
    month = months[1]
    expected = _ids(server, datetime=f"{month}-01/{page.locator('input.to').input_value()}")
    assert page.locator("input.from").input_value() == f"{month}-01"
    page.wait_for_function(
        "(ids) => JSON.stringify(window.redline.flagMap.renderedFlagIds()) === JSON.stringify(ids)", arg=expected
    )
    assert page.locator(".months output").inner_text() == month
    p.shot("one-month")
    # the layer switch hides the flags; the zones stay
    page.locator("[data-layer=flags]").uncheck()
    p.wait_idle(flags=False)
    assert p.rendered() == []
    assert page.evaluate("() => window.redline.map.queryRenderedFeatures({layers: ['redline-fill']}).length") > 0
    p.shot("flags-hidden")
    _record("filter_redraw_s", round(redraw, 3))


def test_filters_redraw_the_map_on_the_client_and_the_list_from_the_api(app_page, store_server):
    """Every filter the flag tiles can express is applied by the map itself (no new tile); the
    list asks the API; both show the flags the API returns for the same filters."""
    server = store_server  # on SQLite and on PostGIS
    p, page = app_page, app_page.page
    p.sign_in(server["tokens"]["admin"])
    tiles: list[str] = []
    page.on("request", lambda r: "/tiles/" in r.url and tiles.append(r.url))
    flags = [f["properties"] for f in server["flags"]]
    month = min(f["first_seen"] for f in flags)[:7]
    end = f"{month}-{calendar.monthrange(int(month[:4]), int(month[5:]))[1]}"
    cases = [
        ({"severity": ["high", "critical"]}, {"severity": ["high", "critical"]}),
        ({"status": ["new"]}, {"status": ["new"]}),
        ({"activity": [flags[0]["activity"]]}, {"activity": [flags[0]["activity"]]}),
        ({"admin": [YIHE]}, {"admin": [YIHE]}),
        ({"from": f"{month}-01", "to": end}, {"datetime": f"{month}-01/{end}"}),
        (
            {"severity": ["critical", "high", "medium"], "admin": [XIN], "from": f"{month}-15"},
            {"severity": ["critical", "high", "medium"], "admin": [XIN], "datetime": f"{month}-15/.."},
        ),
    ]
    for filters, params in cases:
        ui = {"status": [], "severity": [], "activity": [], "admin": [], "from": "", "to": "", **filters}
        page.evaluate(
            """(f) => { for (const [k, vs] of Object.entries(f)) {
                 if (Array.isArray(vs) && k !== 'admin') for (const i of document.querySelectorAll(
                   `fieldset[data-key=${k}] input`)) i.checked = vs.includes(i.value); }
               document.querySelector('select.admin').value = f.admin[0] || '';
               document.querySelector('input.from').value = f.from; document.querySelector('input.to').value = f.to;
               document.querySelector('input.to').dispatchEvent(new Event('change')); }""",
            ui,
        )
        expected = _ids(server, **params)
        page.wait_for_function(
            "(ids) => JSON.stringify(window.redline.flagMap.renderedFlagIds()) === JSON.stringify(ids)", arg=expected
        )
        page.wait_for_function(
            "(ids) => JSON.stringify([...document.querySelectorAll('.flag-list a')].map(a => +a.dataset.flag)"
            ".sort((a, b) => a - b)) === JSON.stringify(ids)",
            arg=expected,
        )
        assert page.locator(".list .count").inner_text() == f"(共 {len(expected)} 处)", filters
    assert not tiles, f"a filter change fetched tiles: {tiles[:3]}"
    assert f"admin={XIN}" in page.url and "severity=medium,high,critical" in page.url
    p.shot("client-filters")


def test_at_point_zooms_the_map_still_shows_what_the_api_returns(app_page, store_server):
    """Below zoom 10 the tiles hold one point per pixel cell (its most severe flag): a filter
    the client applies exactly there (this severity and above) fetches nothing; any other is
    drawn at once and then replaced by tiles the API filtered."""
    server = store_server  # on SQLite and on PostGIS
    p, page = app_page, app_page.page
    p.sign_in(server["tokens"]["admin"])
    page.evaluate("() => window.redline.map.jumpTo({zoom: 9.2})")
    p.wait_idle()
    assert p.rendered() == _ids(server), "at zoom 9 each sample flag has a pixel cell of its own"
    tiles: list[str] = []
    page.on("request", lambda r: "/tiles/" in r.url and tiles.append(r.url))
    page.locator("fieldset[data-key=severity] input[value=critical]").check()
    page.locator("fieldset[data-key=severity] input[value=high]").check()
    expected = _ids(server, severity=["high", "critical"])
    page.wait_for_function(
        "(ids) => JSON.stringify(window.redline.flagMap.renderedFlagIds()) === JSON.stringify(ids)", arg=expected
    )
    assert not tiles, "high and above is exact on thinned points: nothing to fetch"
    page.locator("fieldset[data-key=severity] input[value=critical]").uncheck()
    page.locator("fieldset[data-key=status] input[value=new]").check()
    expected = _ids(server, severity="high", status="new")
    page.wait_for_function(
        "(ids) => JSON.stringify(window.redline.flagMap.renderedFlagIds()) === JSON.stringify(ids)", arg=expected
    )
    p.wait_idle(flags=bool(expected))
    assert p.rendered() == expected
    assert any("status=new" in u and "severity=high" in u for u in tiles), tiles[:2]
    assert all("/collections/flags/" in u for u in tiles), "only the flag points are fetched again"
    p.shot("points-filtered")


def test_the_inspector_of_one_township_never_sees_another_townships_flags(app_page, server):
    p, page = app_page, app_page.page
    p.sign_in(server["tokens"]["inspector_yihe"])
    own = _ids(server, "inspector_yihe")
    assert own and set(own) <= set(_ids(server, admin=YIHE))
    assert p.rendered() == own
    listed = [int(a.get_attribute("data-flag")) for a in page.locator(".flag-list a").all()]
    assert listed == own
    assert [o.get_attribute("value") for o in page.locator("select.admin option").all()] == ["", YIHE]
    # zoomed out over the whole banner, still nothing of XIN
    page.evaluate("() => window.redline.map.jumpTo({zoom: 8})")
    p.wait_idle()
    assert p.rendered() == own
    p.shot("yihe-only")
    # asking for XIN's flags in the address bar is refused by the API; nothing of XIN is drawn
    p.expected_errors = ("the server responded with a status of 403",)  # the browser logs the refusals
    page.goto(f"{server['base']}/?admin={XIN}")
    page.wait_for_function("() => window.redline && window.redline.ready")
    page.locator(".flag-list .error").wait_for()
    p.wait_idle(flags=False)
    assert p.rendered() == []
    p.shot("xin-refused")
    assert page.locator(".notice").inner_text() == f"无权限: admin unit(s) {XIN} are outside your jurisdiction"


def _move(server, fid: int, *steps: tuple[str, dict]) -> None:
    for status, extra in steps:
        r = httpx.patch(
            f"{server['base']}/flags/{fid}",
            json={"status": status, "note": "浏览器测试", **extra},
            headers={"Authorization": f"Bearer {server['tokens']['admin']}"},
        )
        assert r.status_code == 200, r.text


def _ledger(server) -> dict:
    """The inspector's ledger (XIN's), with two problems put on it if it has none: one overdue,
    one being rectified."""
    ledger = api(server, "inspector", "/ledger", f="json")
    if not ledger["items"]:
        new = [
            f["id"] for f in api(server, "inspector", "/collections/flags/items", status="new", limit=100)["features"]
        ]
        assert len(new) >= 3
        _move(
            server,
            new[-1],
            ("dispatched", {}),
            ("verified_violation", {"responsible": "镇政府", "deadline": "2026-01-31"}),
        )
        _move(
            server,
            new[-2],
            ("dispatched", {}),
            ("verified_violation", {"responsible": "镇政府", "deadline": "2099-12-31"}),
            ("rectifying", {}),
        )
        ledger = api(server, "inspector", "/ledger", f="json")
    return ledger


def test_the_overview_charts_come_from_stats_and_the_ledger(app_page, store_server):
    server = store_server  # on SQLite and on PostGIS
    p, page = app_page, app_page.page
    ledger = _ledger(server)
    summary = ledger["summary"]
    assert summary and all(g["admin_code"] == XIN for g in summary), "the inspector's ledger is XIN's"
    p.sign_in(server["tokens"]["inspector"], query="?view=overview")
    for key in ("month", "severity", "activity", "region", "status", "progress"):
        page.locator(f".chart[data-key={key}] canvas").wait_for()
    page.wait_for_function(
        "() => document.querySelectorAll('.chart canvas').length === 6 && "
        "[...document.querySelectorAll('.chart canvas')].every(c => c.width > 0)"
    )
    assert page.locator(".chart .error").count() == 0
    fig = page.locator(".chart[data-key=progress]")
    assert fig.locator("figcaption").inner_text().startswith("整改进展")
    counts = {s.get_attribute("data-status"): int(s.locator("b").inner_text()) for s in fig.locator(".state").all()}
    assert counts == {
        s: sum(i["status"] == s for i in ledger["items"])
        for s in ("verified_violation", "rectifying", "rectified", "closed")
    }
    rows = [[c.inner_text() for c in r.locator("td").all()] for r in fig.locator(".progress-table tbody tr").all()]
    assert rows == [
        [
            g["admin_name"],
            str(g["problems"]),
            str(g["rectified"]),
            f"{round(100 * g['rectified_share'])}%",
            str(g["overdue"]),
        ]
        for g in summary
    ]
    assert any(g["overdue"] for g in summary), "a problem past its deadline is counted overdue"
    fig.scroll_into_view_if_needed()
    p.shot("overview")
    # in English
    page.locator("button.lang").click()
    page.wait_for_function("() => window.redline && window.redline.ready")
    fig.locator(".progress-table tbody tr").first.wait_for()
    assert fig.locator("figcaption").inner_text().startswith("Rectification progress")
    assert fig.locator("thead").inner_text().split("\t")[:2] == ["Admin unit", "Problems"]
    fig.scroll_into_view_if_needed()
    p.shot("overview-en")


PROGRESS_SHOWN = """() => Object.fromEntries([...document.querySelectorAll('.chart[data-key=progress] .state')]
    .map((s) => [s.dataset.status, Number(s.querySelector('b').textContent)]))"""
# the progress view shows these counts in the ledger's states
PROGRESS_IS = f"""(want) => {{ const got = ({PROGRESS_SHOWN})();
    return Object.keys(got).length === Object.keys(want).length
      && Object.entries(want).every(([k, v]) => got[k] === v); }}"""


def test_the_progress_view_follows_the_page_filters(app_page, store_server):
    server = store_server
    p, page = app_page, app_page.page
    ledger = _ledger(server)

    def severities(ledger: dict) -> dict[int, str]:
        return {
            i["id"]: api(server, "inspector", f"/collections/flags/items/{i['id']}")["properties"]["severity"]
            for i in ledger["items"]
        }

    sev = severities(ledger)
    if len(set(sev.values())) < 2:  # a problem of another severity, so that a severity filter tells them apart
        other = next(
            f["id"]
            for f in api(server, "inspector", "/collections/flags/items", status="new", limit=200)["features"]
            if f["properties"]["severity"] not in sev.values()
        )
        _move(
            server,
            other,
            ("dispatched", {}),
            ("verified_violation", {"responsible": "镇政府", "deadline": "2099-12-31"}),
        )
        ledger = api(server, "inspector", "/ledger", f="json")
        sev = severities(ledger)
    pick = next(iter(sev.values()))
    filtered = api(server, "inspector", "/ledger", f="json", severity=pick)
    assert 0 < sum(filtered["states"].values()) < sum(ledger["states"].values())
    p.sign_in(server["tokens"]["inspector"], query="?view=overview")
    fig = page.locator(".chart[data-key=progress]")
    page.wait_for_function(PROGRESS_IS, arg=ledger["states"])
    # ticking a severity in the page's filters: the progress is the API's for that severity
    page.locator(f"fieldset[data-key=severity] input[value={pick}]").check()
    page.wait_for_function(PROGRESS_IS, arg=filtered["states"])
    assert page.evaluate(PROGRESS_SHOWN) == filtered["states"]
    rows = [[c.inner_text() for c in r.locator("td").all()] for r in fig.locator(".progress-table tbody tr").all()]
    want = [[g["admin_name"], str(g["problems"]), str(g["rectified"])] for g in filtered["summary"]]
    assert [r[:3] for r in rows] == want
    assert f"severity={pick}" in page.url
    fig.scroll_into_view_if_needed()
    p.shot("progress-filtered")


def test_json_clients_keep_the_landing_page(server):
    r = httpx.get(f"{server['base']}/", headers={"Accept": "application/json"})
    assert r.headers["content-type"].startswith("application/json") and r.json()["title"] == "redline"
    r = httpx.get(f"{server['base']}/")
    assert r.headers["content-type"].startswith("application/json")
    r = httpx.get(f"{server['base']}/", headers={"Accept": "text/html,application/xhtml+xml,*/*;q=0.8"})
    assert r.headers["content-type"].startswith("text/html") and "/app/assets/" in r.text
    assert "default-src 'self'" in r.headers["content-security-policy"]
    for bad in (
        "/app/../pyproject.toml",
        "/app/%2e%2e/pyproject.toml",
        "/app/assets/..%2f..%2fpackage.json",
        "/app/node_modules/maplibre-gl/package.json",
    ):
        assert httpx.get(f"{server['base']}{bad}").status_code == 404, bad


def _record(key: str, value) -> None:
    import json

    from .conftest import ARTEFACTS

    ARTEFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTEFACTS / "timings.json"
    data = json.loads(path.read_text()) if path.exists() else {}
    data[key] = value
    path.write_text(json.dumps(data, indent=2))
