"""Evaluate an emotion model on a FER2013 split (either form).

    python -m training.evaluate ../shared/datasets/fer2013 --split val [--weights PATH] [--json] [--tta]

Prints accuracy, per-class precision/recall/F1 and the confusion matrix; with
--json one JSON object whose `accuracy` is a fraction in [0, 1]. --tta averages
each face with its mirror image and reports the gain over the plain prediction.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from emotion.preprocess import VIEW_SETS  # noqa: E402


def predict_faces(classifier, images: np.ndarray, *, tta: bool = False, batch_size: int = 256) -> np.ndarray:
    """Probabilities for 48x48 faces through the inference path; with `tta`, averaged with the mirror image."""
    probabilities = classifier.predict(images, batch_size=batch_size)
    if tta:
        probabilities = (probabilities + classifier.predict(images[:, :, ::-1], batch_size=batch_size)) / 2
    return probabilities


def confident_mistakes(labels: np.ndarray, probabilities: np.ndarray, count: int = 16) -> list[int]:
    """Indices of the wrongly classified faces the model was most sure about."""
    predicted = probabilities.argmax(axis=1)
    wrong = np.flatnonzero(predicted != labels)
    return wrong[np.argsort(-probabilities[wrong, predicted[wrong]])][:count].tolist()


def evaluate(classifier, faces, *, tta: bool = False) -> tuple[dict, np.ndarray]:
    from training.metrics import classification_report

    probabilities = predict_faces(classifier, faces.images, tta=tta)
    report = classification_report(faces.labels, probabilities)
    report.update(model=classifier.name, data=faces.source, tta=tta, views=classifier.views)
    return report, probabilities


@dataclass
class Mistake:
    """A validation face the model got wrong, for the gallery of confident mistakes."""

    image: np.ndarray  # 48x48 gray
    name: str
    true: str
    predicted: str
    confidence: float


def evaluate_model(model_path: str | Path, data: str | Path, split: str = "val", *,
                   mistakes: int = 16, tta: bool = False) -> tuple[dict, list[Mistake]]:
    """The report of `evaluate` plus the faces the model was most confidently wrong about.

    Raises DatasetError or ModelFileError with a clear message; unreadable images are left out.
    """
    from emotion.classifier import EmotionClassifier
    from emotion.labels import EMOTIONS
    from training.data import load_split

    faces = load_split(data, split, skip_unreadable=True)
    report, probabilities = evaluate(EmotionClassifier.load(model_path), faces, tta=tta)
    wrong = [Mistake(faces.images[i], faces.names[i], EMOTIONS[faces.labels[i]],
                     EMOTIONS[int(probabilities[i].argmax())], float(probabilities[i].max()))
             for i in confident_mistakes(faces.labels, probabilities, mistakes)]
    return report, wrong


def format_report(report: dict) -> str:
    lines = [f"model {report['model']} on {report['data']}: {report['images']} images",
             f"accuracy {report['accuracy']:.4f}   macro F1 {report['macro_f1']:.4f}", "",
             f"{'emotion':10} {'precision':>9} {'recall':>7} {'f1':>6} {'support':>8}"]
    for name, c in report["per_class"].items():
        lines.append(f"{name:10} {c['precision']:9.3f} {c['recall']:7.3f} {c['f1']:6.3f} {c['support']:8d}")
    labels = report["labels"]
    lines += ["", "confusion (rows true, columns predicted)", " " * 10 + "".join(f"{n[:7]:>8}" for n in labels)]
    for name, row in zip(labels, report["confusion_matrix"]):
        lines.append(f"{name:10}" + "".join(f"{v:8d}" for v in row))
    if "tta_gain" in report:
        lines.append(f"\ntest-time flip averaging: accuracy {report['accuracy']:.4f} vs {report['plain_accuracy']:.4f} "
                     f"without ({report['tta_gain']:+.4f})")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m training.evaluate", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("data", help="fer2013.csv, a folder with split folders, or one split's emotion folders")
    parser.add_argument("--split", default="val", help="split to evaluate (val/PublicTest, test/PrivateTest, train)")
    parser.add_argument("--weights", help="model file (default: the active model)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--tta", action="store_true", help="average with mirrored faces and report the gain")
    parser.add_argument("--views", choices=VIEW_SETS,
                        help="test-time views to average over (default: the model's own, as the pipeline uses it)")
    parser.add_argument("--skip-unreadable", action="store_true")
    args = parser.parse_args(argv)

    from emotion.classifier import EmotionClassifier
    from emotion.model_io import ModelFileError
    from training.data import DatasetError, load_split

    try:
        faces = load_split(args.data, args.split, skip_unreadable=args.skip_unreadable)
        classifier = EmotionClassifier.load(args.weights, views=args.views)
    except (DatasetError, ModelFileError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    report, _ = evaluate(classifier, faces)
    if args.tta:
        plain = report["accuracy"]
        report, _ = evaluate(classifier, faces, tta=True)
        report.update(plain_accuracy=plain, tta_gain=round(report["accuracy"] - plain, 4))
    print(json.dumps(report) if args.json else format_report(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
