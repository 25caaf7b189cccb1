"""Zones a page at a time, in the store (OGC API Features over the protection layers): the
exact region predicate, CQL2 filters and sortby in SQL, numbers matched; both stores alike
and as a plain reading of every zone in Python says."""

from __future__ import annotations

from dataclasses import replace

import pytest
import shapely

from redline import cql
from redline.errors import NotFoundError
from redline.store import ZoneFilter

from .test_postgis_parity import same, stores  # noqa: F401 - the fixture: the scenario in both stores

KINDS = ("redline", "reserve", "permit", "admin")
REGIONS = {
    "all": None,
    "box": shapely.box(108.66, 39.83, 108.72, 39.88),
    "point": shapely.Point(108.70, 39.85),
    "none": shapely.box(100.0, 30.0, 100.1, 30.1),
}
SORTS = (None, "-name", "+code,-area_ha", "regime,-id", "valid_from", "-valid_to")


def _value(z, name):
    return z.id if name == "id" else getattr(z, name)


def _reference(s, kind: str, region, sortby, node_ids=None) -> list[int]:
    """The page order from every zone of the layer, in Python: exact intersection, then
    sortby (text by code point, NULLs last either way), then id."""
    zones = [z for z in s.zones((kind,)) if region is None or shapely.intersects(z.geometry, region)]
    if node_ids is not None:
        zones = [z for z in zones if z.id in node_ids]
    zones.sort(key=lambda z: z.id)
    for name, desc in reversed(cql.parse_sortby(sortby, kind)):
        present = sorted((z for z in zones if _value(z, name) is not None), key=lambda z: _value(z, name), reverse=desc)
        zones = present + [z for z in zones if _value(z, name) is None]  # stable: ties keep the order below
    return [z.id for z in zones]


def _page_ids(s, kind: str, flt: ZoneFilter) -> list[int]:
    return [z.id for z in s.zone_page(kind, flt)]


@pytest.mark.parametrize("kind", KINDS)
def test_pages_are_a_plain_reading_of_the_layer(stores, kind):  # noqa: F811
    for s in stores.values():
        for rname, region in REGIONS.items():
            for sortby in SORTS:
                flt = ZoneFilter(region=region, sortby=cql.parse_sortby(sortby, kind))
                expected = _reference(s, kind, region, sortby)
                assert _page_ids(s, kind, flt) == expected, (kind, rname, sortby)
                assert s.count_zones(kind, flt) == len(expected)
                # pages of 2 by offset, and by id keyset without sortby, cover it once
                pages = [_page_ids(s, kind, replace(flt, limit=2, offset=o)) for o in range(0, len(expected) + 2, 2)]
                assert [i for p in pages for i in p] == expected
                if not sortby and expected:
                    assert _page_ids(s, kind, replace(flt, limit=3, after_id=expected[0])) == expected[1:4]
    assert _reference(next(iter(stores.values())), "reserve", REGIONS["box"], None)  # the box meets some zones


def test_cql_filters_in_sql(stores):  # noqa: F811
    text = "regime IN ('core','buffer') AND area_ha > 1"
    answers = {}
    for b, s in stores.items():
        node = cql.parse(text, None, "reserve")
        flt = ZoneFilter(cql=node, sortby=cql.parse_sortby("-area_ha", "reserve"))
        got = s.zone_page("reserve", flt)
        every = s.zones(("reserve",))
        expected = sorted(
            (z for z in every if z.regime in ("core", "buffer") and z.area_ha > 1), key=lambda z: (-z.area_ha, z.id)
        )
        assert [z.id for z in got] == [z.id for z in expected] and got
        assert s.count_zones("reserve", flt) == len(expected) < len(every)
        answers[b] = [(z.id, z.properties()) for z in got]
    same(answers)


def test_the_stores_agree(stores):  # noqa: F811
    def pages(s):
        out = {}
        for kind in KINDS:
            for rname, region in REGIONS.items():
                for sortby in SORTS:
                    flt = ZoneFilter(region=region, sortby=cql.parse_sortby(sortby, kind), limit=3, offset=1)
                    out[f"{kind} {rname} {sortby}"] = (
                        s.count_zones(kind, flt),
                        [(z.id, z.properties(), shapely.to_wkb(z.geometry, hex=True)) for z in s.zone_page(kind, flt)],
                    )
        return out

    same({b: pages(s) for b, s in stores.items()})


def test_one_zone_by_id(stores):  # noqa: F811
    for s in stores.values():
        first = s.zones(("reserve",))[0]
        got = s.zone("reserve", first.id)
        assert (got.id, got.name, got.properties()) == (first.id, first.name, first.properties())
        assert got.geometry.equals(first.geometry)
        with pytest.raises(NotFoundError, match="redline feature"):
            s.zone("redline", first.id)  # a zone of another layer
        with pytest.raises(NotFoundError):
            s.zone("reserve", 10**12)
