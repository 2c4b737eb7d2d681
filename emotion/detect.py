"""Face detection with OpenCV's Haar cascade, aware of video-call galleries.

    detector = FaceDetector()                 # DetectorSettings() are the defaults of the CLI and dashboard
    faces = detector(frame, timestamp)        # frames in time order: the detector keeps what it found
    detector.holds_faces(frame, faces.boxes)  # per box: is there still a face? (coasting tracks, reused boxes)

A gallery (emotion/tile_layout.py) is searched tile by tile, each tile scaled so that its height is
`tile_height` px: a face filling a fair part of its tile then suits the cascade's window whatever the
frame's size (shrinking a whole 1080p frame to 640 px made 84 px faces too small for it); a tile where
no face turns up is tried at two more scales, and a camera-off tile (a name on a flat colour) is not
searched at all. Between full searches, every `search_seconds`, a student's box is only verified: the
cascade runs on the box and a margin around it, at a fixed small scale, which costs a fraction of a
millisecond; a tile whose face is not confirmed is searched again in that frame. A new layout (someone
joins or leaves, speaker view) starts a full search at once. A frame that is not a gallery (one classroom
camera) is searched whole, shrunk to `max_width`, with the same keep-and-verify between full searches.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from emotion.faces import Faces
from emotion.preprocess import to_gray
from emotion.settings import REPO_ROOT
from emotion.tile_layout import TileLayout, find_tiles
from emotion.track import iou_matrix

DEFAULT_CASCADE = REPO_ROOT / "haarcascade_frontalface_default.xml"
SECOND_CASCADE = Path(cv2.data.haarcascades) / "haarcascade_frontalface_alt2.xml"  # tried where the first finds none
EQUALIZATIONS = ("clahe", "global", "none")
FACE_OF_TILE = (0.25, 0.12)  # a tile's face is at least the first share of its height; if none is, the second
WINDOW = 24  # px: the cascade's window, the smallest face it finds
PATCH_SIDE = 24  # px: a kept face is remembered at this size and looked for again within VERIFY_MARGIN of it
VERIFY_MARGIN = 0.25
SAME_FACE = 0.7  # normalised cross-correlation above which the box still shows the face found there
CHECK_SIDE = 40  # px: a box without a remembered face is checked by the cascade at this size
CAMERA_OFF_LEVEL = 6  # gray levels: a tile's pixels this close to its colour are its flat background
CAMERA_OFF_STROKE = 5  # px at half size: wider than a letter's stroke, far narrower than a face


@dataclass(frozen=True)
class DetectorSettings:
    """Whole-frame defaults chosen on the classroom bench (25-tile 1280x720 gallery of FER2013 faces), one
    frame per 5 s: min_neighbors 3 found 78 % of faces per frame at 0.15 false ones, against 73 % at 5;
    CLAHE 78 %, no equalisation 77 %, global equalizeHist 64 %. Only a frame that is not a gallery (one
    classroom camera) is searched whole: at 960 px its small faces at the back stay above the cascade's
    window (single frames of benchmarks/gallery.py's classroom: 87 % found, 83 % at 640 px, 88 % unshrunk).
    A tile holds one face, the cascade's largest candidate, so a single neighbour suffices there (no false
    face on camera-off tiles in benchmarks/bench_detection.py); a tile where none is found is tried at two
    more scales (6x6 1080p gallery: 0.937 -> 0.952 of faces found), believing only a face about as large
    as the other tiles' (a mouth or an eye alone was a false face on the 5x5 gallery)."""

    scale_factor: float = 1.1
    min_neighbors: int = 3
    min_face_size: int = 40  # px in the original frame
    max_width: int = 960  # a frame that is not a gallery is shrunk to this width before detection (0 = never)
    equalization: str = "clahe"  # local (CLAHE), global (equalizeHist) or none
    tiles: bool = True  # find a gallery's tiles and search each at a scale from its size
    tile_height: int = 100  # px: each tile is scaled to this height for the cascade
    tile_min_neighbors: int = 1
    retry_tile_heights: tuple[int, ...] = (150, 75)  # px: a tile with no face at tile_height is searched again
    retry_min_neighbors: int = 2  # at these heights, more strictly, and only for a face at least
    retry_min_share: float = 0.6  # this share of the side of the faces other tiles show (not a mouth or an eye)
    search_seconds: float = 1.0  # a tile without a face (or a whole frame) is searched again this often


@dataclass
class _Kept:
    box: np.ndarray  # x, y, w, h
    patch: np.ndarray  # the face as found, PATCH_SIDE px square


class FaceDetector:
    """Frames in time order -> the faces in them, boxes in frame pixels."""

    def __init__(self, settings: DetectorSettings = DetectorSettings(), cascade_path: str | Path = DEFAULT_CASCADE):
        cascade_path = Path(cascade_path)
        if settings.equalization not in EQUALIZATIONS:
            raise ValueError(f"unknown equalization {settings.equalization!r}; "
                             f"expected one of {', '.join(EQUALIZATIONS)}")
        self.settings = settings
        self._clahe = cv2.createCLAHE(clipLimit=2.0, tileGridSize=(8, 8))
        self.cascades = [cv2.CascadeClassifier(str(path)) for path in (cascade_path, SECOND_CASCADE)]
        if self.cascades[0].empty():
            raise FileNotFoundError(f"cannot load the Haar cascade {cascade_path}: missing or not a cascade XML file")
        self.layout: TileLayout | None = None
        self._kept: dict[int, list[_Kept]] = {}  # region index -> faces kept there
        self._searched: dict[int, float] = {}  # region index -> time of its last search
        self._laid_out: float | None = None
        self._searches = 0  # whole-frame searches so far: they take turns with the cascades

    def __call__(self, frame: np.ndarray, timestamp: float = 0.0) -> Faces:
        gray = to_gray(frame)
        due = self._laid_out is None or not 0 <= timestamp - self._laid_out < self.settings.search_seconds
        if due or (self.layout is not None and not self.layout.still_holds(gray)):
            layout = find_tiles(gray) if self.settings.tiles else None
            if layout is None or self.layout is None or layout.tiles != self.layout.tiles:
                self._kept, self._searched = {}, {}
            self.layout, self._laid_out = layout, timestamp
        regions = self.layout.tiles if self.layout else [(0, 0, gray.shape[1], gray.shape[0])]
        for i, region in enumerate(regions):
            kept = self._kept.get(i, [])
            still = [k for k in kept if self._follow(gray, k)]
            due = not 0 <= timestamp - self._searched.get(i, -np.inf) < self.settings.search_seconds
            if self.layout is None and due:  # one camera: new faces join the kept ones
                self._searches += 1
                found = self._search_region(gray, region, self.cascades[self._searches % len(self.cascades)])
                boxes = np.array([k.box for k in still], dtype=np.float64).reshape(-1, 4)
                new = iou_matrix(found.astype(np.float64), boxes).max(axis=1, initial=0) < 0.3
                still += [_Kept(box, self._patch(gray, box)) for box in found[new]]
                self._searched[i] = timestamp
            elif self.layout is not None and not still and (due or len(kept)):  # a tile holds one face
                still = [_Kept(box, self._patch(gray, box)) for box in self._search_region(gray, region)]
                self._searched[i] = timestamp
            self._kept[i] = still
        boxes = [k.box for kept in self._kept.values() for k in kept]
        return Faces.from_boxes(np.asarray(boxes).reshape(-1, 4), timestamp)

    def holds_faces(self, frame: np.ndarray, boxes: np.ndarray) -> np.ndarray:
        """Per box, whether a face is still there: a kept face's own look, else the cascade on the box only."""
        gray = to_gray(frame)
        kept = [k for faces in self._kept.values() for k in faces]
        boxes = np.asarray(boxes).reshape(-1, 4)
        # one IoU matrix for every box against every kept face (pairwise calls cost 12 ms a frame at 24 faces)
        overlap = iou_matrix(np.array([k.box for k in kept], dtype=float).reshape(-1, 4), boxes.astype(float))
        held = []
        for j, box in enumerate(boxes):
            same = np.flatnonzero(overlap[:, j] >= 0.5)
            held.append(self._follow(gray, _Kept(box.copy(), kept[same[0]].patch)) if len(same) else
                        self._check(gray, box))
        return np.array(held, dtype=bool)

    def reset(self) -> None:
        """Forget the layout and the kept faces: the next frame is searched afresh."""
        self.layout, self._kept, self._searched, self._laid_out = None, {}, {}, None

    @staticmethod
    def _patch(gray: np.ndarray, box) -> np.ndarray:
        x, y, w, h = (int(v) for v in box)
        return cv2.resize(gray[y:y + h, x:x + w], (PATCH_SIDE, PATCH_SIDE), interpolation=cv2.INTER_AREA)

    @staticmethod
    def _around(gray: np.ndarray, box, margin: float):
        """The box widened by `margin` of its side on every side, clipped to the frame."""
        x, y, w, h = (int(v) for v in box)
        pad = int(round(margin * w))
        x0, y0 = max(x - pad, 0), max(y - pad, 0)
        return x0, y0, min(x + w + pad, gray.shape[1]) - x0, min(y + h + pad, gray.shape[0]) - y0

    def _follow(self, gray: np.ndarray, kept: _Kept) -> bool:
        """Find the kept face again near its box (template match at PATCH_SIDE); moves the box. Cheap."""
        x0, y0, w, h = self._around(gray, kept.box, VERIFY_MARGIN)
        scale = PATCH_SIDE / kept.box[2]
        near = cv2.resize(gray[y0:y0 + h, x0:x0 + w], None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
        if min(near.shape) < PATCH_SIDE:
            return False
        _, score, _, (dx, dy) = cv2.minMaxLoc(cv2.matchTemplate(near, kept.patch, cv2.TM_CCOEFF_NORMED))
        if not score >= SAME_FACE:  # NaN on a flat region
            return False
        kept.box = np.array([x0 + dx / scale, y0 + dy / scale, kept.box[2], kept.box[3]]).round().astype(np.int32)
        return True

    def _check(self, gray: np.ndarray, box) -> bool:
        """The cascade finds a face of about this size at the box (its region only)."""
        region = self._around(gray, box, VERIFY_MARGIN)
        return len(self._cascade(gray, region, CHECK_SIDE / box[2], 0.75 * CHECK_SIDE, 1.35 * CHECK_SIDE, 1)) > 0

    def _search_region(self, gray: np.ndarray, region, cascade=None) -> np.ndarray:
        """The face of a tile (at `tile_height`, then the retry heights), or the faces in the whole frame shrunk
        to `max_width` (with `cascade` only)."""
        x, y, w, h = region
        s = self.settings
        if self.layout is None:
            scale = s.max_width / w if s.max_width and w > s.max_width else 1.0
            return self._cascade(gray, region, scale, s.min_face_size * scale, None, s.min_neighbors,
                                 cascades=[cascade] if cascade else self.cascades)
        if self._camera_off(gray, region):
            return np.zeros((0, 4), np.int32)
        found = self._face_of_tile(gray, region, s.tile_height, s.tile_min_neighbors)
        if len(found) or not s.retry_tile_heights:
            return found
        sides = [k.box[2] for kept in self._kept.values() for k in kept]
        at_least = s.retry_min_share * float(np.median(sides)) if sides else 0.0
        for tile_height in s.retry_tile_heights:
            found = self._face_of_tile(gray, region, tile_height, s.retry_min_neighbors, at_least)
            if len(found):
                break
        return found

    def _face_of_tile(self, gray: np.ndarray, region, tile_height: int, neighbors: int,
                      at_least: float = 0.0) -> np.ndarray:
        """The largest face in a tile scaled to `tile_height`, of at least `at_least` px: first among the
        candidates of a fair share of the tile's height, then smaller ones."""
        h = region[3]
        previous = None
        for share in FACE_OF_TILE:  # smaller candidates are mostly parts of a face (a mouth, an eye)
            smallest = max(self.settings.min_face_size, share * h, at_least)
            if previous is not None and smallest >= previous:
                break
            scale = min(max(tile_height / h, WINDOW / smallest), 2.0)
            found = self._cascade(gray, region, scale, smallest * scale, previous and 1.2 * previous * scale,
                                  neighbors, largest_only=True)
            if len(found):
                return found
            previous = smallest
        return found

    @staticmethod
    def _camera_off(gray: np.ndarray, region) -> bool:
        """A tile of one flat colour but for thin strokes (a name): a camera that is off, nothing to search.
        What differs from the tile's colour is eroded by a square a quarter of the smallest face's side:
        letters vanish, a face or any camera picture does not."""
        x, y, w, h = region
        tile = gray[y:y + h:2, x:x + w:2]
        if tile.size == 0:
            return True
        differs = (np.abs(tile.astype(np.int16) - int(np.median(tile))) > CAMERA_OFF_LEVEL).astype(np.uint8)
        return not cv2.erode(differs, np.ones((CAMERA_OFF_STROKE, CAMERA_OFF_STROKE), np.uint8)).any()

    def _cascade(self, gray, region, scale: float, min_side: float, max_side: float | None, neighbors: int,
                 largest_only: bool = False, cascades=None) -> np.ndarray:
        """Cascade boxes (frame pixels) in `region` of `gray`, scaled by `scale` first; the second cascade
        only where the first finds nothing."""
        x, y, w, h = region
        crop = gray[y:y + h, x:x + w]
        if abs(scale - 1) > 0.02:
            crop = cv2.resize(crop, None, fx=scale, fy=scale,
                              interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
        if self.settings.equalization == "clahe":
            crop = self._clahe.apply(crop)
        elif self.settings.equalization == "global":
            crop = cv2.equalizeHist(crop)
        min_side = max(int(round(min_side)), WINDOW)
        max_side = int(max_side) if max_side else 0
        if min(crop.shape) < min_side:
            return np.zeros((0, 4), np.int32)
        for cascade in cascades or self.cascades:
            found = cascade.detectMultiScale(crop, scaleFactor=self.settings.scale_factor, minNeighbors=neighbors,
                                             minSize=(min_side, min_side), maxSize=(max_side, max_side))
            if len(found):
                break
        found = np.asarray(found, dtype=np.float64).reshape(-1, 4)
        if largest_only and len(found):  # smaller candidates in a tile are parts of its face
            found = found[[int(np.argmax(found[:, 2]))]]
        return np.round(found / scale + [x, y, 0, 0]).astype(np.int32)
