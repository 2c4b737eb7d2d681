"""A dataset seen before training on it: images per emotion and split, sample faces, warnings.

Reads through training.data's loaders, so it shows exactly what the trainer will get;
a path in neither FER2013 form raises DatasetError saying what was expected.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from emotion.labels import EMOTIONS
from training.data import available_splits, find_csv, load_split

TINY_CLASS_IMAGES = 10  # fewer than this, or under TINY_CLASS_SHARE of a split, is flagged
TINY_CLASS_SHARE = 0.01
SHOWN_NAMES = 3


@dataclass
class DatasetReport:
    path: Path
    form: str  # "csv" or "folders"
    counts: pd.DataFrame  # one row per emotion, one column per split ("all" for an undivided set)
    samples: dict[str, list[np.ndarray]]  # a few 48x48 gray faces per emotion, from the training split
    warnings: list[str]
    unreadable: dict[str, list[str]]  # per split, the files left out

    def images(self, split: str) -> int:
        return int(self.counts[split].sum()) if split in self.counts else 0


def inspect_dataset(path: str | Path, samples_per_class: int = 6, seed: int = 0) -> DatasetReport:
    path = Path(path).expanduser()
    splits = available_splits(path)
    faces = {split or "all": load_split(path, split, skip_unreadable=True) for split in splits}
    counts = pd.DataFrame({split: face_set.class_counts() for split, face_set in faces.items()}, index=list(EMOTIONS))
    counts.index.name = "emotion"

    warnings = []
    if splits == [None]:
        warnings.append("one undivided set of faces: training needs a train and a val split "
                        "(<root>/train and <root>/val folders, or the CSV's Usage column)")
    else:
        warnings += [f"no {split} split: training needs one" for split in ("train", "val") if split not in faces]
    for split, face_set in faces.items():
        for emotion, count in face_set.class_counts().items():
            if count == 0:
                warnings.append(f"{split}: no {emotion} images, so the model cannot learn or be checked on {emotion}")
            elif count < max(TINY_CLASS_IMAGES, TINY_CLASS_SHARE * len(face_set)):
                warnings.append(f"{split}: only {count} {emotion} images ({count / len(face_set):.1%}); "
                                "class balancing helps, but expect weak results for it")
        if face_set.skipped:
            shown = ", ".join(Path(name).name for name in face_set.skipped[:SHOWN_NAMES])
            more = " ..." if len(face_set.skipped) > SHOWN_NAMES else ""
            warnings.append(f"{split}: {len(face_set.skipped)} unreadable image file(s) will be left out: "
                            f"{shown}{more}")

    shown_set = faces["train"] if "train" in faces else next(iter(faces.values()))
    rng = np.random.default_rng(seed)
    samples = {}
    for index, emotion in enumerate(EMOTIONS):
        members = np.flatnonzero(shown_set.labels == index)
        chosen = rng.choice(members, size=min(samples_per_class, len(members)), replace=False)
        samples[emotion] = [shown_set.images[i] for i in chosen]
    return DatasetReport(path, "csv" if find_csv(path) else "folders", counts, samples, warnings,
                         {split: face_set.skipped for split, face_set in faces.items() if face_set.skipped})
