"""Class-mood fidelity on ../shared/classroom-bench: a synthetic gallery video of FER2013 `val` faces
with known per-minute mood, analysed like `python -m emotion analyze`, scored by the bench's score.py.

    python benchmarks/bench_classroom.py [--weights PATH] [--video-dir /tmp/class] [--detect-width 960]

Prints, per aggregation method (top / mean / corrected): mean total-variation distance to the true
mix per minute, face recall, dominant emotion right, and processing speed against real time.
One pass of the pipeline feeds all three aggregators, so the methods see the same faces.
Note: `corrected` undoes the model's confusions measured on `val`, the split the bench's faces come
from, so its gain here is an upper bound.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
BENCH = REPO.parent / "shared" / "classroom-bench"
VAL_FACES = REPO.parent / "shared" / "datasets" / "fer2013" / "val"
sys.path.insert(0, str(REPO))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from emotion.detect import DetectorSettings  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--weights", help="model file (default: the active model)")
    parser.add_argument("--video-dir", default="/tmp/class-mood-bench", help="where the bench video is made (reused)")
    parser.add_argument("--fps", type=float, help="frames per second of video analysed (default: the CLI's)")
    parser.add_argument("--detect-width", type=int, default=DetectorSettings().max_width,
                        help="a frame that is not a gallery is shrunk to this width for detection")
    parser.add_argument("--coast-seconds", type=float, default=2.0)
    parser.add_argument("--detect-every", type=int, help="run the detector on every Nth analysed frame "
                                                           "(default: the CLI's)")
    args = parser.parse_args()
    if not BENCH.is_dir() or not VAL_FACES.is_dir():
        print(f"skipped: {BENCH} or {VAL_FACES} is missing (the bench lives beside the repository)")
        return 0

    from emotion.aggregate import METHODS, MoodAggregator
    from emotion.analyze import analyze_video
    from emotion.classifier import EmotionClassifier
    from emotion.session import SessionSettings
    from emotion.session_csv import minute_rows, to_csv_bytes

    out = Path(args.video_dir)
    video = out / "classroom.mp4"
    if not video.exists():
        subprocess.run([sys.executable, str(BENCH / "make_video.py"), str(VAL_FACES), str(out)], check=True)
    classifier = EmotionClassifier.load(args.weights)
    confusion = classifier.metadata.get("validation", {}).get("confusion_matrix")
    methods = [m for m in METHODS if m != "corrected" or confusion is not None]
    extra = {m: MoodAggregator(60, m, confusion) for m in methods}
    defaults = SessionSettings()
    args.fps = args.fps or defaults.analysis_fps
    args.detect_every = args.detect_every or defaults.detect_every
    settings = SessionSettings(analysis_fps=args.fps, coast_seconds=args.coast_seconds, detect_every=args.detect_every,
                                detector=DetectorSettings(max_width=args.detect_width))
    started = time.perf_counter()
    pipeline = analyze_video(video, classifier, settings,
                             on_frame=lambda frame, faces: [a.add(faces) for a in extra.values()]).session.pipeline
    elapsed = time.perf_counter() - started
    duration = pipeline.aggregator.minutes()[-1].minute * 60 + 60
    print(f"model {classifier.name} (val accuracy {classifier.val_accuracy}); {pipeline.timer.frames} frames "
          f"at {args.fps} fps, detection at {args.detect_width} px wide on every {args.detect_every}. frame")
    print(f"processed {duration} s of video in {elapsed:.1f} s: {duration / elapsed:.2f}x real time; "
          "per frame " + ", ".join(f"{k} {v:.0f} ms" for k, v in pipeline.timer.per_frame_ms().items()))
    stamp = datetime.now(timezone.utc)
    for method, aggregator in extra.items():
        csv_path = out / f"pred_{method}.csv"
        csv_path.write_bytes(to_csv_bytes(minute_rows("bench", stamp, aggregator.minutes())))
        scored = subprocess.run([sys.executable, str(BENCH / "score.py"), str(out / "truth_minutes.csv"),
                                 str(csv_path)],
                                capture_output=True, text=True, check=True)
        result = json.loads(scored.stdout.splitlines()[0])
        print(f"{method:9} mean TVD {result['mean_tvd']:.3f}  recall {result['mean_recall']:.3f}  "
              f"dominant right {result['dominant_agree']:.2f}  per minute TVD "
              + " ".join(f"{r['tvd']:.2f}" for r in result["minutes"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
