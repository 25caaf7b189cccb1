"""Settings from the environment (prefix ``REDLINE_``), validated at start-up."""

from __future__ import annotations

import json
import re
from functools import lru_cache
from pathlib import Path
from typing import Annotated
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="REDLINE_", extra="ignore")

    # sqlite:///file.db (embedded default) or postgresql://user@host/db (PostGIS, production).
    database_url: str = "sqlite:///redline.db"
    # Minimum mapping unit: patches smaller than this ground area are noise.
    mmu_ha: float = Field(0.1, ge=0)
    # Severity rules; None means the defaults shipped in redline/data/rules.toml.
    rules_path: Path | None = None
    # Rectification ledger: closing a rectified flag of these activities needs a recovery verdict
    # "recovered" from new imagery (redline.recovery) or an override with a reason.
    # Comma-separated or a JSON list: REDLINE_CLOSE_REQUIRES_RECOVERY_FOR=mining,industrial
    close_requires_recovery_for: Annotated[list[str], NoDecode] = ["mining", "industrial", "construction"]
    # Side, in pixels, of the cells used to record where a scan could see the ground.
    footprint_cell: int = Field(8, ge=1, le=256)
    # Guard against pathological inputs (a polygon with millions of vertices).
    max_vertices_per_feature: int = Field(2_000_000, ge=4)
    # An XYZ tile server drawn under the web map and the reports' maps, e.g.
    # https://tiles.example.org/{z}/{x}/{y}.png (none by default: nothing is fetched, intranets work).
    basemap_url: str | None = None

    # HTTP API ---------------------------------------------------------------------------
    # Products that POST /scans may name live under this folder (nothing outside it).
    data_dir: Path = Path("data")
    # Field evidence (photos, documents) is stored here under generated names.
    evidence_dir: Path = Path("evidence")
    max_evidence_bytes: int = Field(15 * 1024 * 1024, ge=1024)
    max_body_bytes: int = Field(20 * 1024 * 1024, ge=1024)  # any request, evidence uploads included
    max_region_vertices: int = Field(200_000, ge=4)
    max_region_features: int = Field(10_000, ge=1)
    # Self-crossings of a region we agree to repair (repair costs grow with their square).
    max_region_crossings: int = Field(1_000, ge=0)
    # Uploaded archives (zipped shapefile, KMZ): checked before anything is extracted.
    max_archive_members: int = Field(64, ge=1)
    max_unpacked_bytes: int = Field(256 * 1024 * 1024, ge=1024)
    max_unpack_ratio: int = Field(200, ge=1)
    # CPU-heavy request work (checks, screenings, exports) runs in this many worker
    # processes, each request stopped after work_timeout_s; beyond work_queue waiting
    # requests the API answers 503 at once.
    work_processes: int = Field(2, ge=1, le=64)
    work_timeout_s: float = Field(60.0, gt=0)
    work_queue: int = Field(16, ge=0)
    # Scan jobs hold a lease renewed every job_heartbeat_s; an unfinished job whose lease is
    # older than job_stale_after_s lost its server (killed) and is marked failed.
    job_heartbeat_s: float = Field(15.0, gt=0)
    job_stale_after_s: float = Field(120.0, gt=0)
    host: str = "127.0.0.1"
    port: int = Field(8000, ge=1, le=65535)
    # Browser origins (scheme://host[:port]) allowed to call the API from another site (CORS);
    # none by default. Comma-separated or a JSON list: REDLINE_CORS_ORIGINS=https://gis.example.cn
    cors_origins: Annotated[list[str], NoDecode] = []
    # Answers at least this large are gzip-compressed for clients that accept gzip.
    gzip_min_bytes: int = Field(1024, ge=0)

    # Subscriptions (redline.notify) -----------------------------------------------------
    # Links to flags in webhook bodies and e-mails: this base URL + /flags/{id} (relative when unset).
    public_url: str | None = None
    # Webhook deliveries: attempts per delivery, the first backoff (doubled after each failure),
    # and the time limit of one request.
    notify_attempts: int = Field(4, ge=1, le=20)
    notify_backoff_s: float = Field(2.0, ge=0)
    notify_timeout_s: float = Field(10.0, gt=0)
    # A sender's lease on a delivery it sends (renewed after each attempt); a sender that died
    # holding one is taken over by the next once it has run out.
    notify_lease_s: float = Field(300.0, gt=0)
    # Field packets (redline.packet): at most this many flags in one packet.
    packet_max_flags: int = Field(2_000, ge=1)
    # ... and at most this many problem sheets in a packet built by the API (``sheets=true``):
    # printing them is the slow part (the CLI prints up to redline.reports.MAX_PACKET).
    packet_max_sheets: int = Field(5, ge=0)
    # Evidence photos taken farther than this from their flag (EXIF GPS) carry a warning.
    evidence_max_distance_m: float = Field(200.0, ge=0)
    # E-mail deliveries: REDLINE_SMTP_HOST, _PORT, _STARTTLS, _USER, _PASSWORD, _FROM.
    smtp_host: str | None = None
    smtp_port: int = Field(587, ge=1, le=65535)
    smtp_starttls: bool = True
    smtp_user: str | None = None
    smtp_password: SecretStr | None = None
    smtp_from: str = "redline@localhost"

    @field_validator("database_url")
    @classmethod
    def _known_scheme(cls, v: str) -> str:
        if not v.startswith(("sqlite://", "postgresql://", "postgresql+psycopg://")):
            raise ValueError("the database URL (REDLINE_DATABASE_URL, --db) must start with sqlite:// or postgresql://")
        return v

    @field_validator("basemap_url")
    @classmethod
    def _xyz_template(cls, v: str | None) -> str | None:
        if v and (not re.match(r"^https?://[^\s/]+/\S*$", v) or not all(k in v for k in ("{z}", "{x}", "{y}"))):
            raise ValueError("the basemap URL (REDLINE_BASEMAP_URL) must be http(s) with {z}, {x} and {y}")
        return v or None

    @field_validator("close_requires_recovery_for", mode="before")
    @classmethod
    def _split_activities(cls, v):
        if isinstance(v, str):
            v = v.strip()
            if v.startswith("["):
                return json.loads(v)
            return [a.strip() for a in v.split(",") if a.strip()]
        return v

    @field_validator("close_requires_recovery_for")
    @classmethod
    def _known_activities(cls, v: list[str]) -> list[str]:
        from .vocab import ACTIVITIES

        unknown = [a for a in v if a not in ACTIVITIES]
        if unknown:
            raise ValueError(
                f"REDLINE_CLOSE_REQUIRES_RECOVERY_FOR: unknown activity {', '.join(unknown)}; "
                f"expected some of {', '.join(ACTIVITIES)}"
            )
        return v

    @field_validator("cors_origins", mode="before")
    @classmethod
    def _split_origins(cls, v):
        if isinstance(v, str):
            v = v.strip()
            if v.startswith("["):
                return json.loads(v)
            return [o.strip() for o in v.split(",") if o.strip()]
        return v

    @field_validator("cors_origins")
    @classmethod
    def _origins(cls, v: list[str]) -> list[str]:
        for origin in v:  # browsers send the bare origin: anything more would never match
            parts = urlsplit(origin)
            if origin != "*" and (
                parts.scheme not in ("http", "https")
                or not parts.netloc
                or origin != f"{parts.scheme}://{parts.netloc}"
            ):
                raise ValueError(
                    f"REDLINE_CORS_ORIGINS: {origin!r} is not an origin like https://gis.example.cn "
                    "(scheme and host, optional port, no path or trailing slash)"
                )
        return v

    @field_validator("rules_path")
    @classmethod
    def _rules_exist(cls, v: Path | None) -> Path | None:
        if v is not None and not v.is_file():
            raise ValueError(f"REDLINE_RULES_PATH {v} does not exist")
        return v


# The engine's defaults, with nothing read from the environment: engine functions take
# their settings as an argument, built once at the edge (CLI callback, app factory).
DEFAULTS = Settings.model_construct()


@lru_cache
def get_settings() -> Settings:
    """Settings from the environment: for the edges only (the CLI, the API app factory)."""
    return Settings()
