"""Re-estimate a run's BatchNorm statistics on clean training faces; keep the result only if `val` improves.

    python -m training.recalibrate ~/.cache/class-mood/runs/main [--data ../shared/datasets/fer2013]

While training, BatchNorm's moving statistics follow the last few augmented batches; here they are
recomputed as the plain average over un-augmented training faces (no learned weight changes). The run's
best.keras is replaced only when its `val` accuracy, measured through the inference path and the test-time
views the product ships (`--views`, default flip), goes up; the previous file stays beside it as
best.before-recalibration.keras. The trainer does this when a run ends.
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from emotion.preprocess import VIEW_SETS  # noqa: E402

BEFORE_NAME = "best.before-recalibration.keras"


def best_model(run: Path) -> Path:
    from emotion.model_io import ModelFileError

    best = run / "best.keras"
    if not best.is_file():
        raise ModelFileError(f"{best} does not exist: the run has no best model yet")
    return best


def recalibrate_run(run: Path, train, val, *, images: int = 25600, batch_size: int = 128, seed: int = 0,
                    views: str = "flip", log=print) -> tuple[float, float]:
    """Recalibrate run/best.keras on the `train` FaceSet, judged on `val` through the test-time `views` the
    model will be shipped with (new statistics raised one cycle's centre crop and lowered its flip views);
    returns (val accuracy before, after). Raises ModelFileError when the run has no best model."""
    from emotion.classifier import EmotionClassifier
    from emotion.model_io import copy_model, load_keras_model, metadata_path, read_metadata, save_model
    from training.evaluate import evaluate
    from training.model import recalibrate_batchnorm

    best = best_model(run)
    metadata = read_metadata(best)
    before, _ = evaluate(EmotionClassifier.load(best, backend="tensorflow", views=views), val)  # no ONNX export

    model = load_keras_model(best)
    used = recalibrate_batchnorm(model, train.images, images=min(images, len(train)), batch_size=batch_size,
                                 seed=seed, crop_size=metadata.get("preprocessing", {}).get("crop_size", 0))
    candidate = save_model(model, run / "recalibrated.keras", metadata)
    after, _ = evaluate(EmotionClassifier.load(candidate, backend="tensorflow", views=views), val)
    log(f"BatchNorm statistics from {used} clean training faces: val accuracy ({views} views) "
        f"{before['accuracy']:.4f} -> {after['accuracy']:.4f}")
    if after["accuracy"] > before["accuracy"]:
        if not (run / BEFORE_NAME).exists():  # a second recalibration keeps the original, not the first result
            copy_model(best, run / BEFORE_NAME, metadata)
        copy_model(candidate, best, {**metadata, "val_accuracy": after["accuracy"], "validation": after,
                                     "batchnorm_recalibration": {"images": used, "batch_size": batch_size,
                                                                 "seed": seed, "views": views,
                                                                 "val_accuracy_before": before["accuracy"]}})
        log(f"kept: {best} (the previous file is {BEFORE_NAME})")
    else:
        log("not kept: no gain on val")
    candidate.unlink()
    metadata_path(candidate).unlink(missing_ok=True)
    return before["accuracy"], after["accuracy"]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m training.recalibrate", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run", help="run folder holding best.keras")
    parser.add_argument("--data", help="FER2013 (default: the data the run was trained on)")
    parser.add_argument("--images", type=int, default=25600,
                        help="clean training faces to average over (at most the training set)")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--views", choices=VIEW_SETS, default="flip",
                        help="test-time views to judge the result through (those it will be shipped with)")
    args = parser.parse_args(argv)

    from emotion.model_io import ModelFileError, read_metadata
    from training.data import DatasetError, load_split

    run = Path(args.run).expanduser()
    try:
        sources = read_metadata(best_model(run)).get("data", {})
        data = args.data or sources.get("path")
        if not data:
            raise DatasetError(f"{run} names no training data; pass --data")
        train = load_split(data, sources.get("train_split", "train"), skip_unreadable=True)
        val = load_split(data, sources.get("val_split", "val"), skip_unreadable=True)
        recalibrate_run(run, train, val, images=args.images, batch_size=args.batch_size, seed=args.seed,
                        views=args.views)
    except (DatasetError, ModelFileError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
