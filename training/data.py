"""FER2013 in either common form -> in-memory face sets -> tf.data pipelines.

Forms understood:
* Kaggle's ``fer2013.csv`` (columns ``emotion,pixels,Usage``; Usage is
  Training / PublicTest / PrivateTest),
* folders ``<root>/<split>/<emotion>/*.jpg|png`` or a bare ``<root>/<emotion>/``.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from emotion.labels import EMOTIONS, FER2013_CSV_INDEX
from emotion.preprocess import SOURCE_SIZE, to_source_size

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp"}
# Split names as folders and as the CSV's Usage column call them.
SPLIT_ALIASES = {
    "train": ("train", "training"),
    "val": ("val", "valid", "validation", "publictest"),
    "test": ("test", "privatetest"),
}
CSV_USAGE = {"train": "Training", "val": "PublicTest", "test": "PrivateTest"}
EXPECTED_FORMS = (
    "a Kaggle fer2013.csv (columns emotion,pixels[,Usage]) or folders "
    "<root>/<split>/<emotion>/*.jpg|png or <root>/<emotion>/*.jpg|png "
    f"with emotion folders named {', '.join(EMOTIONS)}"
)


class DatasetError(ValueError):
    """A dataset that cannot be read as FER2013; the message says what and where."""


@dataclass
class FaceSet:
    """Labelled 48x48 gray faces held in memory."""

    images: np.ndarray  # (N, 48, 48) uint8
    labels: np.ndarray  # (N,) int, index into EMOTIONS
    names: list[str]  # file path or "file.csv row K", for messages and galleries
    source: str
    skipped: list[str] = field(default_factory=list)  # unreadable entries left out

    def __len__(self) -> int:
        return len(self.labels)

    def class_counts(self) -> dict[str, int]:
        counts = np.bincount(self.labels, minlength=len(EMOTIONS))
        return {name: int(n) for name, n in zip(EMOTIONS, counts)}

    def subset(self, count: int, seed: int = 0) -> "FaceSet":
        """A random `count` faces (all classes represented in proportion), for quick trials."""
        keep = np.sort(np.random.default_rng(seed).permutation(len(self))[:count])
        return FaceSet(self.images[keep], self.labels[keep], [self.names[i] for i in keep],
                       f"{self.source} (random {len(keep)})", self.skipped)

    def fingerprint(self) -> str:
        """Short content hash, stored with a model to say what it was trained on."""
        digest = hashlib.sha256()
        digest.update(self.images.tobytes())
        digest.update(self.labels.astype(np.int64).tobytes())
        return digest.hexdigest()[:16]


def canonical_split(split: str) -> str:
    key = split.strip().lower()
    for canonical, aliases in SPLIT_ALIASES.items():
        if key in aliases:
            return canonical
    raise DatasetError(f"unknown split {split!r}; "
                       "expected one of train, val, test (or Training, PublicTest, PrivateTest)")


def _split_folder(root: Path, split: str) -> Path | None:
    wanted = SPLIT_ALIASES[canonical_split(split)]
    for child in sorted(root.iterdir()):
        if child.is_dir() and child.name.lower() in wanted:
            return child
    return None


def _is_emotion_folder_root(path: Path) -> bool:
    return any(child.is_dir() and child.name.lower() in EMOTIONS for child in path.iterdir())


def find_csv(path: Path) -> Path | None:
    if path.is_file() and path.suffix.lower() == ".csv":
        return path
    if path.is_dir() and (path / "fer2013.csv").is_file():
        return path / "fer2013.csv"
    return None


def load_split(path: str | Path, split: str | None = None, *, skip_unreadable: bool = False) -> FaceSet:
    """Load one split. ``split`` may be None for a bare emotion-folder root or a CSV read whole."""
    path = Path(path)
    if not path.exists():
        raise DatasetError(f"dataset not found: {path} does not exist; expected {EXPECTED_FORMS}")
    csv_path = find_csv(path)
    if csv_path is not None:
        return _load_csv(csv_path, split)
    if path.is_file():
        raise DatasetError(f"{path} is a file but not a CSV; expected {EXPECTED_FORMS}")
    folder = path
    if split is not None and not _is_emotion_folder_root(path):
        folder = _split_folder(path, split)
        if folder is None:
            found = ", ".join(sorted(c.name for c in path.iterdir() if c.is_dir())) or "no folders"
            raise DatasetError(f"no '{split}' split in {path} (found: {found}); expected {EXPECTED_FORMS}")
    return _load_folders(folder, skip_unreadable=skip_unreadable)


def _class_folders(root: Path) -> list[Path]:
    """The emotion folders of one split; anything else there is an error naming it."""
    class_dirs = [child for child in sorted(root.iterdir()) if child.is_dir()]
    if not class_dirs:
        raise DatasetError(f"no emotion folders in {root}; expected {EXPECTED_FORMS}")
    unknown = [d.name for d in class_dirs if d.name.lower() not in EMOTIONS]
    if unknown:
        raise DatasetError(
            f"unknown label folder(s) {', '.join(unknown)} in {root}; expected folders named {', '.join(EMOTIONS)}"
        )
    return class_dirs


def _load_folders(root: Path, *, skip_unreadable: bool) -> FaceSet:
    class_dirs = _class_folders(root)
    images, labels, names, unreadable = [], [], [], []
    for class_dir in class_dirs:
        label = EMOTIONS.index(class_dir.name.lower())
        for file in sorted(class_dir.iterdir()):
            if file.suffix.lower() not in IMAGE_SUFFIXES:
                continue
            gray = cv2.imread(str(file), cv2.IMREAD_GRAYSCALE)
            if gray is None:
                unreadable.append(str(file))
                continue
            images.append(to_source_size(gray))
            labels.append(label)
            names.append(str(file))
    if unreadable and not skip_unreadable:
        shown = ", ".join(unreadable[:5])
        raise DatasetError(
            f"{len(unreadable)} unreadable image file(s) in {root}: {shown}"
            + (" ..." if len(unreadable) > 5 else "")
            + " (remove them, or pass --skip-unreadable to leave them out)"
        )
    if not images:
        raise DatasetError(f"no images (.jpg, .png) in the emotion folders of {root}")
    return FaceSet(np.stack(images), np.asarray(labels, dtype=np.int64), names, str(root), unreadable)


def _load_csv(csv_path: Path, split: str | None) -> FaceSet:
    table = _read_csv(csv_path)
    columns = list(table.columns)
    if split is not None:
        if "Usage" not in columns:
            raise DatasetError(f"{csv_path} has no Usage column, so it cannot select the '{split}' split")
        usage = CSV_USAGE[canonical_split(split)]
        table = table[table["Usage"].str.strip() == usage]
        if table.empty:
            raise DatasetError(f"{csv_path} has no rows with Usage={usage}")
    expected = SOURCE_SIZE * SOURCE_SIZE
    images = np.empty((len(table), SOURCE_SIZE, SOURCE_SIZE), dtype=np.uint8)
    labels = np.empty(len(table), dtype=np.int64)
    names = []
    for i, (row_index, code, pixels) in enumerate(zip(table.index, table["emotion"], table["pixels"])):
        row = row_index + 2  # 1-based, after the header line, as a spreadsheet shows it
        try:
            emotion = FER2013_CSV_INDEX[int(code)]
        except (ValueError, KeyError):
            raise DatasetError(f"{csv_path} row {row}, column emotion: {code!r} is not a class number 0-6") from None
        try:
            values = np.array(pixels.split(), dtype=np.int64)
        except ValueError:
            raise DatasetError(f"{csv_path} row {row}, column pixels: not a list of whole numbers") from None
        except OverflowError:  # a number beyond 64 bits
            raise DatasetError(f"{csv_path} row {row}, column pixels: values must lie in 0-255") from None
        if values.size != expected:
            raise DatasetError(
                f"{csv_path} row {row}, column pixels: {values.size} values, expected {expected} (48x48)"
            )
        if values.min() < 0 or values.max() > 255:
            raise DatasetError(f"{csv_path} row {row}, column pixels: values must lie in 0-255")
        images[i] = values.reshape(SOURCE_SIZE, SOURCE_SIZE).astype(np.uint8)
        labels[i] = EMOTIONS.index(emotion)
        names.append(f"{csv_path.name} row {row}")
    return FaceSet(images, labels, names, f"{csv_path}" + (f" [{split}]" if split else ""))


def _read_csv(csv_path: Path, columns: list[str] | None = None):
    """The CSV as strings (only `columns` when given), after checking it has FER2013's columns."""
    import pandas as pd

    try:
        header = [c.strip() for c in pd.read_csv(csv_path, nrows=0).columns]
        if "emotion" not in header or "pixels" not in header:
            raise DatasetError(f"{csv_path} has columns {', '.join(header) or '(none)'}; "
                               "expected emotion,pixels[,Usage] as in Kaggle's fer2013.csv")
        table = pd.read_csv(csv_path, dtype=str, keep_default_na=False,
                            usecols=None if columns is None else lambda c: c.strip() in columns)
    except DatasetError:
        raise
    except Exception as exc:  # pandas raises many types for broken files
        raise DatasetError(f"cannot read {csv_path} as CSV: {exc}") from exc
    if table.empty:
        raise DatasetError(f"{csv_path} has a header but no rows of faces")
    table.columns = [c.strip() for c in table.columns]
    return table


def available_splits(path: str | Path) -> list[str | None]:
    """The splits a dataset holds (train, val, test), or [None] for one undivided set.

    A cheap look at the layout (folder and column names, the CSV's Usage column) that
    raises DatasetError for anything load_split would refuse for its form.
    """
    path = Path(path)
    if not path.exists():
        raise DatasetError(f"dataset not found: {path} does not exist; expected {EXPECTED_FORMS}")
    csv_path = find_csv(path)
    if csv_path is not None:
        table = _read_csv(csv_path, ["Usage"])
        if "Usage" not in table.columns:
            return [None]
        present = {value.strip() for value in table["Usage"].unique()}
        splits = [split for split, usage in CSV_USAGE.items() if usage in present]
        if not splits:
            raise DatasetError(f"{csv_path} has no rows with Usage Training, PublicTest or PrivateTest "
                               f"(found: {', '.join(sorted(present)[:5])})")
        return splits
    if path.is_file():
        raise DatasetError(f"{path} is a file but not a CSV; expected {EXPECTED_FORMS}")
    if _is_emotion_folder_root(path):
        _class_folders(path)
        return [None]
    splits = {split: _split_folder(path, split) for split in SPLIT_ALIASES}
    splits = {split: folder for split, folder in splits.items() if folder is not None}
    if not splits:
        found = ", ".join(sorted(c.name for c in path.iterdir())) or "nothing"
        raise DatasetError(f"no split or emotion folders in {path} (found: {found}); expected {EXPECTED_FORMS}")
    for folder in splits.values():
        _class_folders(folder)
    return list(splits)


def class_weights(labels: np.ndarray, mode: str) -> np.ndarray:
    """Per-class loss weights for the rare classes (disgust has ~1.5 % of FER2013).

    ``sqrt`` weighs a class by 1/sqrt(frequency): it lifts disgust without the
    accuracy cost of full inverse weighting. Weights average 1 over the samples.
    """
    counts = np.bincount(labels, minlength=len(EMOTIONS)).astype(np.float64)
    present = counts > 0
    weights = np.zeros(len(EMOTIONS))
    if mode == "none":
        weights[present] = 1.0
    elif mode in ("sqrt", "inverse"):
        power = 0.5 if mode == "sqrt" else 1.0
        weights[present] = counts[present] ** -power
        weights *= counts.sum() / (weights * counts).sum()
    else:
        raise ValueError(f"unknown class balancing {mode!r}; expected none, sqrt or inverse")
    return weights.astype(np.float32)


def training_prior(labels: np.ndarray, mode: str) -> list[float]:
    """The class prior a network trained on `labels` with `class_weights(labels, mode)` learns its posteriors
    under: counts times weights, normalised. The EM mix estimate (emotion/quantify.py) divides it out; the model
    metadata stores it, because it is known exactly here and only estimated from `val` afterwards."""
    counts = np.bincount(labels, minlength=len(EMOTIONS)).astype(np.float64)
    weighted = counts * class_weights(labels, mode)
    return (weighted / weighted.sum()).round(5).tolist()
