"""End-to-end speed of the frame pipeline on a 1280x720 gallery with 25 tiles (21-25 faces):
frames/s, faces/s and per-stage timings (decode, detect, track, classify, aggregate, draw).

    python benchmarks/bench_pipeline.py [--weights PATH] [--video PATH] [--frames 60]

Uses the classroom-bench video when it exists (made by bench_classroom.py), else a gallery of
drawn faces encoded here, so decode is measured too.
"""
from __future__ import annotations

import argparse
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from emotion.detect import DetectorSettings  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--weights", help="model file (default: the active model)")
    parser.add_argument("--video", default="/tmp/class-mood-bench/classroom.mp4")
    parser.add_argument("--frames", type=int, default=60, help="frames to time")
    parser.add_argument("--detect-width", type=int, default=DetectorSettings().max_width,
                        help="a frame that is not a gallery is shrunk to this width for detection")
    args = parser.parse_args()

    from emotion.aggregate import MoodAggregator
    from emotion.annotate import annotate
    from emotion.classifier import EmotionClassifier
    from emotion.detect import FaceDetector
    from emotion.pipeline import FramePipeline
    from emotion.track import Tracker
    from emotion.video import read_frames

    video = Path(args.video)
    if not video.exists():
        from tests.synthetic import gallery_frame, write_video

        emotions = ["happy", "sad", "neutral", "surprise", "angry", "fear", "disgust"] * 3 + [None] * 4
        frames = [gallery_frame(emotions, seed=i % 4)[0] for i in range(args.frames)]
        video = write_video(Path(tempfile.mkdtemp()) / "gallery.mp4", frames, fps=4)
    classifier = EmotionClassifier.load(args.weights)
    pipeline = FramePipeline(classifier, MoodAggregator(60), tracker=Tracker(coast_seconds=2.0),
                             detector=FaceDetector(DetectorSettings(max_width=args.detect_width)))
    decode = draw = 0.0
    frames = read_frames(video, fps=4)
    seconds, frame = next(frames)
    pipeline(frame, seconds)  # warm up the model
    pipeline.timer.reset()
    started = time.perf_counter()
    for _ in range(args.frames):
        t0 = time.perf_counter()
        try:
            seconds, frame = next(frames)
        except StopIteration:
            break
        t1 = time.perf_counter()
        faces = pipeline(frame, seconds)
        t2 = time.perf_counter()
        annotate(frame, faces)
        decode, draw = decode + t1 - t0, draw + time.perf_counter() - t2
    elapsed = time.perf_counter() - started
    timer = pipeline.timer
    stages = {"decode": 1000 * decode / timer.frames, **timer.per_frame_ms(), "draw": 1000 * draw / timer.frames}
    print(f"{video.name}: {timer.frames} frames of {frame.shape[1]}x{frame.shape[0]}, "
          f"{timer.faces / timer.frames:.1f} faces per frame, detection at {args.detect_width} px")
    print(f"{timer.frames / elapsed:.2f} frames/s, {timer.faces / elapsed:.0f} faces/s end to end "
          f"({4 * elapsed / timer.frames:.2f} s per second of video at 4 fps: "
          f"{timer.frames / elapsed / 4:.2f}x real time)")
    print("per frame: " + ", ".join(f"{k} {v:.0f} ms" for k, v in stages.items()))
    print(f"peak memory (RSS) of this process, model loaded: "
          f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
