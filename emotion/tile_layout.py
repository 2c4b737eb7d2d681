"""The tile layout of a video-call gallery, found from the thin lines of one colour that separate its tiles.

    layout = find_tiles(gray)       # None when the frame is not a gallery (one camera, a single tile)
    layout.tiles                    # (x, y, w, h) of each tile, row by row (a speaker view: strip and speaker)
    layout.still_holds(gray)        # cheap per frame: are the separators still there? (join/leave re-flows)

Call apps draw tiles on a background of one colour (black or dark gray) and leave a few pixels of it
between tiles. A separator is a run of lines (rows or columns) whose pixels all have that colour, thinner
than MAX_GAP of the frame; runs at the edges of a region are margins. The frame is cut at the
separators that span it, each part again at the separators that span the part (XY-cut), so a speaker view
(a strip of thumbnails over one big tile) and a re-flowed last row come out right. The background colour is
the colour of the separators that span the whole frame; a room seen by one camera has none, or only thick
bands of wall, so it is not taken for a gallery.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

Box = tuple[int, int, int, int]  # x, y, w, h in frame pixels

FLAT_STD = 4.0  # gray levels: the pixels of a separator line vary less than this
SAME_COLOUR = 12.0  # gray levels: how far a separator may be from the background colour
MAX_GAP = 0.03  # a separator is at most this share of the frame's side thick
MIN_TILE = 32  # px: narrower parts are slivers between separators, not tiles
STRIDE = 2  # the search reads every 2nd row and column: separators are at least 2 px thick


@dataclass(frozen=True)
class Separator:
    axis: int  # 0: a row (horizontal line), 1: a column
    at: int  # its row or column, in frame pixels
    start: int  # the span it runs over, along the other axis
    end: int


@dataclass(frozen=True)
class TileLayout:
    tiles: tuple[Box, ...]
    separators: tuple[Separator, ...]
    colour: float  # the background's gray level

    def still_holds(self, gray: np.ndarray) -> bool:
        """True while every separator is still a flat line of the background colour (a few dozen lines read)."""
        for s in self.separators:
            line = gray[s.at, s.start:s.end] if s.axis == 0 else gray[s.start:s.end, s.at]
            line = line.astype(np.float32)
            if line.size == 0 or line.std() > FLAT_STD or abs(line.mean() - self.colour) > SAME_COLOUR:
                return False
        return True


def _runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """[start, end) of each run of True."""
    edges = np.diff(np.concatenate([[0], mask.astype(np.int8), [0]]))
    return list(zip(np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)))


def _flat_runs(img: np.ndarray, box: Box, axis: int, colour: float | None) -> list[tuple[int, int, float]]:
    """Runs of flat lines across `box` (rows for axis 0), of `colour` when given: (start, end, mean colour)."""
    x, y, w, h = box
    region = img[y:y + h, x:x + w]
    mean, std = region.mean(axis=1 - axis), region.std(axis=1 - axis)
    flat = std <= FLAT_STD
    if colour is not None:
        flat &= np.abs(mean - colour) <= SAME_COLOUR
    steps = np.flatnonzero(np.abs(np.diff(mean)) > SAME_COLOUR / 2) + 1  # a flat tile's edge on a flat gap
    flat[steps] &= ~flat[steps - 1]  # a line unlike the one before starts a run of its own
    runs = []
    for a, b in _runs(flat):
        cuts = [a] + [c for c in steps if a < c < b] + [b]
        runs += [(start, end, float(mean[start:end].mean())) for start, end in zip(cuts, cuts[1:])]
    return runs


def _interior_gaps(runs, length: int, max_gap: int):
    return [(a, b, c) for a, b, c in runs if a > 0 and b < length and b - a <= max_gap]


def _trim(img: np.ndarray, box: Box, colour: float) -> Box | None:
    """`box` without margins of the background colour; None when nothing else is in it."""
    x, y, w, h = box
    for axis in (0, 1):
        length = h if axis == 0 else w
        runs = _flat_runs(img, (x, y, w, h), axis, colour)
        low = next((b for a, b, _ in runs if a == 0), 0)
        high = next((a for a, b, _ in runs if b == length), length)
        if high <= low:
            return None
        x, y, w, h = (x, y + low, w, high - low) if axis == 0 else (x + low, y, high - low, h)
    return x, y, w, h


def _split(img: np.ndarray, box: Box, colour: float, max_gap: tuple[int, int], depth: int,
           separators: list[Separator]) -> list[Box]:
    trimmed = _trim(img, box, colour)
    if trimmed is None:
        return []
    x, y, w, h = trimmed
    for axis in (0, 1):
        length = h if axis == 0 else w
        gaps = _interior_gaps(_flat_runs(img, trimmed, axis, colour), length, max_gap[axis])
        if not gaps or depth >= 4:
            continue
        edges = [0] + [v for a, b, _ in gaps for v in (a, b)] + [length]
        span = (x, x + w) if axis == 0 else (y, y + h)
        separators += [Separator(axis, (y if axis == 0 else x) + (a + b) // 2, *span) for a, b, _ in gaps]
        parts = [(x, y + start, w, end - start) if axis == 0 else (x + start, y, end - start, h)
                 for start, end in zip(edges[::2], edges[1::2])]
        return [tile for part in parts for tile in _split(img, part, colour, max_gap, depth + 1, separators)]
    if min(w, h) * STRIDE < MIN_TILE or img[y:y + h, x:x + w].std() <= FLAT_STD:
        return []  # a sliver, or an empty slot of the grid
    return [trimmed]


def find_tiles(gray: np.ndarray) -> TileLayout | None:
    """The gallery's tiles, or None when `gray` is not a gallery of at least two tiles."""
    img = gray[::STRIDE, ::STRIDE].astype(np.float32)
    height, width = img.shape
    whole = (0, 0, width, height)
    max_gap = (max(int(MAX_GAP * height), 2), max(int(MAX_GAP * width), 2))
    gaps = [(axis, c) for axis in (0, 1)
            for _, _, c in _interior_gaps(_flat_runs(img, whole, axis, None), (height, width)[axis], max_gap[axis])]
    if not gaps:
        return None

    def support(colour: float) -> tuple[int, int]:
        """Axes with a gap of about this colour, then gaps: the background shows between rows and between
        columns, while a band of tiles of one flat colour (above their faces) runs along one axis only."""
        axes = [axis for axis, c in gaps if abs(c - colour) <= SAME_COLOUR]
        return len(set(axes)), len(axes)

    best = max((c for _, c in gaps), key=support)
    colour = float(np.median([c for _, c in gaps if abs(c - best) <= SAME_COLOUR]))
    separators: list[Separator] = []
    tiles = _split(img, whole, colour, max_gap, 0, separators)
    if len(tiles) < 2:
        return None
    scaled = [Separator(s.axis, s.at * STRIDE, s.start * STRIDE, s.end * STRIDE) for s in separators]
    return TileLayout(tuple(tuple(int(v) * STRIDE for v in t) for t in tiles), tuple(scaled), colour)
