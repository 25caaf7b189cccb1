"""Low-zoom tile speed — issue 11: the zones' generalised copies per zoom band (zone_bands),
made here for the layer versions already loaded (a load makes them for new ones).

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-02
"""

import shapely
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

SQLITE = """
CREATE TABLE zone_bands (
    zone_id INTEGER NOT NULL REFERENCES zones(id) ON DELETE CASCADE,
    band INTEGER NOT NULL,
    geom BLOB NOT NULL,
    PRIMARY KEY (zone_id, band)
)
"""

POSTGIS = """
CREATE TABLE zone_bands (
    zone_id bigint NOT NULL REFERENCES zones(id) ON DELETE CASCADE,
    band integer NOT NULL,
    geom geometry(Geometry, 4326) NOT NULL,
    PRIMARY KEY (zone_id, band)
)
"""

BATCH = 5000  # zones generalised at a time


def upgrade() -> None:
    from redline.store.core import generalised_zones

    sqlite = op.get_context().dialect.name == "sqlite"
    op.execute((SQLITE if sqlite else POSTGIS).strip())
    conn = op.get_bind()
    select = "SELECT id, geom FROM zones" if sqlite else "SELECT id, ST_AsBinary(geom) FROM zones"
    insert = (
        "INSERT INTO zone_bands (zone_id, band, geom) VALUES (?, ?, ?)"
        if sqlite
        else "INSERT INTO zone_bands (zone_id, band, geom) VALUES (%s, %s, ST_GeomFromWKB(%s, 4326))"
    )
    last = 0
    while True:
        rows = conn.exec_driver_sql(f"{select} WHERE id > {int(last)} ORDER BY id LIMIT {BATCH}").fetchall()
        if not rows:
            return
        ids = [r[0] for r in rows]
        bands = generalised_zones(shapely.from_wkb([bytes(r[1]) for r in rows]))
        if bands:
            conn.exec_driver_sql(insert, [(ids[i], band, wkb) for i, band, wkb in bands])
        last = ids[-1]
