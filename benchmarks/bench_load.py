"""Load benchmark: N live classes at once on this machine, each fed the frames of a video at the camera's pace
through `LiveSession.process`, from its own thread, as the browser camera's streamlit-webrtc callback does.

    python benchmarks/bench_load.py [--classes 6] [--video PATH] [--seconds 60] [--camera-fps 10]
                                    [--classify-per-second R]

Without --video a 25-face gallery (5x5 tiles, 720p, every camera on, 10 frames/s) is made once by
benchmarks/gallery.py in --work. Every class uses the dashboard's defaults (SessionSettings()) and the one
model and inference service of the process; nothing is stored. Prints one JSON line at the end:

- analysed_fps: frames the class analysed per second of the measured run (the first --warmup seconds left out);
- latency_p50_s / latency_p95_s: of the analysed frames, from the frame's arrival (its camera time) to its
  annotated frame being returned by `process` (the frames in between only get the last boxes drawn);
- dropped_frames: camera frames that arrived while the class's `process` was still busy with an earlier frame
  and were never shown to it (streamlit-webrtc's async processing, too, keeps only the newest frame);
- classify_seconds: how often each student's face was classified at the end (the setting's 2 s, more when
  the class slowed its classifications down to keep its pace, emotion/live.py);
- cpu_percent: CPU time of this process over the run, in % of one core (200 = both cores of a 2-core machine);
- rss_mb: the process's peak resident memory (model, inference service, decoders and every class);
and, beside them, each class's mean time per analysed frame by stage (stage_ms: classify includes the wait
for its batch), the CPU seconds per analysed frame (decoding every camera frame included: what sizes a
server), the machine's load average and the mean faces per inference batch.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import threading
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def default_video(work: Path) -> Path:
    """A one-minute 25-face gallery at 10 frames/s, made once."""
    from benchmarks.gallery import PRESETS, make_gallery

    folder = work / "gallery-5x5-720p-25faces-10fps"
    if not (folder / "truth_minutes.csv").exists():
        make_gallery(folder, PRESETS["bench"], camera_off=(), fps=10, minutes=1)
    return folder / "video.mp4"


def feed_class(live, video: Path, camera_fps: float, start: float, stop: float, warmup: float) -> dict:
    """Feed `video` (looped) into `live` at the camera's pace from `start` to `stop` (monotonic times)."""
    from emotion.video import read_frames

    latencies, dropped, analysed, k = [], 0, 0, 0
    while True:
        for _, frame in read_frames(video):
            arrival, k = start + k / camera_fps, k + 1
            if arrival >= stop:
                return {"analysed_fps": analysed / (stop - start - warmup),
                        "latency_p50_s": float(np.percentile(latencies, 50)) if latencies else None,
                        "latency_p95_s": float(np.percentile(latencies, 95)) if latencies else None,
                        "dropped_frames": dropped,
                        "classify_seconds": round(live.status().classify_seconds, 1),
                        "stage_ms": {k: round(v, 1) for k, v in live.session.pipeline.timer.per_frame_ms().items()}}
            now = time.monotonic()
            if now >= arrival + 1 / camera_fps:  # the next frame has arrived too: this one was never seen
                dropped += arrival >= start + warmup
                continue
            time.sleep(max(0.0, arrival - now))
            before = live.status().frames_analysed
            live.process(frame)
            if live.status().frames_analysed > before and arrival >= start + warmup:
                analysed += 1
                latencies.append(time.monotonic() - arrival)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--classes", type=int, default=6)
    parser.add_argument("--video", help="a class video (default: a generated 25-face gallery)")
    parser.add_argument("--seconds", type=float, default=60.0, help="length of the run, warm-up included")
    parser.add_argument("--warmup", type=float, default=5.0, help="seconds left out of the numbers")
    parser.add_argument("--camera-fps", type=float, default=10.0)
    parser.add_argument("--weights", help="model file (default: the active model)")
    parser.add_argument("--backend", default="auto")
    parser.add_argument("--work", default="/tmp/class-mood-bench-load")
    parser.add_argument("--classify-per-second", type=float, help="per-track classification rate (default: "
                                                                   "the dashboard's, SessionSettings)")
    args = parser.parse_args()
    from emotion.classifier import EmotionClassifier
    from emotion.inference import InferenceService
    from emotion.live import LiveSession
    from emotion.session import SessionSettings

    video = Path(args.video) if args.video else default_video(Path(args.work))
    classifier = EmotionClassifier.load(args.weights, backend=args.backend)
    classifier.predict([np.zeros((48, 48), np.uint8)] * 8)  # warm up outside the measurement
    settings = SessionSettings()
    if args.classify_per_second is not None:
        settings = replace(settings, classify_per_second=args.classify_per_second)
    classes = [LiveSession(classifier, None, settings, title=f"class {i + 1}", source_kind="camera")
               for i in range(args.classes)]
    results: list[dict | None] = [None] * args.classes
    start = time.monotonic() + 1.0
    stop = start + args.seconds

    def run(i: int) -> None:  # classes start a fraction of a frame apart, as real cameras do
        results[i] = feed_class(classes[i], video, args.camera_fps, start + i / (args.classes * args.camera_fps),
                                stop, args.warmup)

    threads = [threading.Thread(target=run, args=(i,), name=f"class-{i + 1}") for i in range(args.classes)]
    for thread in threads:
        thread.start()
    time.sleep(max(0.0, start + args.warmup - time.monotonic()))
    cpu_start, wall_start = sum(os.times()[:2]), time.monotonic()
    for thread in threads:
        thread.join()
    cpu_seconds, wall = sum(os.times()[:2]) - cpu_start, time.monotonic() - wall_start
    batches = InferenceService.shared(classifier).batches
    analysed = sum(r["analysed_fps"] for r in results) * wall
    print(json.dumps({"classes": results, "cpu_percent": round(100 * cpu_seconds / wall, 1),
                      "rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
                      "cpu_seconds_per_analysed_frame": round(cpu_seconds / max(analysed, 1), 3),
                      "video": str(video), "backend": classifier.backend, "cpus": os.cpu_count(),
                      "load_average_1m": round(os.getloadavg()[0], 2),
                      "faces_per_batch": round(sum(k * n for k, n in batches.items()) / max(sum(batches.values()), 1),
                                               1)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
