"""Scans on a Dask cluster: strips of window rows are the tasks, seams are merged on the client.

Each task opens the product itself inside the worker (it is given the product's
description, never arrays), runs :class:`redline.patches.PatchExtractor` on a strip of
whole window rows and returns the strip's finished patches plus its seam state. The
client folds the strips' footprints and counters in as they arrive and, at the end,
joins the strips' edges with the same union-find the serial run uses
(:meth:`PatchExtractor.merge_strips`), so the patches are identical to a serial run.

A worker holds one window and at most one strip's pending seam pieces at a time,
so its memory does not grow with the raster: the strip height is capped at
``MAX_WINDOW_ROWS`` window rows.

Workers must see the products' paths (a shared file system on a real cluster) and
have redline installed.
"""

from __future__ import annotations

import logging
import math
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from .change import ChangeProduct, ProductReader
from .errors import InputError, RedlineError
from .patches import Patch, PatchExtractor, StripResult

# Dask starts workers with MALLOC_TRIM_THRESHOLD_=65536, which also pins glibc's mmap threshold
# at 128 KiB: every window-sized array is then a fresh mmap, page-faulted in and unmapped
# again, and a worker runs the same scan ~2x slower than a plain process. Window arrays
# come from the heap again with these (memory stays bounded: a few windows' worth).
WORKER_MALLOC = {"MALLOC_MMAP_THRESHOLD_": 32 * 2**20, "MALLOC_TRIM_THRESHOLD_": 256 * 2**20}
MAX_WINDOW_ROWS = 4  # strip height cap, in window rows (~4096 px): bounds a task's memory
STRIPS_PER_WORKER = 8  # enough tasks to balance uneven strips (land and sea, change and none)


def run_strip(
    product: ChangeProduct, rows: tuple[int, int], mmu_ha: float, footprint_cell: int, target: int
) -> StripResult:
    """One task: extract a strip of ``product`` (runs inside a worker)."""
    try:
        with ProductReader(product) as reader:
            return PatchExtractor(
                reader, mmu_ha=mmu_ha, footprint_cell=footprint_cell, target=target, rows=rows
            ).strip_result()
    except RedlineError as exc:
        # the client gets the engine's own error class; its chained GDAL error does not unpickle
        clean = type(exc)(*exc.args)
    raise clean


def n_workers(client) -> int:
    return max(1, len(client.scheduler_info().get("workers", {})))


class ParallelExtractor:
    """Drop-in for :class:`PatchExtractor` in ``scan_product`` that runs strips on a Dask client."""

    def __init__(
        self,
        reader: ProductReader,
        client,
        *,
        mmu_ha: float = 0.1,
        footprint_cell: int = 8,
        target: int = 1024,
        window_rows: int | None = None,
    ):
        self.reader = reader
        self.client = client
        self.kwargs: dict[str, Any] = dict(mmu_ha=mmu_ha, footprint_cell=footprint_cell, target=target)
        self._whole = PatchExtractor(reader, **self.kwargs)
        if window_rows is None:
            n = len(self._whole.rows)
            window_rows = min(MAX_WINDOW_ROWS, max(1, math.ceil(n / (STRIPS_PER_WORKER * n_workers(client)))))
        self.window_rows = window_rows

    # the counters scan_product reads, from the whole-raster extractor the strips fold into
    @property
    def windows_total(self) -> int:
        return self._whole.windows_total

    @property
    def windows_with_change(self) -> int:
        return self._whole.windows_with_change

    @property
    def observed_pixels(self) -> int:
        return self._whole.observed_pixels

    @property
    def total_pixels(self) -> int:
        return self._whole.total_pixels

    def footprint(self):
        return self._whole.footprint()

    def strips(self) -> list[tuple[int, int]]:
        return self._whole.strips(self.window_rows)

    def run(self, progress: Callable[[int], None] | None = None) -> Iterator[list[Patch]]:
        """Yield each strip's finished patches as it completes, then the patches crossing strip edges."""
        from dask.distributed import as_completed

        product = self.reader.product
        tag = uuid.uuid4().hex[:8]
        futures = [
            self.client.submit(run_strip, product, rows, **self.kwargs, key=f"redline-strip-{tag}-{i}", pure=False)
            for i, rows in enumerate(self.strips())
        ]
        seams: list[StripResult] = []
        try:
            ok: set[int] = set()
            for fut in as_completed(futures):
                if fut.status == "error":
                    _raise_first_error(futures, fut, ok)
                res = fut.result()
                ok.add(futures.index(fut))
                fut.release()
                self._whole.add_strip_stats(res)
                patches, res.patches, res.coarse = res.patches, [], None  # keep only the seam state
                seams.append(res)
                if progress:
                    progress(res.windows_total)
                yield patches
        finally:
            self.client.cancel([f for f in futures if not f.done()])
        yield self._whole.merge_strips(seams)


def _raise_first_error(futures: list, failed, ok: set[int]) -> None:
    """Raise the error of the first failing strip in raster order, as a serial scan would.

    Strips below the failed one are cancelled; those above are awaited, since one of them
    may fail too. The error keeps its engine class (e.g. ``NotARasterError``).
    """
    from dask.distributed import wait

    i = futures.index(failed)
    for f in futures[i + 1 :]:
        f.cancel()
    above = [f for j, f in enumerate(futures[:i]) if j not in ok]  # the others succeeded and are released
    wait(above)
    for f in above + [failed]:
        if f.status == "error":
            f.result()


def extractor_factory(client, window_rows: int | None = None):
    """``make_extractor`` for :func:`redline.scan.scan_product` running on ``client``."""

    def make(reader: ProductReader, **kwargs) -> ParallelExtractor:
        return ParallelExtractor(reader, client, window_rows=window_rows, **kwargs)

    return make


@contextmanager
def dask_client(
    workers: int | None = None, scheduler: str | None = None, memory_limit: str = "2GiB", connect_timeout: str = "30s"
):
    """A Dask client: on an existing cluster (``scheduler`` address) or a LocalCluster of ``workers``.

    Local workers are processes with one thread each (GDAL and the labelling hold the GIL
    part of the time) and a memory limit, so a runaway task is restarted by Dask rather
    than taking the machine down; their malloc settings are ``WORKER_MALLOC`` (set the
    same environment on the workers of an existing cluster).
    """
    if workers is not None and scheduler is not None:
        raise InputError("give either --workers (a local cluster) or --scheduler (an existing one), not both")
    if workers is not None and workers < 1:
        raise InputError("--workers must be at least 1")
    try:
        from dask.distributed import Client, LocalCluster
    except ImportError:  # pragma: no cover - dask is a dependency
        raise InputError("parallel scans need dask[distributed]: pip install 'dask[distributed]'") from None
    if scheduler is not None:
        try:
            client = Client(scheduler, timeout=connect_timeout)
        except (OSError, TimeoutError) as exc:
            raise InputError(f"cannot reach the Dask scheduler at {scheduler}: {exc}") from None
        try:
            yield client
        finally:
            client.close()
        return
    import dask

    with dask.config.set({f"distributed.nanny.pre-spawn-environ.{k}": v for k, v in WORKER_MALLOC.items()}):
        cluster = LocalCluster(
            n_workers=workers or 1,
            threads_per_worker=1,
            processes=True,
            memory_limit=memory_limit,
            dashboard_address=None,
            silence_logs=logging.ERROR,
        )
    client = Client(cluster)
    try:
        yield client
    finally:
        client.close()
        cluster.close()
