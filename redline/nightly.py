"""The nightly batch: discover new change products, scan each once, write a digest.

Unattended and resumable. Every discovered product has a ledger entry keyed by the
fingerprint of its input files (:mod:`redline.discovery`), with a state:

- ``running``: written (in its own small transaction) before the scan starts;
- ``done``: written *inside the scan's transaction* (``scan_product(on_commit=...)``),
  so the flags and the ledger commit together or not at all;
- ``failed``: the product could not be scanned; the reason is kept. The same files are
  not retried (``--retry-failed`` does), a fixed file is a new fingerprint and is scanned.

A process killed at any point (SIGKILL, power cut) leaves either a committed scan
with its ``done`` entry, or nothing but a ``running`` entry: the next run scans that
product again from scratch. A product that was interrupted ``max_attempts`` times (it
crashes or exhausts the machine) is recorded as failed instead of stopping every night.

The digest covers every ledger entry not yet reported (so also what a killed run
scanned) and is written atomically *before* the entries are marked reported: a
crash in between repeats entries in the next digest, never loses them.

Only one nightly run at a time writes a digest folder (an advisory lock held for the
run; the OS drops it when the process dies).
"""

from __future__ import annotations

import fcntl
import os
import uuid
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

from . import faults, notify
from .clock import now
from .config import DEFAULTS, Settings
from .digest import build_digest, write_digest
from .discovery import Candidate, discover
from .errors import InputError, MissingFileError, RedlineError, StoreError
from .export import export_flags
from .rules import load_rules
from .scan import ScanResult, scan_product
from .store import Store

KILL_ENV = "REDLINE_NIGHTLY_KILL_AT"  # fault injection for tests: "point" or "point:n" (n-th time)
checkpoint = partial(faults.checkpoint, env=KILL_ENV)


@dataclass
class NightlyOptions:
    watch: list[Path] = field(default_factory=list)
    stac: list[str] = field(default_factory=list)
    digest_dir: Path = Path("digests")
    retry_failed: bool = False
    max_attempts: int = 3
    settle: float = 60.0  # seconds a file must be untouched before it is taken
    exports: list[Path] = field(default_factory=list)


@contextmanager
def run_lock(folder: Path):
    folder.mkdir(parents=True, exist_ok=True)
    fd = os.open(folder / ".redline-nightly.lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise InputError(f"another nightly run is writing {folder}; try again when it has finished") from None
        yield
    finally:
        os.close(fd)


def _result(result: ScanResult, product) -> dict:
    return {
        "product_id": product.product_id,
        "acquired_after": product.acquired_after.isoformat(),
        "checksum": result.checksum,
        "already_scanned": result.skipped,
        "patches": result.patches,
        "conflicts": result.conflicts,
        "permitted": result.permitted,
        "new_flags": result.new_flags,
        "observed_flags": result.observed_flags,
        "observed_fraction": result.observed_fraction,
        "recovery": result.recovery,
    }


def _store_trouble(exc: BaseException) -> bool:
    """The store (not the product) failed: database locked or gone, disk full..."""
    return isinstance(exc, StoreError) or type(exc).__module__.split(".")[0] in ("sqlite3", "psycopg", "psycopg2")


def _reason(exc: BaseException) -> str:
    if isinstance(exc, RedlineError):
        return str(exc)
    return f"{type(exc).__name__}: {exc}"  # an engine bug or an environment problem: keep the class


class Night:
    """One nightly run over a store."""

    def __init__(
        self,
        store: Store,
        opts: NightlyOptions,
        *,
        settings: Settings = DEFAULTS,
        make_extractor: Callable | None = None,
        on_product: Callable[[Candidate, str, dict | None], None] | None = None,
        progress: Callable[[Candidate], Callable[[int, int], None] | None] | None = None,
    ):
        self.store, self.opts = store, opts
        self.settings = settings
        self.rules = load_rules(self.settings.rules_path)
        self.make_extractor = make_extractor
        self.on_product = on_product or (lambda c, state, info: None)
        self.progress = progress or (lambda c: None)
        stamp = now().replace(":", "").replace("-", "").replace("+0000", "Z")
        self.run: dict[str, Any] = {
            "run_id": f"{stamp}-{uuid.uuid4().hex[:6]}",
            "started_at": now(),
            "discovered": 0,
            "unchanged": 0,
        }
        self.known_failures: list[dict] = []

    def __call__(self) -> dict:
        opts = self.opts
        if not opts.watch and not opts.stac:
            raise InputError("nothing to watch: give --watch FOLDER and/or --stac CATALOG")
        for folder in opts.watch:
            if not Path(folder).is_dir():
                raise MissingFileError(f"{folder}: watched folder does not exist")
        with run_lock(opts.digest_dir):
            candidates, unsettled = discover(opts.watch, opts.stac, opts.settle)
            self.run["discovered"] = len(candidates)
            checkpoint("discovered")
            for c in candidates:
                self._one(c)
            checkpoint("scanned")
            entries = [e for e in self.store.ledger_entries(unreported=True) if e["state"] in ("done", "failed")]
            self.run["finished_at"] = now()
            digest = build_digest(self.store, self.run, entries, self.known_failures, unsettled)
            digest["files"] = write_digest(
                opts.digest_dir, digest, hook=checkpoint, store=self.store, basemap_url=self.settings.basemap_url
            )
            checkpoint("digest-written")
            digest["exports"] = [export_flags(self.store, p) for p in opts.exports]
            with self.store.transaction():  # subscriptions' deliveries planned once: with the entries reported
                notify.plan(self.store, digest, self.settings)
                self.store.ledger_mark_reported([e["key"] for e in entries], self.run["run_id"])
            checkpoint("reported")
            notify.plan_overdue(self.store, settings=self.settings)  # overdue deadlines: once per day (keyed by day)
            # send what is pending: tonight's, and what a killed run left (redline.notify)
            digest["deliveries"] = [
                {k: d[k] for k in ("key", "run_id", "state", "attempts", "flags", "last_error")}
                for d in notify.deliver(self.store, self.settings)
            ]
        return digest

    # --- one product ------------------------------------------------------------------
    def _skip_known(self, entry: dict, c: Candidate) -> bool:
        if entry["state"] == "done":
            self.run["unchanged"] += 1
            self.on_product(c, "unchanged", entry)
            return True
        if entry["state"] == "failed" and not self.opts.retry_failed:
            self.known_failures.append(
                {
                    "item_id": c.item_id,
                    "source": c.source,
                    "location": c.location,
                    "reason": entry["reason"],
                    "attempts": entry["attempts"],
                }
            )
            self.on_product(c, "known-failure", entry)
            return True
        return False

    def _one(self, c: Candidate) -> None:
        store = self.store
        stamp = c.stamp()
        seen = store.ledger_by_stamp(stamp)
        if seen is not None and self._skip_known(seen, c):
            return
        key = c.fingerprint()
        entry = store.ledger_entry(key)
        if entry is not None:
            if entry["stamp"] != stamp and entry["state"] in ("done", "failed"):
                store.ledger_update(key, {"stamp": stamp})  # same content, touched or moved: hash it once
            if self._skip_known(entry, c):
                return
            if entry["state"] == "running" and entry["attempts"] >= self.opts.max_attempts:
                reason = (
                    f"interrupted {entry['attempts']} times while scanning (crash, kill or out of memory); "
                    "not retried without --retry-failed"
                )
                store.ledger_update(key, {"state": "failed", "reason": reason})
                self.on_product(c, "failed", {"reason": reason})
                return
        store.ledger_start(
            {
                "key": key,
                "source": c.source,
                "item_id": c.item_id,
                "location": c.location,
                "stamp": stamp,
                "run_id": self.run["run_id"],
            }
        )
        checkpoint("started")
        try:
            if c.error:
                raise InputError(c.error)
            product = c.resolve()

            def commit(store: Store, result: ScanResult) -> None:  # inside the scan's transaction
                store.ledger_update(
                    key,
                    {
                        "state": "done",
                        "scan_id": result.scan_id,
                        "checksum": result.checksum,
                        "result": _result(result, product),
                    },
                )
                checkpoint("in-transaction")

            result = scan_product(
                store,
                product,
                settings=self.settings,
                rules=self.rules,
                progress=self.progress(c),
                make_extractor=self.make_extractor,
                on_commit=commit,
            )
            if result.skipped:  # the same content was scanned before (another file, `redline scan`)
                prior = store.scan_by_checksum(result.checksum)
                store.ledger_update(
                    key,
                    {
                        "state": "done",
                        "scan_id": prior["id"] if prior else None,
                        "checksum": result.checksum,
                        "result": _result(result, product),
                    },
                )
            checkpoint("committed")
            self.on_product(c, "done", _result(result, product))
        except Exception as exc:  # noqa: BLE001 - one bad product must not stop the night
            if _store_trouble(exc):
                raise  # not the product's fault: stop; its entry stays 'running' and is retried
            reason = _reason(exc)
            store.ledger_update(key, {"state": "failed", "reason": reason})
            self.on_product(c, "failed", {"reason": reason})


def run_nightly(store: Store, opts: NightlyOptions, **kwargs) -> dict:
    """Run one night; returns the digest (``digest['status'] == 'failures'`` when a product failed)."""
    return Night(store, opts, **kwargs)()
