"""Classifier throughput (faces/s at batch 1, 8, 32) per backend (ONNX Runtime float32 and int8, TensorFlow)
and, when FER2013 is beside the repository, the evaluate numbers on `val` with and without flip averaging,
and the int8 model's accuracy against float32.

    python benchmarks/bench_classifier.py [--weights PATH] [--data ../shared/datasets/fer2013]
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def faces_per_second(classifier, batch: int, seconds: float = 8.0) -> float:
    crops = list(np.random.default_rng(0).integers(0, 255, (batch, 96, 96), dtype=np.uint8))
    classifier.predict(crops)  # trace and warm up
    done, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        classifier.predict(crops)
        done += batch
    return done / (time.perf_counter() - started)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--weights", help="model file (default: the active model)")
    parser.add_argument("--data", default=str(REPO.parent / "shared" / "datasets" / "fer2013"))
    args = parser.parse_args()

    from emotion.classifier import EmotionClassifier
    from training.data import load_split
    from training.evaluate import evaluate

    classifier = EmotionClassifier.load(args.weights)
    print(f"model {classifier.name}: input {classifier.input_size} px, {classifier.model.count_params():,} parameters, "
          f"{Path(classifier.path).stat().st_size / 1e6:.1f} MB on disk")
    backends = {classifier.backend: classifier}
    for backend in ("onnx-int8", "tensorflow"):
        if backend not in backends:
            backends[backend] = EmotionClassifier.load(classifier.path, backend=backend)
    for batch in (1, 8, 32):
        print(f"batch {batch:2d}: " + ", ".join(f"{name} {faces_per_second(c, batch):6.1f}"
                                               for name, c in backends.items()) + " faces/s (preprocessing included)")
    if Path(args.data).exists():
        val = load_split(args.data, "val")
        plain, _ = evaluate(classifier, val)
        flipped, _ = evaluate(classifier, val, tta=True)
        print(f"val ({len(val)} faces): accuracy {plain['accuracy']:.4f}, macro F1 {plain['macro_f1']:.4f}; "
              f"with flip averaging {flipped['accuracy']:.4f} ({flipped['accuracy'] - plain['accuracy']:+.4f})")
        print("per class F1: " + ", ".join(f"{k} {v['f1']:.2f}" for k, v in plain["per_class"].items()))
        for name, other in backends.items():
            if name not in (classifier.backend, "tensorflow"):
                scores, _ = evaluate(other, val)
                print(f"val with {name}: accuracy {scores['accuracy']:.4f} "
                      f"({100 * (scores['accuracy'] - plain['accuracy']):+.2f} points against {classifier.backend})")
    else:
        print(f"skipped accuracy: {args.data} not found")
    return 0


if __name__ == "__main__":
    sys.exit(main())
