"""Field evidence (photos, documents) attached to flags, stored safely.

File names on disk are generated (``<flag>/<uuid>.<ext>``), never taken from the
user; the content type is decided by the file's magic bytes, not by the client's
claim; size is capped while streaming, so an oversized upload never fills the disk.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import uuid
from pathlib import Path
from typing import BinaryIO

from .errors import InputError, NotFoundError, TooLargeError
from .store import Store
from .store.sqlite import now

# magic bytes -> (content type, extension)
SIGNATURES = (
    (b"\xff\xd8\xff", ("image/jpeg", "jpg")),
    (b"\x89PNG\r\n\x1a\n", ("image/png", "png")),
    (b"%PDF-", ("application/pdf", "pdf")),
)


def sniff(head: bytes) -> tuple[str, str]:
    for magic, kind in SIGNATURES:
        if head.startswith(magic):
            return kind
    raise InputError("unsupported file type: evidence must be a JPEG or PNG photo, or a PDF document")


def save_evidence(store: Store, root: Path, flag_id: int, stream: BinaryIO, *, original_name: str | None,
                  actor: str, lon: float | None = None, lat: float | None = None, note: str | None = None,
                  max_bytes: int = 20 * 1024 * 1024) -> dict:
    store.flag(flag_id)  # 404 before reading the body
    if (lon is None) != (lat is None):
        raise InputError("give both lon and lat for the GPS point, or neither")
    if lon is not None and not (-180 <= lon <= 180 and -90 <= lat <= 90):
        raise InputError(f"GPS point ({lon}, {lat}) is not a longitude/latitude")
    head = stream.read(16)
    content_type, ext = sniff(head)  # before anything touches the disk
    folder = Path(root) / str(int(flag_id))
    folder.mkdir(parents=True, exist_ok=True)
    digest, size = hashlib.sha256(), 0
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".upload-")
    try:
        with os.fdopen(fd, "wb") as out:
            chunk = head
            while chunk:
                size += len(chunk)
                if size > max_bytes:
                    raise TooLargeError(f"evidence file exceeds the limit of {max_bytes:,} bytes")
                digest.update(chunk)
                out.write(chunk)
                chunk = stream.read(1 << 16)
        stored = f"{uuid.uuid4().hex}.{ext}"
        os.replace(tmp, folder / stored)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    record = {
        "flag_id": flag_id, "stored_name": stored, "original_name": (original_name or "")[:200] or None,
        "content_type": content_type, "size": size, "sha256": digest.hexdigest(), "lon": lon, "lat": lat,
        "note": note, "actor": actor, "at": now(),
    }
    try:
        record["id"] = store.add_evidence(record)
        store.audit(flag_id, actor, "evidence", {"evidence_id": record["id"], "content_type": content_type,
                                                 "note": note})
    except Exception:
        (folder / stored).unlink(missing_ok=True)
        raise
    return record


def evidence_path(store: Store, root: Path, evidence_id: int) -> tuple[dict, Path]:
    item = store.evidence_item(evidence_id)
    path = Path(root) / str(int(item["flag_id"])) / item["stored_name"]
    if not path.is_file():
        raise NotFoundError(f"evidence {evidence_id}: file is missing from the evidence store")
    return item, path
