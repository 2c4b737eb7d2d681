"""Where models live and which one is active.

Every `.keras` (or legacy `.h5`) file in the models folder is a registered model
with its JSON metadata beside it. `active.txt` in that folder names the model
the dashboard uses; without it (or when it names a file that is gone) the
shipped default is used. It holds a file name in the folder and nothing else:
a path elsewhere (absolute, or with '..') is refused with a ModelFileError. The choice is read on every new session, so the live
dashboard picks up an activation without a restart.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from emotion.model_io import ModelFileError, metadata_path, read_metadata
from emotion.settings import REPO_ROOT

SHIPPED_MODEL = REPO_ROOT / "weights" / "inceptionv3_fer2013.keras"
ACTIVE_FILE = "active.txt"


def models_dir() -> Path:
    return Path(os.environ.get("CLASS_MOOD_MODELS", REPO_ROOT / "weights")).expanduser()


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
    folder = folder or models_dir()
    if not folder.is_dir():
        return []
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in (".keras", ".h5") and p.is_file())
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
    folder = folder or models_dir()
    model_path = Path(model_path)
    if model_path.parent.resolve() != folder.resolve() or not model_path.is_file():
        raise ValueError(f"{model_path} is not a model in {folder}")
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
