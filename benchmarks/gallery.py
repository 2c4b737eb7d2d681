"""Synthetic video-call galleries (and a single classroom camera) with known truth, for detection and mood
benchmarks.

Extends ../shared/classroom-bench/make_video.py in our own code: the same face source (48 px crops in
<root>/<emotion>/, FER2013's folder layout), per-minute mood scripts, expressions that change every
`segment` seconds, jitter, brightness drift and noise, and the same truth files (so the bench's score.py
scores a session CSV against them), plus the box of every face in every frame and layouts the bench lacks.

    from benchmarks.gallery import PRESETS, make_gallery
    made = make_gallery("/tmp/g6", PRESETS["6x6-1080p"], minutes=1)  # keyword overrides of the spec
    made.video, made.truth_minutes, made.truth_tiles, made.truth_faces

    python benchmarks/gallery.py /tmp/g6 --preset 6x6-1080p --minutes 1
    python benchmarks/gallery.py /tmp/g --rows 4 --cols 4 --size 1280x720 --camera-off 2,9 --leave 5@30 --join 15@45

Views: `grid` (rows x cols tiles; when someone joins or leaves, the grid re-flows to fit who is there, as
call apps do, unless reflow=False), `speaker` (the first participant present fills the frame below a strip
of `cols` thumbnails), `classroom` (rows x cols students in one room: no tiles, faces smaller at the back).
Camera-off participants show their name only. Participants are 0-based in a GallerySpec and numbered from 1
on screen ("Student 01") and on the command line. Written to OUT_DIR:

- video.mp4            PyAV, H.264 (MPEG-4 part 2 without libx264)
- truth_minutes.csv    minute, faces_per_frame, the 7 shares of face-frames per emotion (make_video.py's format)
- truth_tiles.csv      start_s, end_s, tile, x, y, w, h, emotion, file: who showed what where (tile = participant)
- truth_faces.csv      frame, seconds, participant, x, y, w, h, emotion: every face box of every frame
"""
from __future__ import annotations

import argparse
import csv
import math
import random
import sys
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Iterator

import cv2
import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
DEFAULT_FACES = REPO.parent / "shared" / "datasets" / "fer2013" / "val"
EMOTIONS = ["angry", "disgust", "fear", "happy", "neutral", "sad", "surprise"]
VIEWS = ("grid", "speaker", "classroom")

# Class-mood scripts: one mix per minute, cycled. "bench" is classroom-bench's own script.
SCRIPTS = {
    "bench": [{"neutral": .50, "happy": .30, "sad": .10, "surprise": .10},
              {"fear": .25, "sad": .25, "angry": .20, "neutral": .20, "disgust": .05, "surprise": .05},
              {"happy": .45, "surprise": .25, "neutral": .20, "angry": .10},
              {"neutral": .35, "sad": .35, "fear": .10, "happy": .20}],
    "calm": [{"neutral": .55, "happy": .35, "surprise": .10}],
    "tense": [{"neutral": .40, "sad": .20, "fear": .20, "angry": .20},
              {"angry": .35, "disgust": .15, "sad": .25, "neutral": .25}],
    "swing": [{"happy": .70, "neutral": .30}, {"sad": .50, "angry": .20, "neutral": .30}],
    "uniform": [dict.fromkeys(EMOTIONS, 1 / 7)],
}

Box = tuple[int, int, int, int]  # x, y, w, h in frame pixels


@dataclass(frozen=True)
class GallerySpec:
    """What to draw. The defaults are classroom-bench's video (5x5 tiles on 1280x720, 104 px faces)."""

    view: str = "grid"
    rows: int = 5
    cols: int = 5
    size: tuple[int, int] = (1280, 720)  # width, height
    participants: int = 0  # 0: rows x cols (speaker view: cols + 1)
    camera_off: tuple[int, ...] = (3, 11, 17, 22)  # participants showing a name only
    joins: tuple[tuple[int, float], ...] = ()  # (participant, second): absent before
    leaves: tuple[tuple[int, float], ...] = ()  # (participant, second): gone from then on
    reflow: bool = True  # the grid re-flows when the number present changes
    face_fraction: float = 0.72  # face side / tile height
    face_offset: float = 0.0  # how far off the tile centre a face may sit, as a share of the free space
    script: str = "bench"
    seed: int = 7
    fps: int = 4
    minutes: int = 4
    segment: int = 10  # seconds a student keeps one expression

    @property
    def count(self) -> int:
        return self.participants or (self.cols + 1 if self.view == "speaker" else self.rows * self.cols)


PRESETS = {
    "bench": GallerySpec(),
    "6x6-1080p": GallerySpec(rows=6, cols=6, size=(1920, 1080), camera_off=(5, 14, 23, 30), face_fraction=0.47,
                             face_offset=0.5),
    "7x7-1080p": GallerySpec(rows=7, cols=7, size=(1920, 1080), camera_off=(0, 8, 19, 27, 33, 40, 46),
                             face_fraction=0.5, face_offset=0.4),  # the largest class the product is for
    "4x4-720p": GallerySpec(rows=4, cols=4, size=(1280, 720), camera_off=(2, 9), face_fraction=0.6, face_offset=0.5),
    "3x3-480p": GallerySpec(rows=3, cols=3, size=(640, 480), camera_off=(4,), face_fraction=0.6, face_offset=0.5),
    "join-leave": GallerySpec(leaves=((2, 30.0), (6, 30.0), (9, 30.0), (13, 30.0), (18, 30.0), (21, 30.0)),
                              joins=((24, 45.0),), face_offset=0.3),
    "speaker": GallerySpec(view="speaker", cols=5, camera_off=(3,), face_fraction=0.6, face_offset=0.3),
    "classroom": GallerySpec(view="classroom", rows=3, cols=6, camera_off=(), face_fraction=0.5),
}


@dataclass(frozen=True)
class ShownFace:
    participant: int
    box: Box
    emotion: str
    file: str
    tile: Box  # the participant's tile (the seat's area in the classroom view)


@dataclass(frozen=True)
class Gallery:
    """The files make_gallery wrote."""

    video: Path
    truth_minutes: Path
    truth_tiles: Path
    truth_faces: Path


def fit_grid(n: int) -> tuple[int, int]:
    """Rows and columns of the squarest grid with room for n tiles, as call apps re-flow."""
    cols = max(math.ceil(math.sqrt(n)), 1)
    return max(math.ceil(n / cols), 1), cols


def grid_cells(rows: int, cols: int, width: int, height: int, top: int = 0) -> list[Box]:
    tile_w, tile_h = width // cols, (height - top) // rows
    return [(c * tile_w, top + r * tile_h, tile_w, tile_h) for r in range(rows) for c in range(cols)]


def layout(spec: GallerySpec, present: tuple[int, ...]) -> dict[int, Box]:
    """Each shown participant's tile for the participants present."""
    width, height = spec.size
    if spec.view == "speaker":
        strip = height // 5
        thumbs = grid_cells(1, spec.cols, width, strip)
        return {present[0]: (0, strip, width, height - strip), **dict(zip(present[1:], thumbs))} if present else {}
    if spec.view == "classroom":
        return {p: seat for p, seat in enumerate(classroom_seats(spec)) if p in present}
    if spec.reflow and (spec.joins or spec.leaves):
        return dict(zip(present, grid_cells(*fit_grid(len(present)), width, height)))
    cells = grid_cells(spec.rows, spec.cols, width, height)
    return {p: cells[p] for p in present if p < len(cells)}


def classroom_seats(spec: GallerySpec) -> list[Box]:
    """Seat areas in one room, back row first: rows shrink towards the back and are staggered."""
    width, height = spec.size
    seats = []
    for r in range(spec.rows):
        depth = 0.6 + 0.4 * r / max(spec.rows - 1, 1)  # 1 = front row
        side = int(height / spec.rows * depth)
        y = int(height * 0.12 + sum(height / spec.rows * (0.6 + 0.4 * k / max(spec.rows - 1, 1)) * 0.78
                                    for k in range(r)))
        span = width * (0.6 + 0.4 * depth)
        step = span / spec.cols
        x0 = (width - span) / 2 + (step / 4 if r % 2 else 0)
        seats += [(int(x0 + c * step), y, int(step), side) for c in range(spec.cols)]
    return seats


class _FacePool:
    """Face crops per emotion, shuffled by the seed and taken in turn (as make_video.py does)."""

    def __init__(self, root: Path, rng: random.Random):
        self.root = Path(root)
        self.files = {e: sorted(p.name for p in (self.root / e).iterdir()) for e in EMOTIONS}
        missing = [e for e, names in self.files.items() if not names]
        if missing:
            raise FileNotFoundError(f"{self.root} has no faces for {', '.join(missing)}")
        for names in self.files.values():
            rng.shuffle(names)
        self.used = dict.fromkeys(EMOTIONS, 0)

    def take(self, emotion: str) -> tuple[np.ndarray, str]:
        name = self.files[emotion][self.used[emotion] % len(self.files[emotion])]
        self.used[emotion] += 1
        return cv2.imread(str(self.root / emotion / name), cv2.IMREAD_GRAYSCALE), name


def plan_expressions(spec: GallerySpec, pool: _FacePool, rng: random.Random) -> list[dict[int, tuple[str, np.ndarray,
                                                                                                     str]]]:
    """Per segment, each camera-on participant's (emotion, face, file), following that minute's mix."""
    script = SCRIPTS[spec.script]
    on = [p for p in range(spec.count) if p not in spec.camera_off]
    plan = []
    for s in range(math.ceil(spec.minutes * 60 / spec.segment)):
        mix = script[(s * spec.segment // 60) % len(script)]
        labels = [e for e, p in mix.items() for _ in range(round(p * len(on)))]
        labels = (labels + [max(mix, key=mix.get)] * len(on))[:len(on)]
        rng.shuffle(labels)
        plan.append({p: (e, *pool.take(e)) for p, e in zip(on, labels)})
    return plan


def render_frames(spec: GallerySpec, faces_root: str | Path = DEFAULT_FACES
                  ) -> Iterator[tuple[float, np.ndarray, list[ShownFace]]]:
    """(seconds, BGR frame, faces shown) for every frame of the video `spec` describes."""
    if spec.view not in VIEWS:
        raise ValueError(f"unknown view {spec.view!r}; expected one of {', '.join(VIEWS)}")
    if spec.script not in SCRIPTS:
        raise ValueError(f"unknown script {spec.script!r}; expected one of {', '.join(SCRIPTS)}")
    rng, nrng = random.Random(spec.seed), np.random.default_rng(spec.seed)
    plan = plan_expressions(spec, _FacePool(Path(faces_root), rng), rng)
    width, height = spec.size
    colours = [tuple(int(v) for v in nrng.integers(40, 110, 3)) for _ in range(spec.count)]
    offsets = nrng.uniform(-1, 1, (spec.count, 2)) * spec.face_offset
    joined, left = dict(spec.joins), dict(spec.leaves)
    layouts: dict[tuple[int, ...], dict[int, Box]] = {}
    room = classroom_background(spec.size) if spec.view == "classroom" else None
    for f in range(spec.minutes * 60 * spec.fps):
        seconds = f / spec.fps
        present = tuple(p for p in range(spec.count) if joined.get(p, -1) <= seconds < left.get(p, math.inf))
        tiles = layouts.setdefault(present, layout(spec, present))
        frame = room.copy() if room is not None else np.zeros((height, width, 3), np.uint8)
        shown = []
        for p, (x, y, w, h) in tiles.items():
            name = f"Student {p + 1:02d}"
            if room is None:
                cv2.rectangle(frame, (x + 2, y + 2), (x + w - 3, y + h - 3), colours[p], -1)
            if p in spec.camera_off:
                if room is None:
                    cv2.putText(frame, name, (x + max(w // 2 - 50, 4), y + h // 2), cv2.FONT_HERSHEY_SIMPLEX,
                                0.6 if w > 150 else 0.4, (220, 220, 220), 1, cv2.LINE_AA)
                continue
            emotion, img, file = plan[int(seconds) // spec.segment][p]
            side = min(round(spec.face_fraction * h), w - 8, h - 8)
            jx, jy = (int(v) for v in nrng.integers(-2, 3, 2))
            fx = x + (w - side) // 2 + int(offsets[p, 0] * (w - side - 8) / 2) + jx
            fy = y + (h - side) // 2 + int(offsets[p, 1] * (h - side - 8) / 2) + jy
            fx, fy = min(max(fx, 0), width - side), min(max(fy, 0), height - side)
            gain = 1.0 + 0.05 * np.sin(2 * np.pi * (f / (spec.fps * 7.0) + p / 5))
            face = cv2.resize(img, (side, side), interpolation=cv2.INTER_CUBIC).astype(np.float32) * gain
            face = np.clip(face + nrng.normal(0, 3, face.shape), 0, 255).astype(np.uint8)
            frame[fy:fy + side, fx:fx + side] = face[:, :, None]
            if room is None:
                cv2.putText(frame, name, (x + 6, y + h - 8), cv2.FONT_HERSHEY_SIMPLEX, 0.35, (235, 235, 235), 1,
                            cv2.LINE_AA)
            shown.append(ShownFace(p, (fx, fy, side, side), emotion, file, (x, y, w, h)))
        yield seconds, frame, shown


def classroom_background(size: tuple[int, int]) -> np.ndarray:
    """A wall, a floor and a board: a room without tile borders."""
    width, height = size
    shade = np.linspace(150, 95, height)[:, None, None] * np.array([1.0, 0.95, 0.85])
    room = np.broadcast_to(shade, (height, width, 3)).astype(np.uint8).copy()
    cv2.rectangle(room, (width // 3, 8), (2 * width // 3, int(height * 0.1)), (60, 80, 50), -1)
    return room


def make_gallery(out_dir: str | Path, spec: GallerySpec = GallerySpec(), faces_root: str | Path = DEFAULT_FACES,
                 **overrides) -> Gallery:
    """Render the video `spec` (with keyword overrides, e.g. minutes=1) describes and write it with its truth."""
    from tests.synthetic import write_video

    spec = replace(spec, **overrides)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    made = Gallery(out / "video.mp4", out / "truth_minutes.csv", out / "truth_tiles.csv", out / "truth_faces.csv")
    per_frame: list[tuple[float, list[ShownFace]]] = []

    def frames():
        for seconds, frame, shown in render_frames(spec, faces_root):
            per_frame.append((seconds, shown))
            yield frame

    write_video(made.video, frames(), fps=spec.fps)
    write_truth(made, per_frame, spec)
    return made


def write_truth(made: Gallery, per_frame: list[tuple[float, list[ShownFace]]], spec: GallerySpec) -> None:
    with open(made.truth_faces, "w", newline="") as fh:
        out = csv.writer(fh)
        out.writerow(["frame", "seconds", "participant", "x", "y", "w", "h", "emotion"])
        out.writerows([f, seconds, s.participant, *s.box, s.emotion]
                      for f, (seconds, shown) in enumerate(per_frame) for s in shown)
    runs: dict[tuple, list[float]] = {}  # (participant, tile, emotion, file) -> [start, end] of its latest run
    rows = []
    for seconds, shown in per_frame:
        for s in shown:
            key = (s.participant, s.tile, s.emotion, s.file)
            run = runs.get(key)
            if run is None or run[1] < seconds:
                run = runs[key] = [seconds, seconds]
                rows.append((key, run))
            run[1] = seconds + 1 / spec.fps
    with open(made.truth_tiles, "w", newline="") as fh:
        out = csv.writer(fh)
        out.writerow(["start_s", "end_s", "tile", "x", "y", "w", "h", "emotion", "file"])
        out.writerows([round(start, 3), round(end, 3), p, *tile, emotion, file]
                      for (p, tile, emotion, file), (start, end) in sorted(rows, key=lambda r: (r[1][0], r[0][0])))
    with open(made.truth_minutes, "w", newline="") as fh:
        out = csv.writer(fh)
        out.writerow(["minute", "faces_per_frame"] + EMOTIONS)
        for m in range(spec.minutes):
            minute = [shown for seconds, shown in per_frame if m * 60 <= seconds < (m + 1) * 60]
            faces = [s.emotion for shown in minute for s in shown]
            shares = [round(faces.count(e) / max(len(faces), 1), 6) for e in EMOTIONS]
            out.writerow([m, round(len(faces) / max(len(minute), 1), 4)] + shares)


def _moments(text: str) -> tuple[tuple[int, float], ...]:
    """"5@30,6@45" -> ((4, 30.0), (5, 45.0)): participants as numbered on screen (Student 05) -> indices."""
    pairs = [item.split("@") for item in text.split(",") if item]
    return tuple((int(p) - 1, float(s)) for p, s in pairs)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out_dir")
    parser.add_argument("--preset", choices=PRESETS, default="bench", help="start from this spec; flags override")
    parser.add_argument("--faces", default=str(DEFAULT_FACES), help="face crops in <root>/<emotion>/")
    parser.add_argument("--view", choices=VIEWS)
    parser.add_argument("--rows", type=int)
    parser.add_argument("--cols", type=int)
    parser.add_argument("--size", type=lambda s: tuple(int(v) for v in s.lower().split("x")), help="e.g. 1920x1080")
    parser.add_argument("--participants", type=int)
    parser.add_argument("--camera-off", type=lambda s: tuple(int(v) - 1 for v in s.split(",") if v),
                        help="students (numbered from 1, as on screen) with their camera off, e.g. 4,12")
    parser.add_argument("--join", dest="joins", type=_moments, help="STUDENT@SECOND,... joining then")
    parser.add_argument("--leave", dest="leaves", type=_moments, help="STUDENT@SECOND,... leaving then")
    parser.add_argument("--no-reflow", dest="reflow", action="store_false", default=None,
                        help="keep the grid when someone joins or leaves (their tile stays black)")
    parser.add_argument("--face-fraction", type=float, help="face side as a share of the tile height")
    parser.add_argument("--face-offset", type=float, help="0 = faces centred in their tiles, 1 = anywhere")
    parser.add_argument("--script", choices=SCRIPTS)
    for name in ("seed", "fps", "minutes", "segment"):
        parser.add_argument(f"--{name}", type=int)
    args = vars(parser.parse_args(argv))
    if not Path(args["faces"]).is_dir():
        print(f"skipped: the face folder {args['faces']} is missing")
        return 0
    overrides = {f.name: args[f.name] for f in fields(GallerySpec) if args.get(f.name) is not None}
    made = make_gallery(args["out_dir"], PRESETS[args["preset"]], args["faces"], **overrides)
    print(made.video)
    return 0


if __name__ == "__main__":
    sys.exit(main())
