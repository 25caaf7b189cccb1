"""Changed pixels → patches, window by window, in bounded memory.

The raster is read in windows aligned to its internal blocks; no window is read
twice and the whole raster is never in memory. Within a window, connected pixels
of one activity (4-connectivity, as GDAL's polygonize) are labelled; labels that
meet across a window seam are joined with a union-find, and their polygons are
unioned in *pixel* coordinates (integers, so seam edges match bit for
bit) before the grid transform and reprojection are applied. A patch is emitted
as soon as the block row below it can no longer extend it, so pending state is
about one block row of seam-touching pieces.

The same extractor runs on a *strip* of whole window rows (``rows=(r0, r1)``) for
parallel scans: it finishes the patches that lie inside the strip and hands back,
as :class:`StripResult`, the pieces that touch the strip's top or bottom edge with
the label rows along those edges. :func:`merge_strips` joins the strips' edges with
the same union-find and unions the pieces in the same order as a serial run, so
the patches come out identical. There is one implementation of the seam logic
(:class:`_Seams`); the serial run is the one-strip case.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from math import gcd

import numpy as np
import shapely
from affine import Affine
from rasterio.features import shapes
from rasterio.windows import Window
from scipy import ndimage

from . import vocab
from .change import ProductReader
from .geo import GEOD, M2_PER_HA, apply_affine, reproject


@dataclass(frozen=True)
class Patch:
    """A connected region of changed pixels, vectorised, in lon/lat."""

    geometry: object
    activity: str
    confidence: str
    score: float | None
    pixels: int
    area_ha: float


def window_grid(height: int, width: int, block_shape: tuple[int, int], target: int = 1024):
    """Row-major windows aligned to the raster's blocks, about ``target`` px a side.

    Returns ``(rows, cols)``: lists of ``(offset, size)`` along each axis.
    """
    bh, bw = block_shape
    th = min(height, bh * max(1, round(target / bh)))
    tw = width if bw >= width else min(width, bw * max(1, round(target / bw)))
    rows = [(r, min(th, height - r)) for r in range(0, height, th)]
    cols = [(c, min(tw, width - c)) for c in range(0, width, tw)]
    return rows, cols


def label_by_activity(key: np.ndarray, changed_idx: np.ndarray | None = None) -> tuple[np.ndarray, int]:
    """4-connected components of equal nonzero ``key``, labelled 1..n (int32).

    ``changed_idx`` (flat indices of the nonzero pixels) saves a pass when the caller has it.
    One labelling of all changed pixels; the rare components in which different
    activities touch are then split, each within its own bounding box.
    """
    lab, n = ndimage.label(key > 0)
    if n == 0:
        return lab, n
    h, w = key.shape
    idx = np.flatnonzero(key) if changed_idx is None else changed_idx
    fk = key.ravel()
    right = idx[(idx % w) != w - 1]
    right = right[fk[right] != fk[right + 1]]
    right = right[fk[right + 1] > 0]
    down = idx[idx < (h - 1) * w]
    down = down[fk[down] != fk[down + w]]
    down = down[fk[down + w] > 0]
    if not right.size and not down.size:
        return lab, n
    fl = lab.ravel()
    mixed = np.unique(fl[np.concatenate([right, down])])
    rows, cols = idx // w, idx % w
    comp = fl[idx]
    sel = np.isin(comp, mixed)
    for m in mixed:
        mine = sel & (comp == m)
        r0, r1 = rows[mine].min(), rows[mine].max() + 1
        c0, c1 = cols[mine].min(), cols[mine].max() + 1
        sub, sk = lab[r0:r1, c0:c1], key[r0:r1, c0:c1]
        inside = sub == m
        first = True
        for k in np.unique(sk[inside]):
            lk, nk = ndimage.label(inside & (sk == k))
            part = lk > 0
            # the component's own label goes to its first part, new labels to the others: 1..n stays dense
            sub[part] = np.where(lk[part] == 1, m, lk[part] - 1 + n) if first else lk[part] + n
            n += nk - 1 if first else nk
            first = False
    return lab, n


# GDAL's polygonizer walks every pixel it is given and each call has a fixed cost. Where the
# kept components' bounding boxes cover less than this share of a window, they are copied
# side by side into a small mosaic and vectorised in one call; otherwise the window is.
_MOSAIC_BELOW = 0.5


def _best_shelves(order: list[int], bh: np.ndarray, bw: np.ndarray, widths) -> tuple[list, int, int]:
    """Boxes on shelves (next-fit, in ``order``) for each canvas width; the smallest canvas wins.

    A tall thin road among small lots would make a window-wide canvas as tall as the road;
    a narrower one holds the same boxes in a fraction of the pixels. Returns the
    placements ``(box, y, x)``, the canvas width and its height.
    """
    best = None
    for cw in sorted(widths):
        x = y = shelf = 0
        at = []
        for i in order:
            if x + bw[i] > cw:
                x, y, shelf = 0, y + shelf, 0
            at.append((i, y, x))
            x, shelf = x + int(bw[i]), max(shelf, int(bh[i]))
        if best is None or (y + shelf) * cw < best[1] * best[2]:
            best = (at, cw, y + shelf)
    assert best is not None  # there is always at least one canvas width
    return best


def _polygons(lab: np.ndarray, idx: np.ndarray, labc: np.ndarray, kept: np.ndarray, n: int, c0: int, r0: int):
    """Labels and polygons (raster pixel coordinates) of the kept components of a window.

    ``idx`` / ``labc``: flat indices and labels of the kept pixels. Coordinates are whole
    pixels, so moving a polygon from the mosaic back to its place is exact. What is done
    depends only on the window's content: serial runs and strips do the same.
    """
    h, w = lab.shape
    if not kept.size:
        return [], []
    rows, cols = np.divmod(idx, w)
    big = np.iinfo(np.int64).max
    rmin, cmin = np.full(n + 1, big), np.full(n + 1, big)
    rmax, cmax = np.full(n + 1, -1), np.full(n + 1, -1)
    np.minimum.at(rmin, labc, rows)
    np.maximum.at(rmax, labc, rows)
    np.minimum.at(cmin, labc, cols)
    np.maximum.at(cmax, labc, cols)
    bh, bw = rmax[kept] - rmin[kept] + 1, cmax[kept] - cmin[kept] + 1
    dx, dy = np.zeros(n + 1, dtype=np.int64), np.zeros(n + 1, dtype=np.int64)  # mosaic -> window offsets
    at = None
    if int((bh * bw).sum()) < _MOSAIC_BELOW * h * w:  # shelves, tallest boxes first
        widths = {int(bw.max()), w, *(c for c in (64, 128, 256, 512) if bw.max() < c < w)}
        at, cw, ch = _best_shelves(np.argsort(-bh, kind="stable").tolist(), bh, bw, widths)
        if ch * cw >= h * w:
            at = None
    if at is None:
        canvas = lab
    else:
        canvas = np.zeros((ch, cw), dtype=np.int32)
        for i, y, x in at:
            v = int(kept[i])
            sub = lab[rmin[v] : rmax[v] + 1, cmin[v] : cmax[v] + 1]
            canvas[y : y + bh[i], x : x + bw[i]][sub == v] = v
            dx[v], dy[v] = cmin[v] - x, rmin[v] - y
    labels, coords, ring_len, ring_owner = [], [], [], []
    for geom, value in shapes(canvas, mask=canvas > 0, connectivity=4):
        labels.append(int(value))
        for ring in geom["coordinates"]:
            coords.extend(ring)
            ring_len.append(len(ring))
            ring_owner.append(len(labels) - 1)
    lens, owners = np.array(ring_len), np.array(ring_owner)
    lv = np.array(labels)[owners]
    xy = np.array(coords, dtype=np.float64)
    xy += np.repeat(np.column_stack([dx[lv] + c0, dy[lv] + r0]), lens, axis=0)
    rings = shapely.linearrings(xy, indices=np.repeat(np.arange(lens.size), lens))
    return labels, shapely.polygons(rings, indices=owners)


def _spread(a: np.ndarray) -> bool:
    """A window the reader classified from one pixel (``np.broadcast_to``): one value throughout."""
    return not any(a.strides)


class _UnionFind:
    def __init__(self) -> None:
        self.parent: dict[int, int] = {}

    def find(self, a: int) -> int:
        parent = self.parent
        root = a
        while parent.get(root, root) != root:
            root = parent[root]
        while parent.get(a, a) != root:  # path compression
            parent[a], a = root, parent[a]
        return root

    def union(self, a: int, b: int) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[max(ra, rb)] = min(ra, rb)


@dataclass
class _Piece:
    key: int
    pixels: int
    ge: tuple[int, ...]  # pixels at or above each confidence level
    score_sum: float
    polygons: list = field(default_factory=list)  # in pixel coordinates
    bottom_at: int = -1  # row just below the piece when it touches its window's bottom seam, else -1
    top_at: int = -1  # first row of its window when it touches that window's top seam, else -1


class _Seams:
    """Pieces that may continue across a seam, joined by a union-find and released as whole groups.

    Serial runs, strips and the merge of strips all go through this one class.
    """

    def __init__(self) -> None:
        self.uf = _UnionFind()
        self.pending: dict[int, _Piece] = {}  # insertion order = raster order: unions are reproducible

    def join(self, a_ids, a_keys, b_ids, b_keys) -> None:
        """Join pieces facing each other across a seam (two rows or columns of global ids)."""
        both = (a_ids > 0) & (b_ids > 0) & (a_keys == b_keys)
        if both.any():
            for a, b in np.unique(np.column_stack([a_ids[both], b_ids[both]]), axis=0):
                self.uf.union(int(a), int(b))

    def release(self, hold: Callable[[_Piece], bool] | None = None) -> list[_Piece]:
        """Merge and remove the groups none of whose pieces ``hold`` keeps back."""
        if not self.pending:
            return []
        groups: dict[int, list[int]] = {}
        for g in self.pending:
            groups.setdefault(self.uf.find(g), []).append(g)
        out = []
        for members in groups.values():
            if hold is not None and any(hold(self.pending[g]) for g in members):
                continue
            parts = [self.pending.pop(g) for g in members]
            first = parts[0]
            if len(parts) > 1:
                first = _Piece(
                    first.key,
                    sum(p.pixels for p in parts),
                    tuple(map(sum, zip(*(p.ge for p in parts)))),
                    sum(p.score_sum for p in parts),
                    # pieces meet edge to edge but are not noded alike along the seam, so a
                    # full (exact, integer-coordinate) union rather than a coverage union
                    [shapely.union_all([poly for p in parts for poly in p.polygons])],
                )
            out.append(first)
            for g in members:
                self.uf.parent.pop(g, None)
        return out


def _geodesic_m2(geom) -> float:
    """Geodesic area of a lon/lat (multi)polygon on the WGS84 ellipsoid: outer rings less holes.

    Rings go to pyproj as numpy arrays (``Geod.geometry_area_perimeter`` copies every
    vertex through Python, the larger share of the cost for many small patches).
    """
    total = 0.0
    for poly in shapely.get_parts(geom):
        for i, ring in enumerate([poly.exterior, *poly.interiors]):
            xy = shapely.get_coordinates(ring)
            a = abs(GEOD.polygon_area_perimeter(xy[:, 0], xy[:, 1])[0])
            total += -a if i else a
    return total


def _pixel_area_bounds_m2(reader: ProductReader) -> float:
    """Largest geodesic pixel area over the grid (for a safe pre-filter)."""
    h, w = reader.shape
    t = reader.transform
    best = 0.0
    for r in (0, h // 2, max(h - 1, 0)):
        for c in (0, w // 2, max(w - 1, 0)):
            ring = shapely.box(c, r, c + 1, r + 1)
            geom = reproject(apply_affine(ring, t), reader.crs)
            best = max(best, abs(GEOD.geometry_area_perimeter(geom)[0]))
    return best


@dataclass
class StripResult:
    """What a strip of window rows hands back for :func:`merge_strips` (all picklable)."""

    rows: tuple[int, int]  # [r0, r1) in raster rows
    patches: list[Patch]  # finished: touch neither strip edge (MMU applied)
    seam_pieces: list[tuple[int, int, _Piece]]  # (global id, its group's id, piece) of groups touching a
    #                                               strip edge, in raster order
    top_ids: np.ndarray | None  # ids and keys along the strip's first row (None at the raster top)
    top_keys: np.ndarray | None
    bottom_ids: np.ndarray | None  # ... and along its last row (None at the raster bottom)
    bottom_keys: np.ndarray | None
    coarse: np.ndarray  # observed-ground cells of the strip
    observed_pixels: int
    windows_total: int
    windows_with_change: int


class PatchExtractor:
    """Extract patches from a product; see module docstring for the method.

    ``rows=(r0, r1)`` restricts the run to a strip of whole window rows
    (``r0``, ``r1`` from :meth:`strips`); the default is the whole raster.
    """

    def __init__(
        self,
        reader: ProductReader,
        *,
        mmu_ha: float = 0.1,
        footprint_cell: int = 8,
        target: int = 1024,
        rows: tuple[int, int] | None = None,
    ):
        self.reader = reader
        self.mmu_ha = mmu_ha
        self.rows, self.cols = window_grid(*reader.shape, reader.block_shape, target)
        th, tw = self.rows[0][1], self.cols[0][1]
        self.cell = gcd(gcd(th, tw), footprint_cell)
        h, w = reader.shape
        r0, r1 = rows if rows is not None else (0, h)
        if not (0 <= r0 < r1 <= h) or r0 % th or (r1 % th and r1 != h):
            raise ValueError(f"strip rows {r0}..{r1} are not whole window rows of {th} px in 0..{h}")
        self.strip = (r0, r1)
        self.rows = [(r, rh) for r, rh in self.rows if r0 <= r < r1]
        self._coarse_row0 = r0 // self.cell
        self._coarse = np.zeros((-(-r1 // self.cell) - self._coarse_row0, -(-w // self.cell)), dtype=bool)
        self.observed_pixels = 0
        self.total_pixels = h * w
        # A component whose pixel count times the largest pixel area is under the
        # MMU cannot pass it, so it is dropped before the (costly) vectorising.
        px = _pixel_area_bounds_m2(reader) * 1.01
        self._min_pixels = int(np.floor(mmu_ha * M2_PER_HA / px)) if px > 0 else 0
        self._seams = _Seams()
        self._next_gid = r0 * w + 1  # ids of different strips never collide
        self._top = np.zeros(w, dtype=np.int64)
        self._top_key = np.zeros(w, dtype=np.uint8)
        self._edge_top = np.zeros(w, dtype=np.int64) if r0 > 0 else None
        self._edge_top_key = np.zeros(w, dtype=np.uint8) if r0 > 0 else None
        self.windows_total = len(self.rows) * len(self.cols)
        self.windows_with_change = 0

    def strips(self, window_rows: int) -> list[tuple[int, int]]:
        """The raster cut into strips of ``window_rows`` whole window rows, top to bottom."""
        starts = self.rows[:: max(1, window_rows)]
        h = self.reader.shape[0]
        return [(r, starts[i + 1][0] if i + 1 < len(starts) else h) for i, (r, _) in enumerate(starts)]

    def windows(self) -> Iterator[Window]:
        for r, h in self.rows:
            for c, w in self.cols:
                yield Window(c, r, w, h)

    def run(self, progress: Callable[[int], None] | None = None) -> Iterator[list[Patch]]:
        """Yield batches of finished patches (MMU applied), one batch per block row.

        In a strip, pieces touching the strip's top or bottom edge stay pending for
        :meth:`strip_result`.
        """
        height, width = self.reader.shape
        s0, s1 = self.strip
        for r, h in self.rows:
            ready: list[_Piece] = []
            left = np.zeros(h, dtype=np.int64)
            left_key = np.zeros(h, dtype=np.uint8)
            for c, w in self.cols:
                left, left_key = self._window(Window(c, r, w, h), left, left_key, ready, height, width)
                if progress:
                    progress(1)
            end = r + h

            # a group is complete once no piece of it touches the seam below this block row
            # (nor, in a strip, the strip's top edge)
            def done(p: _Piece, end: int = end) -> bool:
                return p.bottom_at == end or (s0 > 0 and p.top_at == s0)

            ready.extend(self._seams.release(done))
            yield self._finish(ready)

    def strip_result(self, progress: Callable[[int], None] | None = None) -> StripResult:
        """Run the strip and return its finished patches and its seam state."""
        patches = [p for batch in self.run(progress) for p in batch]
        h = self.reader.shape[0]
        bottom = self.strip[1] < h
        return StripResult(
            rows=self.strip,
            patches=patches,
            seam_pieces=[(g, self._seams.uf.find(g), piece) for g, piece in self._seams.pending.items()],
            top_ids=self._edge_top,
            top_keys=self._edge_top_key,
            bottom_ids=self._top.copy() if bottom else None,
            bottom_keys=self._top_key.copy() if bottom else None,
            coarse=self._coarse,
            observed_pixels=self.observed_pixels,
            windows_total=self.windows_total,
            windows_with_change=self.windows_with_change,
        )

    # --- one window -------------------------------------------------------------
    def _window(self, win: Window, left, left_key, ready, height, width):
        key, level, score, valid = self.reader.classify(win)
        self._footprint(win, valid)
        r0, c0, h, w = win.row_off, win.col_off, win.height, win.width
        if _spread(key) and not key[0, 0]:  # one value, no change: nothing to look at pixel by pixel
            idx = np.empty(0, dtype=np.intp)
        else:
            idx = np.flatnonzero(key)  # change is sparse: per-pixel work below runs on these only
        if not idx.size:
            self._top[c0 : c0 + w] = 0
            return np.zeros(h, dtype=np.int64), np.zeros(h, dtype=np.uint8)
        self.windows_with_change += 1
        lab, n = label_by_activity(key, idx)
        labc = lab.ravel()[idx]
        npix = np.bincount(labc, minlength=n + 1)
        keys = np.zeros(n + 1, dtype=np.uint8)
        keys[labc] = key.ravel()[idx]
        levc = level.ravel()[idx]
        ge = [npix] + [np.bincount(labc[levc >= k], minlength=n + 1) for k in range(1, len(vocab.CONFIDENCES))]
        ssum = np.bincount(labc, weights=score.ravel()[idx], minlength=n + 1) if score is not None else np.zeros(n + 1)

        # labels on an internal seam may continue in a neighbour window
        touch = np.zeros(n + 1, dtype=bool)
        bottom = np.zeros(n + 1, dtype=bool)
        top = np.zeros(n + 1, dtype=bool)
        if r0 > 0:
            top[lab[0]] = True
            touch |= top
        if c0 > 0:
            touch[lab[:, 0]] = True
        if c0 + w < width:
            touch[lab[:, -1]] = True
        if r0 + h < height:
            bottom[lab[-1]] = True
            touch |= bottom
        touch[0] = bottom[0] = top[0] = False

        keep = (npix >= self._min_pixels) | touch
        keep[0] = False
        kept = np.flatnonzero(keep)
        gid = np.zeros(n + 1, dtype=np.int64)
        gid[kept] = self._next_gid + np.arange(kept.size)
        self._next_gid += kept.size

        # join with the window to the left and the block row above
        if c0 > 0:
            self._seams.join(left, left_key, gid[lab[:, 0]], key[:, 0])
        if r0 > self.strip[0]:
            self._seams.join(self._top[c0 : c0 + w], self._top_key[c0 : c0 + w], gid[lab[0]], key[0])
        elif self._edge_top is not None:  # first row of a strip: its upper neighbour is another strip's
            assert self._edge_top_key is not None  # set together with _edge_top
            self._edge_top[c0 : c0 + w] = gid[lab[0]]
            self._edge_top_key[c0 : c0 + w] = key[0]
        self._top[c0 : c0 + w] = gid[lab[-1]]
        self._top_key[c0 : c0 + w] = key[-1]

        kept_px = keep[labc]
        if not kept_px.all():  # noise under the MMU is never vectorised
            lab.ravel()[idx[~kept_px]] = 0
            idx, labc = idx[kept_px], labc[kept_px]
        pieces: dict[int, _Piece] = {}
        for v, geom in zip(*_polygons(lab, idx, labc, kept, n, c0, r0)):
            piece = pieces.get(v)
            if piece is None:
                piece = pieces[v] = _Piece(
                    int(keys[v]),
                    int(npix[v]),
                    tuple(int(g[v]) for g in ge),
                    float(ssum[v]),
                    bottom_at=r0 + h if bottom[v] else -1,
                    top_at=r0 if top[v] else -1,
                )
            piece.polygons.append(geom)
        for v, piece in pieces.items():
            if touch[v]:
                self._seams.pending[int(gid[v])] = piece
            else:
                ready.append(piece)
        return gid[lab[:, -1]], key[:, -1].copy()

    def _footprint(self, win: Window, valid: np.ndarray):
        f = self.cell
        seen = (valid.size if valid[0, 0] else 0) if _spread(valid) else int(np.count_nonzero(valid))
        self.observed_pixels += seen
        h, w = valid.shape
        ph, pw = -(-h // f) * f, -(-w // f) * f
        r, c = win.row_off // f - self._coarse_row0, win.col_off // f
        if seen == 0:  # nodata (open sea) or cloud: the cells stay unobserved
            return
        if seen == h * w and (ph, pw) == (h, w):  # all seen, whole cells
            self._coarse[r : r + ph // f, c : c + pw // f] = True
            return
        if (ph, pw) != (h, w):
            padded = np.zeros((ph, pw), dtype=bool)
            padded[:h, :w] = valid
            valid = padded
        # pixels seen per cell: f rows added as whole contiguous rows, then f columns at a time
        # (several times faster than one reduction over a 4-d view)
        rows = np.ascontiguousarray(valid).view(np.uint8).reshape(ph // f, f, pw).sum(axis=1, dtype=np.uint16)
        cells = np.add.reduceat(rows, np.arange(0, pw, f), axis=1, dtype=np.int32) * 2 >= f * f
        self._coarse[r : r + cells.shape[0], c : c + cells.shape[1]] = cells

    # --- merging ------------------------------------------------------------------
    def merge_strips(self, strips: list[StripResult]) -> list[Patch]:
        """The patches that cross strip edges, from the strips' seam state.

        ``self`` is a whole-raster extractor on the same grid; ``strips`` (in any order)
        must tile the raster. Only ``rows``, ``seam_pieces`` and the edge rows are used, so
        a caller may drop a strip's ``patches`` and ``coarse`` once it has used them
        (see :meth:`add_strip_stats`).
        """
        strips = sorted(strips, key=lambda s: s.rows[0])
        if (
            not strips
            or [s.rows[0] for s in strips[1:]] != [s.rows[1] for s in strips[:-1]]
            or (strips[0].rows[0], strips[-1].rows[1]) != (0, self.reader.shape[0])
        ):
            raise ValueError("strips do not tile the raster")
        seams = _Seams()
        for s in strips:  # in raster order, as a serial run would have met them
            for g, root, piece in s.seam_pieces:
                seams.pending[g] = piece
                seams.uf.union(g, root)
        for upper, lower in zip(strips, strips[1:]):
            seams.join(upper.bottom_ids, upper.bottom_keys, lower.top_ids, lower.top_keys)
        return self._finish(seams.release())

    def add_strip_stats(self, s: StripResult) -> None:
        """Fold a strip's observed ground and counters into this whole-raster extractor (once per strip)."""
        r = s.rows[0] // self.cell
        self._coarse[r : r + s.coarse.shape[0]] |= s.coarse
        self.observed_pixels += s.observed_pixels
        self.windows_with_change += s.windows_with_change

    def _finish(self, pieces: list[_Piece]) -> list[Patch]:
        if not pieces:
            return []
        t = self.reader.transform
        geoms = np.array(
            [p.polygons[0] if len(p.polygons) == 1 else shapely.union_all(p.polygons) for p in pieces], dtype=object
        )
        geoms = apply_affine(geoms, t)
        geoms = reproject(geoms, self.reader.crs)
        patches = []
        for piece, geom in zip(pieces, geoms):
            area = _geodesic_m2(geom) / M2_PER_HA
            if area < self.mmu_ha:
                continue
            # confidence: the highest level reached by at least half of the pixels
            level = max(k for k, n in enumerate(piece.ge) if 2 * n >= piece.pixels)
            patches.append(
                Patch(
                    geometry=geom,
                    activity=vocab.ACTIVITIES[piece.key - 1],
                    confidence=vocab.CONFIDENCES[level],
                    score=piece.score_sum / piece.pixels if self.reader.product.mode == "probability" else None,
                    pixels=piece.pixels,
                    area_ha=area,
                )
            )
        return patches

    def footprint(self):
        """Where the scan saw the ground, in lon/lat (cells of ``self.cell`` pixels); whole raster only."""
        if not self._coarse.any():
            return None
        f = self.cell
        h, w = self.reader.shape
        # union in coarse-cell coordinates, clip to the grid, then to ground coordinates
        geom = shapely.intersection(mask_region(self._coarse), shapely.box(0, 0, w / f, h / f))
        geom = shapely.segmentize(geom, 16)
        geom = apply_affine(geom, self.reader.transform @ Affine.scale(f))
        return shapely.make_valid(reproject(geom, self.reader.crs))


def mask_region(mask: np.ndarray, tile: int = 128):
    """The True cells of a boolean grid as one (multi)polygon in cell coordinates.

    GDAL's polygonizer walks every cell it is given. A scene's observed ground is mostly
    large solid areas (and no-data or sea), so the grid is cut into tiles: tiles all True
    become boxes (polygonized together at tile resolution), tiles all False are skipped,
    and only mixed tiles (coasts, cloud edges) are polygonized cell by cell.
    """
    h, w = mask.shape
    th, tw = -(-h // tile), -(-w // tile)
    padded = np.zeros((th * tile, tw * tile), dtype=bool)
    padded[:h, :w] = mask
    counts = padded.reshape(th, tile, tw, tile).sum(axis=(1, 3), dtype=np.int32)
    full = counts == tile * tile
    polys = [
        apply_affine(shapely.geometry.shape(g), Affine.scale(tile))
        for g, _ in shapes(full.view(np.uint8), mask=full, connectivity=4)
    ]
    for i, j in zip(*np.nonzero((counts > 0) & ~full)):
        sub = padded[i * tile : (i + 1) * tile, j * tile : (j + 1) * tile]
        polys += [
            apply_affine(shapely.geometry.shape(g), Affine.translation(j * tile, i * tile))
            for g, _ in shapes(sub.view(np.uint8), mask=sub, connectivity=4)
        ]
    return shapely.union_all(polys)


def extract_in_strips(reader: ProductReader, window_rows: int, **kwargs) -> tuple[list[Patch], PatchExtractor]:
    """Run the strips one after another in this process and merge them (what a cluster does, serially).

    Returns all patches and the whole-raster extractor holding footprint and counters.
    """
    whole = PatchExtractor(reader, **kwargs)
    patches, seams = [], []
    for rows in whole.strips(window_rows):
        res = PatchExtractor(reader, rows=rows, **kwargs).strip_result()
        whole.add_strip_stats(res)
        patches.extend(res.patches)
        seams.append(res)
    patches.extend(whole.merge_strips(seams))
    return patches, whole
