"""Make a run's best model the shipped default (weights/inceptionv3_fer2013.keras), only when it is better.

    python -m training.ship ~/.cache/class-mood/runs/main [--data ../shared/datasets/fer2013] [--force]

Both models are evaluated on the same `val` split through the inference path (float16 storage
included), and the new one replaces the shipped file only if its accuracy is higher: git keeps
every version that was shipped. The shipped metadata gets the candidate's probability calibration,
fitted on that split (training/calibration.py).
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from emotion.preprocess import VIEW_SETS  # noqa: E402

SHIPPED_ARCHITECTURE = "inceptionv3_fer2013"  # the design card's network; a teacher of another kind is not shipped


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m training.ship", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run", help="run folder holding best.keras and best.json")
    parser.add_argument("--data", help="FER2013 to evaluate both models on (default: the run's own data)")
    parser.add_argument("--split", default="val")
    parser.add_argument("--force", action="store_true", help="ship even if it is not better")
    parser.add_argument("--views", choices=VIEW_SETS,
                        help="test-time views the shipped model averages over (default: the candidate's own); "
                             "each view costs one more pass of the network per face")
    args = parser.parse_args(argv)

    from emotion.classifier import EmotionClassifier
    from emotion.model_io import copy_model, read_metadata
    from emotion.registry import SHIPPED_MODEL
    from training.calibration import calibration_of
    from training.data import DatasetError, load_split, training_prior
    from training.evaluate import evaluate

    best = Path(args.run).expanduser() / "best.keras"
    if not best.is_file():
        print(f"error: {best} does not exist", file=sys.stderr)
        return 2
    metadata = read_metadata(best)
    if metadata.get("architecture", SHIPPED_ARCHITECTURE) != SHIPPED_ARCHITECTURE:
        print(f"error: {best} is a {metadata['architecture']} model; the shipped default is one InceptionV3 "
              "(other networks are teachers: python -m training.teacher)", file=sys.stderr)
        return 2
    data = args.data or metadata.get("data", {}).get("path")
    faces = load_split(data, args.split)
    if args.views:
        metadata["preprocessing"] = {**metadata.get("preprocessing", {}), "views": args.views}
    views = metadata.get("preprocessing", {}).get("views", "centre")
    candidate, probabilities = evaluate(EmotionClassifier.load(best, calibrated=False, views=views), faces)
    print(f"candidate {best} ({views} views): {args.split} accuracy {candidate['accuracy']:.4f}")
    if SHIPPED_MODEL.is_file():
        shipped, _ = evaluate(EmotionClassifier.load(SHIPPED_MODEL), faces)
        print(f"shipped   {SHIPPED_MODEL.name}: {args.split} accuracy {shipped['accuracy']:.4f}")
        if candidate["accuracy"] <= shipped["accuracy"] and not args.force:
            print("not shipped: the candidate is not better")
            return 1
    if "training_prior" not in metadata:  # trained before the trainer stored it: the mix EM divides out
        settings = metadata.get("settings", {})
        try:
            labels = load_split(data, settings.get("train_split", "train")).labels
            metadata["training_prior"] = training_prior(labels, settings.get("balance", "sqrt"))
        except DatasetError as error:
            print(f"note: no training prior stored ({error}); the mix estimate uses the calibration's")
    calibration = calibration_of(probabilities, faces)
    copy_model(best, SHIPPED_MODEL, {**metadata, "file": SHIPPED_MODEL.name,
                                     "val_accuracy": candidate["accuracy"], "validation": candidate,
                                     "calibration": calibration, "run_path": str(best.parent)})
    print(f"shipped as {SHIPPED_MODEL} ({SHIPPED_MODEL.stat().st_size / 1e6:.1f} MB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
