"""Which aggregation method tracks a class's true mood best: every method over several bench videos.

    python benchmarks/bench_mood.py [--videos 5] [--minutes 4] [--work /tmp/class-mood-bench-mood]

Held out: FER2013 `val` is split in two halves by file name. The calibration, the training prior
and the confusion matrix are fitted on half A; the bench videos are made from half B's faces, so
`corrected` and `em` are not tuned on the faces they are scored on (the shipped model's metadata
is fitted on all of `val`).
Videos come from benchmarks/gallery.py (VIDEOS: layouts, mood scripts, seeds; "bench" is
classroom-bench's own layout and script). The pipeline runs once per video with the default
analysis settings; its faces (boxes, track ids, uncalibrated probabilities) are
cached in the work folder, and every method is scored on the same faces.
Prints per method x video the mean per-minute TVD and dominant-right %, the coverage of the
nominal 90 % intervals, and per-student label accuracy against truth_tiles.csv, raw and smoothed.
"""
from __future__ import annotations

import argparse
import contextlib
import importlib.util
import io
import os
import sys
import zlib
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parent.parent
BENCH = REPO.parent / "shared" / "classroom-bench"
VAL_FACES = REPO.parent / "shared" / "datasets" / "fer2013" / "val"
sys.path.insert(0, str(REPO))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from emotion.faces import Faces  # noqa: E402
from emotion.labels import EMOTIONS  # noqa: E402

STARTED = datetime(2024, 1, 1, tzinfo=timezone.utc)
# FER2013 train class counts: the classifier was trained on them with 1/sqrt(frequency) class weights
TRAIN_COUNTS = {"angry": 3995, "disgust": 436, "fear": 4097, "happy": 7215, "neutral": 4965, "sad": 4830,
                "surprise": 3171}
SMOOTHING_SECONDS = (0, 1, 2, 3, 5)


def in_half_a(name: str) -> bool:
    """A stable half of `val` by file name: fitted on (A) or drawn into bench videos (B)."""
    return zlib.crc32(Path(name).name.encode()) % 2 == 0


def half_b_faces(root: Path) -> Path:
    """An <emotion>/*.jpg folder of symbolic links to half B of `val`, the faces the bench videos show."""
    for emotion in EMOTIONS:
        folder = root / emotion
        folder.mkdir(parents=True, exist_ok=True)
        for face in sorted((VAL_FACES / emotion).iterdir()):
            if not in_half_a(face.name) and not (folder / face.name).exists():
                (folder / face.name).symlink_to(face)
    return root


# (preset, mood script, seed): different layouts, scripts and faces
VIDEOS = [("bench", "bench", 1), ("4x4-720p", "tense", 2), ("join-leave", "calm", 3), ("classroom", "swing", 4),
          ("3x3-480p", "bench", 5), ("6x6-1080p", "tense", 6), ("7x7-1080p", "swing", 7), ("bench", "tense", 8)]


def make_videos(work: Path, count: int, minutes: int) -> list[Path]:
    """The first `count` of VIDEOS (folders with video.mp4 and truth CSVs), made once by benchmarks/gallery.py."""
    from benchmarks.gallery import PRESETS, make_gallery

    faces = half_b_faces(work / "faces_b")
    folders = []
    for preset, script, seed in VIDEOS[:count]:
        folder = work / f"{preset}-{script}-{seed}-{minutes}min"
        if not (folder / "truth_minutes.csv").exists():
            make_gallery(folder, PRESETS[preset], faces, script=script, seed=seed, minutes=minutes)
        folders.append(folder)
    return folders


def model_key(classifier) -> str:
    """The model's file name and when it was trained: a model shipped under the same name gets new caches."""
    return f"{classifier.name}-{zlib.crc32(str(classifier.metadata.get('created', '')).encode()):08x}"


def cached_faces(folder: Path, classifier) -> list[Faces]:
    """Every analysed frame's faces with uncalibrated probabilities: one pipeline pass per video at the default
    settings but with every face classified in every frame (benchmarks/bench_track_rate.py replays them at
    other per-track rates; `at_rate` here at the default one), then cached."""
    from emotion.detect import DetectorSettings

    cache = folder / f"faces-{model_key(classifier)}-{zlib.crc32(repr(DetectorSettings()).encode()):08x}.npz"
    if not cache.exists():
        from emotion.analyze import analyze_video
        from emotion.session import SessionSettings

        frames = []
        analyze_video(folder / "video.mp4", classifier, replace(SessionSettings(), classify_per_second=0),
                      on_frame=lambda frame, faces: frames.append(faces))
        np.savez(cache, timestamps=[f.timestamp for f in frames], counts=[len(f) for f in frames],
                 boxes=np.concatenate([f.boxes for f in frames]),
                 track_ids=np.concatenate([f.track_ids for f in frames]),
                 probabilities=np.concatenate([f.probabilities for f in frames]))
    data = np.load(cache)
    splits = np.cumsum(data["counts"])[:-1]
    return [Faces(boxes=b, probabilities=p, track_ids=i, timestamp=float(t))
            for t, b, p, i in zip(data["timestamps"], np.split(data["boxes"], splits),
                                  np.split(data["probabilities"], splits), np.split(data["track_ids"], splits))]


def at_rate(frames: list[Faces], per_second: float) -> tuple[list[Faces], int]:
    """The frames as the pipeline would classify them at `per_second` per track (0: every frame): the frames in
    between reuse their track's last probabilities; and how many faces were classified."""
    from emotion.classify import TrackRate

    rate = TrackRate(per_second)
    replayed, classified = [], 0
    for faces in frames:
        due = rate.due(faces)
        replayed.append(rate.fill(faces, due, faces.probabilities[due]))
        classified += int(due.sum())
    return replayed, classified


def fit_half_a(classifier, work: Path) -> dict:
    """Calibration, confusion matrix and candidate training priors from half A of `val` (probabilities cached)."""
    from emotion.calibration import calibrate
    from training.calibration import expected_calibration_error, fit_calibration
    from training.data import load_split
    from training.metrics import confusion_matrix

    cache = work / f"val-{model_key(classifier)}.npz"
    if not cache.exists():
        faces = load_split(VAL_FACES.parent, "val")
        np.savez(cache, probabilities=classifier.predict(faces.images, batch_size=256), labels=faces.labels,
                 names=np.array(faces.names))
    val = np.load(cache)
    half_a = np.array([in_half_a(n) for n in val["names"]])
    p, labels = val["probabilities"].astype(np.float64), val["labels"]
    block = fit_calibration(p[half_a], labels[half_a])
    held_out = p[~half_a], labels[~half_a]
    counts = np.array([TRAIN_COUNTS[e] for e in EMOTIONS], dtype=np.float64)
    confusion = confusion_matrix(labels[half_a], p[half_a].argmax(axis=1))
    return {"calibration": block, "confusion": confusion,
            "ece_b": (expected_calibration_error(*held_out),
                      expected_calibration_error(calibrate(held_out[0], block), held_out[1])),
            # what MoodAggregator.for_model reads, with the blocks fitted on half A: the default's own path
            "metadata": {"validation": {"confusion_matrix": confusion.tolist()}, "calibration": block,
                         "training_prior": classifier.metadata.get("training_prior")},
            "priors": {"implied by the calibration (half A)": np.array(block["prior"]), "train counts": counts,
                       "val frequencies": np.bincount(labels[half_a], minlength=len(EMOTIONS)).astype(float)}}


def truth_labels(folder: Path, frames: list[Faces]) -> list[np.ndarray]:
    """Per frame, the true emotion index of each face (-1 where the box is on no shown face's tile)."""
    tiles = pd.read_csv(folder / "truth_tiles.csv")
    codes = tiles["emotion"].map(EMOTIONS.index).to_numpy()
    start, end = tiles["start_s"].to_numpy(), tiles["end_s"].to_numpy()
    x0, y0 = tiles["x"].to_numpy(), tiles["y"].to_numpy()
    x1, y1 = x0 + tiles["w"].to_numpy(), y0 + tiles["h"].to_numpy()
    result = []
    for faces in frames:
        cx = (faces.boxes[:, 0] + faces.boxes[:, 2] / 2)[:, None]
        cy = (faces.boxes[:, 1] + faces.boxes[:, 3] / 2)[:, None]
        now = (start <= faces.timestamp) & (faces.timestamp < end)
        inside = now[None] & (x0 <= cx) & (cx < x1) & (y0 <= cy) & (cy < y1)
        result.append(np.where(inside.any(axis=1), codes[inside.argmax(axis=1)], -1))
    return result


def score_minutes(folder: Path, minutes, scorer) -> dict:
    """The bench's own score.py on the session CSV of `minutes`."""
    from emotion.session_csv import minute_rows, to_csv_bytes

    csv_path = folder / "pred.csv"
    csv_path.write_bytes(to_csv_bytes(minute_rows("bench", STARTED, minutes)))
    with contextlib.redirect_stdout(io.StringIO()):
        return scorer.main(str(folder / "truth_minutes.csv"), str(csv_path))


def coverage(folder: Path, minutes) -> tuple[int, int]:
    """(cells whose true share lies in the interval, cells) over minute x emotion."""
    truth = pd.read_csv(folder / "truth_minutes.csv").set_index("minute")
    hits = cells = 0
    for m in minutes:
        if m.minute in truth.index and m.low:
            for e in EMOTIONS:
                hits += bool(m.low[e] <= truth.loc[m.minute, e] <= m.high[e])
                cells += 1
    return hits, cells


def label_quality(frames: list[Faces], truth: list[np.ndarray], seconds: float) -> tuple[float, float]:
    """Of the faces on a shown face: the share whose label is right, and how often a student's label
    changes (per student-minute); labels are each frame's own top emotion (seconds=0) or the track's
    smoothed one."""
    from emotion.aggregate import TrackSmoother

    smoother = TrackSmoother(seconds) if seconds else None
    right = total = changes = 0
    last: dict[int, int] = {}
    for faces, labels in zip(frames, truth):
        if smoother:
            smoother.update(faces)
            faces = smoother.smoothed(faces)
        shown = labels >= 0
        top = faces.probabilities.argmax(axis=1)
        right += int((top[shown] == labels[shown]).sum())
        total += int(shown.sum())
        for track, label in zip(faces.track_ids[shown].tolist(), top[shown].tolist()):
            changes += last.get(track, label) != label
            last[track] = label
    minutes = (frames[-1].timestamp - frames[0].timestamp) / 60 if frames else 1
    students = total / max(len(frames), 1)  # faces per frame
    return right / max(total, 1), changes / max(students * minutes, 1e-9)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--videos", type=int, default=len(VIDEOS))
    parser.add_argument("--minutes", type=int, default=4)
    parser.add_argument("--work", default="/tmp/class-mood-bench-mood", help="videos and cached faces (reused)")
    parser.add_argument("--weights", help="model file (default: the active model)")
    args = parser.parse_args()
    if not BENCH.is_dir() or not VAL_FACES.is_dir():
        print(f"skipped: {BENCH} or {VAL_FACES} is missing (the bench lives beside the repository)")
        return 0
    from emotion.aggregate import DEFAULT_METHOD, METHODS, SMOOTH_SECONDS, MoodAggregator
    from emotion.calibration import calibrate
    from emotion.classifier import EmotionClassifier
    from emotion.session import SessionSettings

    spec = importlib.util.spec_from_file_location("score", BENCH / "score.py")
    scorer = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(scorer)
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    classifier = EmotionClassifier.load(args.weights, calibrated=False)
    fitted = fit_half_a(classifier, work)
    block = fitted["calibration"]
    print(f"model {classifier.name}; calibration fitted on val half A ({block['images']} faces): temperature "
          f"{block['temperature']}, ECE {block['ece_before']:.4f} -> {block['ece_after']:.4f}; on held-out half B "
          f"{fitted['ece_b'][0]:.4f} -> {fitted['ece_b'][1]:.4f}")
    variants = {m: (m, fitted["metadata"]) for m in METHODS}
    variants.update({f"em, prior: {name}": ("em", {**fitted["metadata"], "training_prior": prior.tolist()})
                     for name, prior in fitted["priors"].items()})
    results, hits, accuracy = [], {}, []
    for folder in make_videos(work, args.videos, args.minutes):
        video = folder.name.removesuffix(f"-{args.minutes}min")
        frames = [f.with_probabilities(calibrate(f.probabilities, block)) for f in cached_faces(folder, classifier)]
        frames, _ = at_rate(frames, SessionSettings().classify_per_second)
        for name, (method, metadata) in variants.items():
            aggregator = MoodAggregator.for_model(metadata, 60, method)
            for faces in frames:
                aggregator.add(faces)
            minutes = aggregator.minutes()
            scored = score_minutes(folder, minutes, scorer)
            results.append({"video": video, "method": name, "tvd": scored["mean_tvd"],
                            "dominant": 100 * scored["dominant_agree"], "recall": scored["mean_recall"]})
            hits[name] = tuple(a + b for a, b in zip(hits.get(name, (0, 0)), coverage(folder, minutes)))
        truth = truth_labels(folder, frames)
        for s in SMOOTHING_SECONDS:
            right, changes = label_quality(frames, truth, s)
            accuracy.append({"video": video, "smoothing": f"{s} s" if s else "none", "right %": 100 * right,
                             "changes per student-minute": changes})
        print(f"{video}: done", flush=True)
    table = pd.DataFrame(results)
    pd.set_option("display.width", 200)
    for value, title in (("tvd", "mean per-minute TVD from the true mix (lower is better)"),
                         ("dominant", "dominant emotion right, % of minutes")):
        pivot = table.pivot(index="method", columns="video", values=value).loc[list(variants)]
        pivot["mean"], pivot["worst"] = pivot.mean(axis=1), (pivot.max if value == "tvd" else pivot.min)(axis=1)
        print(f"\n{title}\n{pivot.round(3 if value == 'tvd' else 0).to_string()}")
    recall = table.groupby("video", sort=False)["recall"].first()
    print("\nface recall per video: " + ", ".join(f"{video} {r:.2f}" for video, r in recall.items()))
    print("\nnominal 90 % intervals (bootstrap over tracks) holding the true share, of minute x emotion cells:")
    for name, (hit, cells) in hits.items():
        print(f"  {name:32} {100 * hit / max(cells, 1):5.1f} % of {cells}" + ("  (default)" * (name == DEFAULT_METHOD)))
    print(f"\nper-student labels by smoothing time constant (default {SMOOTH_SECONDS} s): % of faces right, "
          "label changes per student-minute (the truth changes at most 6 times a minute)")
    labels = pd.DataFrame(accuracy).pivot(index="video", columns="smoothing")
    labels.loc["mean"] = labels.mean()
    print(labels.round(1).to_string())
    return 0


if __name__ == "__main__":
    sys.exit(main())
