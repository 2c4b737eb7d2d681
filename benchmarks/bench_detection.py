"""Face detection per layout, as the teacher gets it: recall and false faces per analysed frame, detection
ms per frame and end-to-end frames/s, with the default settings of the command line and the dashboard
(SessionSettings: 2 fps, detection on every 2nd frame) or the two they replaced (4fps-every2, 2fps-every1),
on galleries that benchmarks/gallery.py makes from ../shared's FER2013 `val` faces.

    python benchmarks/bench_detection.py [--layouts bench,6x6-1080p] [--minutes 1] [--settings default,2fps-every1]
                                         [--detector haar] [--json results.jsonl]

Scored on the faces the pipeline classifies and counts (detections plus coasting tracks): a face is found
when one box overlaps its true box with IoU >= 0.3, or sits on it (centre inside, side within a factor 2);
one box per face; every other box is a false face.
Camera-off tiles and left students have no true box, so a box there is false. Videos are made once and
kept under --video-dir.
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import sys
import time
from collections import defaultdict
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from benchmarks.gallery import DEFAULT_FACES, PRESETS, make_gallery  # noqa: E402

MIN_IOU = 0.3


@dataclass(frozen=True)
class Analysis:
    """How often frames are analysed and detected (emotion/session.py SessionSettings)."""

    fps: float
    detect_every: int
    coast_seconds: float = 2.0


def analyses() -> dict[str, Analysis]:
    """`default`: SessionSettings(), the CLI's and the dashboard's defaults; the two before it (the CLI's
    4 fps with detection on every 2nd frame, the dashboard's 2 fps with detection on every frame)."""
    from emotion.session import SessionSettings

    s = SessionSettings()
    return {"default": Analysis(s.analysis_fps, s.detect_every, s.coast_seconds),
            "4fps-every2": Analysis(4.0, 2), "2fps-every1": Analysis(2.0, 1)}


def read_truth(path: Path) -> dict[int, np.ndarray]:
    """Frame index -> the true face boxes (x, y, w, h) of that frame."""
    boxes = defaultdict(list)
    with open(path) as fh:
        for row in csv.DictReader(fh):
            boxes[int(row["frame"])].append([int(row[k]) for k in "xywh"])
    return {f: np.asarray(b, dtype=np.float64) for f, b in boxes.items()}


def match_count(truth: np.ndarray, found: np.ndarray) -> int:
    """Faces found: greedy one-to-one pairs of a true and a found box that overlap with IoU >= MIN_IOU, or
    where the found box's centre lies in the true box and its side is within a factor 2 of the true one
    (a Haar box sits a little off or inside a tight FER2013 crop: it is still that face)."""
    from emotion.track import iou_matrix

    found = found.astype(np.float64)
    score = iou_matrix(truth, found)
    if score.size:
        centre = found[None, :, :2] + found[None, :, 2:] / 2
        inside = ((centre >= truth[:, None, :2]) & (centre <= truth[:, None, :2] + truth[:, None, 2:])).all(axis=2)
        ratio = found[None, :, 2] / truth[:, None, 2]
        score = np.where(inside & (ratio >= 0.5) & (ratio <= 2), np.maximum(score, MIN_IOU), score)
    pairs = 0
    while score.size and score.max() >= MIN_IOU:
        t, b = np.unravel_index(np.argmax(score), score.shape)
        score[t, :], score[:, b] = -1, -1
        pairs += 1
    return pairs


def timed(detector_class):
    """`detector_class` counting the CPU time of every thread it uses: less swayed by other processes than
    the wall time the pipeline's timer measures."""

    class Timed(detector_class):
        cpu_seconds = 0.0

        def _timed(self, method, *args):
            start = time.process_time()
            try:
                return method(*args)
            finally:
                self.cpu_seconds += time.process_time() - start

        def __call__(self, frame, timestamp=0.0):
            return self._timed(super().__call__, frame, timestamp)

        def holds_faces(self, frame, boxes):
            return self._timed(super().holds_faces, frame, boxes)

    return Timed


def run(video: Path, truth: dict[int, np.ndarray], fps: int, app: Analysis, detector, classifier) -> dict:
    """Analyse `video` as `app` does and score every analysed frame against `truth`."""
    from emotion.aggregate import MoodAggregator
    from emotion.pipeline import FramePipeline
    from emotion.track import Tracker
    from emotion.video import read_frames

    pipeline = FramePipeline(classifier, MoodAggregator(60), detector=detector,
                             tracker=Tracker(coast_seconds=app.coast_seconds), detect_every=app.detect_every)
    counts = dict.fromkeys(("frames", "true", "found", "false"), 0)
    started, seconds = time.perf_counter(), 0.0
    for seconds, frame in read_frames(video, fps=app.fps):
        faces = pipeline(frame, seconds)
        expected = truth.get(int(round(seconds * fps)), np.zeros((0, 4)))
        found = match_count(expected, faces.boxes)
        counts["frames"] += 1
        counts["true"] += len(expected)
        counts["found"] += found
        counts["false"] += len(faces) - found
    elapsed = time.perf_counter() - started
    stages = pipeline.timer.per_frame_ms()
    return {"recall": counts["found"] / max(counts["true"], 1), "false_per_frame": counts["false"] / counts["frames"],
            "detect_ms": stages["detect"], "detect_cpu_ms": 1000 * detector.cpu_seconds / counts["frames"],
            "frames_per_s": counts["frames"] / elapsed,
            "real_time": (seconds + 1 / fps) / elapsed, "faces_per_frame": counts["true"] / counts["frames"],
            "stages_ms": {k: round(v, 1) for k, v in stages.items()}, "frames": counts["frames"]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--layouts", default=",".join(PRESETS), help=f"comma-separated, of {', '.join(PRESETS)}")
    parser.add_argument("--settings", default="default", help="default, 4fps-every2 and/or 2fps-every1")
    parser.add_argument("--minutes", type=int, default=1, help="length of each video")
    parser.add_argument("--detector", default="",
                        help="a DetectorSettings field=value list, e.g. max_width=0,retry_tile_heights=150+75")
    parser.add_argument("--label", default="", help="names this run in the output (e.g. before, after)")
    parser.add_argument("--weights", help="model file (default: the active model)")
    parser.add_argument("--video-dir", default="/tmp/class-mood-galleries")
    parser.add_argument("--json", help="append one JSON line per layout and setting here")
    args = parser.parse_args()
    if not DEFAULT_FACES.is_dir():
        print(f"skipped: {DEFAULT_FACES} is missing (the faces live in ../shared beside the repository)")
        return 0

    from emotion.classifier import EmotionClassifier
    from emotion.detect import DetectorSettings, FaceDetector

    detector = DetectorSettings()
    for item in filter(None, args.detector.split(",")):
        key, value = item.split("=")
        default = getattr(detector, key)
        if isinstance(default, bool):  # bool("False") is True
            parsed = value.lower() in ("1", "true", "yes")
        elif isinstance(default, tuple):  # e.g. retry_tile_heights=150+75
            parsed = tuple(type(default[0] if default else 0)(v) for v in value.split("+") if v)
        else:
            parsed = type(default)(value)
        detector = replace(detector, **{key: parsed})
    classifier = EmotionClassifier.load(args.weights)
    print(f"detector {detector}\n")
    print("| layout | settings | faces/frame | recall | false/frame | detect ms/frame (CPU) | frames/s | × real time |")
    print("|---|---|---|---|---|---|---|---|")
    for layout in args.layouts.split(","):
        spec = replace(PRESETS[layout], minutes=args.minutes)
        folder = Path(args.video_dir) / f"{layout}-{args.minutes}m"
        if not (folder / "truth_faces.csv").exists():
            make_gallery(folder, spec)
        truth = read_truth(folder / "truth_faces.csv")
        for name in args.settings.split(","):
            result = run(folder / "video.mp4", truth, spec.fps, analyses()[name], timed(FaceDetector)(detector),
                         classifier)
            print(f"| {layout} | {name} | {result['faces_per_frame']:.1f} | {result['recall']:.3f} | "
                  f"{result['false_per_frame']:.2f} | {result['detect_ms']:.0f} ({result['detect_cpu_ms']:.0f}) | "
                  f"{result['frames_per_s']:.1f} | "
                  f"{result['real_time']:.1f} |", flush=True)
            if args.json:
                with open(args.json, "a") as fh:
                    fh.write(json.dumps({"label": args.label, "layout": layout, "settings": name,
                                         "detector": args.detector, **result}) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
