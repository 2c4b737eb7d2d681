"""How often each student's face must be classified: mood TVD and per-student label accuracy on the six
bench videos of benchmarks/bench_mood.py when each track is classified at most R times a second and the
frames in between reuse its last probabilities.

    python benchmarks/bench_track_rate.py [--rates 0,2,1,0.5] [--work /tmp/class-mood-bench-mood]

Replays bench_mood's cached faces (the pipeline's boxes, tracks and probabilities, every face classified
in every frame, made by bench_mood.py first) through emotion.classify.TrackRate: detection and tracking do
not depend on classification, so reusing a track's cached probabilities is exactly what the pipeline would do.
"""
from __future__ import annotations

import argparse
import importlib.util
import sys
from pathlib import Path

import pandas as pd

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from benchmarks.bench_mood import (BENCH, VIDEOS, at_rate, cached_faces, fit_half_a,  # noqa: E402
                                   label_quality, make_videos, score_minutes, truth_labels)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rates", default="0,2,1,0.67,0.5", help="classifications per track per second (0: all)")
    parser.add_argument("--work", default="/tmp/class-mood-bench-mood")
    parser.add_argument("--minutes", type=int, default=4)
    args = parser.parse_args()
    from emotion.aggregate import DEFAULT_METHOD, SMOOTH_SECONDS, MoodAggregator
    from emotion.calibration import calibrate
    from emotion.classifier import EmotionClassifier

    spec = importlib.util.spec_from_file_location("score", BENCH / "score.py")
    scorer = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(scorer)
    classifier = EmotionClassifier.load(calibrated=False)
    fitted = fit_half_a(classifier, Path(args.work))
    rows = []
    for folder in make_videos(Path(args.work), len(VIDEOS), args.minutes):
        cached = [f.with_probabilities(calibrate(f.probabilities, fitted["calibration"]))
                  for f in cached_faces(folder, classifier)]
        truth = truth_labels(folder, cached)
        for per_second in map(float, args.rates.split(",")):
            frames, classified = at_rate(cached, per_second)
            aggregator = MoodAggregator.for_model(fitted["metadata"], 60, DEFAULT_METHOD)
            for faces in frames:
                aggregator.add(faces)
            right, _ = label_quality(frames, truth, SMOOTH_SECONDS)
            rows.append({"rate": per_second or "every frame", "video": folder.name,
                         "tvd": score_minutes(folder, aggregator.minutes(), scorer)["mean_tvd"],
                         "right %": 100 * right, "classified %": 100 * classified / max(sum(map(len, frames)), 1)})
    table = pd.DataFrame(rows)
    print(table.pivot(index="rate", columns="video", values="tvd").assign(
        mean=lambda t: t.mean(axis=1)).round(3).to_string())
    print(table.groupby("rate", sort=False)[["tvd", "right %", "classified %"]].mean().round(4).to_string())
    return 0


if __name__ == "__main__":
    sys.exit(main())
