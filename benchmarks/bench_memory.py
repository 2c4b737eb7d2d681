"""Memory over a long recorded class: peak RSS after 5 and after 30 minutes of video must stay flat.

    python benchmarks/bench_memory.py [--minutes 30] [--fps 1] [--weights PATH]

Makes a long 1280x720 gallery video of drawn faces (moods change every 20 s), analyses it with the
same code as `python -m emotion analyze`, and prints the process's peak RSS at each 5 minutes of video.
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
EMOTIONS = ["happy", "sad", "neutral", "surprise", "angry", "fear", "disgust"]


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=int, default=30)
    parser.add_argument("--fps", type=float, default=1.0, help="frames per second in the made video")
    parser.add_argument("--weights", help="model file (default: the active model)")
    args = parser.parse_args()

    from emotion.analyze import analyze_video
    from emotion.session import SessionSettings
    from emotion.classifier import EmotionClassifier
    from tests.synthetic import gallery_frame, write_video

    galleries = [gallery_frame([EMOTIONS[(i + k) % 7] for k in range(21)] + [None] * 4, seed=i)[0] for i in range(7)]
    frames = (galleries[int(index / args.fps // 20) % len(galleries)]  # moods change every 20 s
              for index in range(int(args.minutes * 60 * args.fps)))
    video = write_video(Path(tempfile.mkdtemp()) / "long-class.mp4", frames, fps=int(args.fps))
    print(f"made {video.name}: {args.minutes} min at {args.fps} fps, {video.stat().st_size / 1e6:.1f} MB")

    classifier = EmotionClassifier.load(args.weights)
    marks = {}
    started = time.perf_counter()

    def on_frame(frame, faces):
        minute = int(faces.timestamp // 60) + 1
        if minute % 5 == 0 and minute not in marks:
            marks[minute] = peak_rss_mb()
            print(f"  after {minute - 1:2d}-{minute} min of video: peak RSS {marks[minute]:.0f} MB "
                  f"({time.perf_counter() - started:.0f} s)", flush=True)

    session = analyze_video(video, classifier, SessionSettings(analysis_fps=args.fps), on_frame=on_frame).session
    print(f"{session.pipeline.timer.frames} frames, {len(session.aggregator.minutes())} minutes; peak RSS at the end "
          f"{peak_rss_mb():.0f} MB; growth from minute 5 to the end {peak_rss_mb() - min(marks.values()):.0f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
