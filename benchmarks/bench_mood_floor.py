"""How close the class mood can get with this classifier at all: EM on faces drawn straight from `val`.

    python benchmarks/bench_mood_floor.py [--students 8,14,21,32,42] [--minutes 300] [--scripts bench,tense]

A perfect pipeline (every face found, every expression seen once, no tracking or timing error) still
mistakes about one face in three. This draws, per simulated minute, one of the mood scripts' mixes, then
6 expressions per student (an expression lasts 10 s on the bench videos) from held-out half B of `val`, their
probabilities calibrated on half A (as benchmarks/bench_mood.py does), estimates the mix with the default
method and the model's training prior, and prints the mean and 90th-percentile TVD from the drawn faces'
own mix. What bench_mood.py measures on a video of that size and script cannot be much below this.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from benchmarks.bench_mood import BENCH, VAL_FACES, fit_half_a, in_half_a, model_key  # noqa: E402
from benchmarks.gallery import EMOTIONS, SCRIPTS  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--students", default="8,14,21,32,42")
    parser.add_argument("--minutes", type=int, default=300, help="simulated minutes per row")
    parser.add_argument("--scripts", default="bench,tense,calm,swing", help=f"of {', '.join(SCRIPTS)}")
    parser.add_argument("--work", default="/tmp/class-mood-bench-mood", help="bench_mood.py's cache (reused)")
    args = parser.parse_args()
    if not BENCH.is_dir() or not VAL_FACES.is_dir():
        print(f"skipped: {BENCH} or {VAL_FACES} is missing (the bench lives beside the repository)")
        return 0
    from emotion.aggregate import MoodAggregator
    from emotion.calibration import calibrate
    from emotion.quantify import em_prior_shift
    from emotion.classifier import EmotionClassifier

    classifier = EmotionClassifier.load(calibrated=False)
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    fitted = fit_half_a(classifier, work)
    val = np.load(work / f"val-{model_key(classifier)}.npz")
    half_b = ~np.array([in_half_a(n) for n in val["names"]])
    probabilities = calibrate(val["probabilities"][half_b].astype(np.float64), fitted["calibration"])
    labels = val["labels"][half_b]
    by_label = [np.flatnonzero(labels == k) for k in range(len(EMOTIONS))]
    estimator = MoodAggregator.for_model(fitted["metadata"], 60)
    mixes = [np.array([mix.get(e, 0.0) for e in EMOTIONS]) for s in args.scripts.split(",") for mix in SCRIPTS[s]]
    rng = np.random.default_rng(0)
    print(f"model {classifier.name}, em with the model's training prior, scripts {args.scripts}, "
          f"{args.minutes} minutes each")
    for students in map(int, args.students.split(",")):
        faces, tvd = students * 6, []
        for _ in range(args.minutes):
            drawn = rng.choice(len(EMOTIONS), faces, p=mixes[rng.integers(len(mixes))])
            picked = np.array([rng.choice(by_label[k]) for k in drawn])
            estimate = em_prior_shift(probabilities[picked], np.ones(faces), estimator.prior)
            tvd.append(0.5 * np.abs(estimate - np.bincount(drawn, minlength=len(EMOTIONS)) / faces).sum())
        print(f"{students:3d} students ({faces} faces a minute): mean TVD {np.mean(tvd):.3f}, "
              f"90th percentile {np.quantile(tvd, 0.9):.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
