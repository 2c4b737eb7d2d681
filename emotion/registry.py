"""Where models live and which one is active.

Every `.keras` (or legacy `.h5`) file in the models folder (CLASS_MOOD_MODELS, by default data/models,
outside git's view) is a registered model with its JSON metadata beside it; the shipped default in
weights/ is always listed too. `active.txt` in that folder names the model the dashboard uses; without it
(or when it names a file that is gone) the shipped default is used. It holds a file name in the folder and
nothing else: a path elsewhere (absolute, or with '..') is refused with a ModelFileError. The choice is read
on every new session, so the live dashboard picks up an activation without a restart.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from emotion.model_io import ModelFileError, metadata_path, read_metadata
from emotion.settings import REPO_ROOT, models_dir

SHIPPED_MODEL = REPO_ROOT / "weights" / "inceptionv3_fer2013.keras"
ACTIVE_FILE = "active.txt"




@dataclass(frozen=True)
class ModelEntry:
    path: Path
    metadata: dict

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def val_accuracy(self) -> float | None:
        return self.metadata.get("val_accuracy")

    @property
    def size_mb(self) -> float:
        return self.path.stat().st_size / 1e6


def list_models(folder: Path | None = None) -> list[ModelEntry]:
    """The shipped default first (when it is there), then the folder's models by name."""
    folder = folder or models_dir()
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in (".keras", ".h5") and p.is_file()) \
        if folder.is_dir() else []
    if SHIPPED_MODEL.is_file() and SHIPPED_MODEL.resolve() not in {p.resolve() for p in files}:
        files.insert(0, SHIPPED_MODEL)
    entries = []
    for path in files:
        try:
            entries.append(ModelEntry(path, read_metadata(path)))
        except Exception:  # unreadable metadata: still list the model, without details
            entries.append(ModelEntry(path, {}))
    return entries


def active_model_path(folder: Path | None = None) -> Path:
    """The model to load when none is named."""
    folder = folder or models_dir()
    pointer = folder / ACTIVE_FILE
    if pointer.is_file():
        name = pointer.read_text(errors="replace").strip()
        if name and (Path(name).name != name or name in (".", "..")):  # empty: no choice, the default
            raise ModelFileError(f"{pointer} names {name[:200]!r}, which is not the name of a model file in {folder}; "
                                 "activate a model on the Training page or restore the shipped default there")
        chosen = folder / name
        if chosen.is_file():
            return chosen
    in_folder = folder / SHIPPED_MODEL.name
    return in_folder if in_folder.is_file() else SHIPPED_MODEL


def activate(model_path: Path, folder: Path | None = None) -> None:
    """Make a model of the folder the active one (the shipped default: restore_default)."""
    folder = folder or models_dir()
    model_path = Path(model_path)
    if model_path.resolve() == SHIPPED_MODEL.resolve():
        return restore_default(folder)
    if model_path.parent.resolve() != folder.resolve() or not model_path.is_file():
        raise ValueError(f"{model_path} is not a model in {folder}")
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / (ACTIVE_FILE + ".tmp")
    tmp.write_text(model_path.name)
    os.replace(tmp, folder / ACTIVE_FILE)


def restore_default(folder: Path | None = None) -> None:
    (folder or models_dir()).joinpath(ACTIVE_FILE).unlink(missing_ok=True)


def delete_model(model_path: Path, folder: Path | None = None) -> None:
    """Remove a model and its metadata; the active and the shipped model are refused."""
    model_path = Path(model_path)
    if model_path.resolve() == active_model_path(folder).resolve():
        raise ValueError(f"{model_path.name} is the active model; activate another one before deleting it")
    if model_path.resolve() == SHIPPED_MODEL.resolve():
        raise ValueError(f"{model_path.name} is the shipped default and cannot be deleted")
    model_path.unlink()
    metadata_path(model_path).unlink(missing_ok=True)
