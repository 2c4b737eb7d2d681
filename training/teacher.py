"""Soft targets for knowledge distillation: what one or more trained models believe about each training face.

    python -m training.teacher weights/inceptionv3_fer2013.keras ~/.cache/class-mood/cycle3-best.keras \
        --data ../shared/datasets/fer2013 --out ~/.cache/class-mood/teacher.npz
    python -m training.train ... --teacher ~/.cache/class-mood/teacher.npz --distill 0.5
    python -m training.train ... --teacher weights/inceptionv3_fer2013.keras,runs/vgg1/best.keras   # online
    python -m training.teacher A.keras B.keras --data ../shared/datasets/fer2013   # only: is their mean better?

The members' uncalibrated probabilities (each through its own test-time views, flip by default) are averaged
over the models: a temporary ensemble that is sharper than any one member, shipped never, only learnt from
(Hinton et al. 2015). They are computed once on the un-augmented faces and stored beside the runs, so
distillation costs a training run nothing per step. Rows are keyed by each face's pixels (SHA-1), so a run on a
subset (--limit) or in another order finds its own. The ensemble's accuracy on the validation split is printed
and stored: a teacher no better than the student has little to teach.

Online teachers (`OnlineTeachers`, model files given to `--teacher`) label each augmented training batch as the
student sees it instead: the same crop, turn, cutout and mixup blend ("consistent teaching", Beyer et al. 2022),
at the cost of one forward pass of every member per batch.
"""
from __future__ import annotations

import argparse
import hashlib
import os
import sys
from pathlib import Path

import numpy as np

from emotion.calibration import temperature_scale
from emotion.labels import EMOTIONS

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def face_keys(images: np.ndarray) -> np.ndarray:
    """One 20-byte key per 48x48 face: the SHA-1 of its pixels."""
    return np.array([hashlib.sha1(np.ascontiguousarray(image).tobytes()).digest() for image in images], dtype="S20")


def ensemble_probabilities(classifiers, images: np.ndarray, batch_size: int = 256) -> np.ndarray:
    """The members' mean probabilities per face, (N, 7)."""
    return np.mean([c.predict(images, batch_size=batch_size) for c in classifiers], axis=0)


def save_targets(path: Path, images: np.ndarray, probabilities: np.ndarray, **about) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial.npz")  # np.savez adds .npz to a name without it
    np.savez(partial, keys=face_keys(images), probabilities=probabilities.astype(np.float32),
             **{k: np.asarray(v) for k, v in about.items()})
    os.replace(partial, path)


def load_targets(path: str | Path, images: np.ndarray) -> np.ndarray:
    """The teacher's probabilities for each of `images`, in their order. ValueError when the file is not a
    teacher's or lacks some of the faces (it was made from other data)."""
    try:
        with np.load(Path(path).expanduser(), allow_pickle=False) as stored:
            keys, probabilities = stored["keys"], stored["probabilities"]
    except (OSError, KeyError, ValueError) as exc:
        raise ValueError(f"{path} is not a teacher file of python -m training.teacher ({exc})") from None
    if probabilities.shape != (len(keys), len(EMOTIONS)):
        raise ValueError(f"{path}: probabilities of shape {probabilities.shape}, expected ({len(keys)}, 7)")
    row_of = {key: row for row, key in enumerate(keys.tolist())}
    rows = [row_of.get(key, -1) for key in face_keys(images).tolist()]
    missing = rows.count(-1)
    if missing:
        raise ValueError(f"{path} holds no teacher probabilities for {missing} of the {len(images)} training faces; "
                         "make it from the same data (python -m training.teacher --data ...)")
    targets = probabilities[rows].astype(np.float64)
    return targets / targets.sum(axis=1, keepdims=True)


MODEL_SUFFIXES = (".keras", ".h5")


def model_files(teacher: str) -> list[str]:
    """The model files of a --teacher value ("a.keras,b.keras"), or [] for a teacher file (.npz)."""
    parts = [part.strip() for part in teacher.split(",") if part.strip()]
    return parts if parts and all(part.lower().endswith(MODEL_SUFFIXES) for part in parts) else []


class OnlineTeachers:
    """Models whose mean probabilities for each augmented training batch become part of its targets.

        teachers = OnlineTeachers(["swa2.keras", "vgg1.keras"], student_crop=44)
        y = teachers.blend(x, y, distill=0.5)   # x: the student's batch (N, size, size, 3) in [-1, 1]

    Each member sees the student's very view, framed as it was trained: a member trained on smaller crops of
    the 48 px face (40 px where the student's are 44) gets the centre of the student's crop that covers its own
    share of the face, resized to its input side. Raw (uncalibrated) probabilities, as `python -m
    training.teacher` stores."""

    def __init__(self, paths: list[str], *, student_crop: int):
        from emotion.model_io import load_keras_model, read_metadata
        from emotion.preprocess import SOURCE_SIZE

        self.members = []
        for path in map(lambda p: Path(p).expanduser(), paths):
            model = load_keras_model(path)
            crop = read_metadata(path).get("preprocessing", {}).get("crop_size") or SOURCE_SIZE
            self.members.append((model, model.input_shape[1], min(crop / (student_crop or SOURCE_SIZE), 1.0)))

    def __len__(self) -> int:
        return len(self.members)

    def probabilities(self, x) -> np.ndarray:
        import tensorflow as tf

        rows = []
        for model, size, share in self.members:
            view = tf.image.central_crop(x, share) if share < 1 else x
            if view.shape[1] != size:
                view = tf.image.resize(view, (size, size), method="bilinear")
            rows.append(model.predict_on_batch(view))
        return np.mean(rows, axis=0)

    def blend(self, x, y, distill: float) -> np.ndarray:
        """(1 - distill) * y + distill * the members' mean probabilities for x."""
        return distilled(np.asarray(y), self.probabilities(x), distill)


def distilled(labels: np.ndarray, teacher: np.ndarray, distill: float) -> np.ndarray:
    """Training targets: the blend (1 - distill) * labels + distill * teacher probabilities, float32."""
    return ((1 - distill) * labels + distill * teacher).astype(np.float32)


def report_on(members, faces, split: str, views: str) -> float:
    """Print each member's accuracy on `faces`, how often the members agree and how often at least one is right
    (what an ensemble could reach at best), and the ensemble's accuracy, which it returns."""
    each = [member.predict(faces.images, batch_size=256) for member in members]
    right = np.array([p.argmax(axis=1) == faces.labels for p in each])
    for member, hits in zip(members, right):
        print(f"{member.name}: {hits.mean():.4f} on {split} ({views} views)")
    if len(members) > 1:
        predicted = np.array([p.argmax(axis=1) for p in each])
        print(f"all members agree on {(predicted == predicted[0]).all(axis=0).mean():.1%} of the faces; "
              f"at least one is right on {right.any(axis=0).mean():.1%}")
    accuracy = float((np.mean(each, axis=0).argmax(axis=1) == faces.labels).mean())
    print(f"ensemble of {len(members)}: {accuracy:.4f} on {split}")
    return accuracy


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m training.teacher", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("models", nargs="+", help="model files (.keras) whose mean is the teacher")
    parser.add_argument("--data", required=True, help="FER2013 (the data the student trains on)")
    parser.add_argument("--train-split", default="train")
    parser.add_argument("--val-split", default="val", help="split the ensemble's accuracy is measured on ('' = none)")
    parser.add_argument("--views", default="flip", help="test-time views of every member (centre, flip, five, ten)")
    parser.add_argument("--temperature", type=float, default=1.0,
                        help="soften (> 1) or sharpen (< 1) the mean probabilities: softmax(log p / T)")
    parser.add_argument("--out", help="the teacher file (.npz); without it, only the report on the validation split "
                                      "(is the ensemble worth distilling?)")
    args = parser.parse_args(argv)
    if not args.temperature > 0:
        parser.error("--temperature must be positive")
    if not args.out and not args.val_split:
        parser.error("give --out, or a --val-split to report on")
    from emotion.classifier import EmotionClassifier
    from emotion.model_io import ModelFileError
    from training.data import DatasetError, load_split

    try:
        train = load_split(args.data, args.train_split) if args.out else None
        val = load_split(args.data, args.val_split) if args.val_split else None
        members = [EmotionClassifier.load(m, calibrated=False, views=args.views) for m in args.models]
    except (DatasetError, ModelFileError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    about = {"models": [str(m) for m in args.models], "views": args.views, "temperature": args.temperature}
    if val is not None:
        about["val_accuracy"] = report_on(members, val, args.val_split, args.views)
    if not args.out:
        return 0
    probabilities = temperature_scale(ensemble_probabilities(members, train.images), args.temperature)
    about["train_accuracy"] = float((probabilities.argmax(axis=1) == train.labels).mean())
    save_targets(Path(args.out).expanduser(), train.images, probabilities, **about)
    print(f"teacher probabilities of {len(train)} training faces in {args.out} "
          f"(the ensemble is right on {about['train_accuracy']:.1%} of them)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
