"""Datasets uploaded from the browser, kept under the datasets folder (CLASS_MOOD_DATASETS).

A zip of FER2013's folder layout is unpacked member by member into a new folder of its
own: absolute paths, '..', links and archives unpacking beyond MAX_UNPACKED_BYTES are
refused, so nothing lands anywhere else. A fer2013.csv is copied as it is. Either is then
checked with the layout check the trainer's loader applies; a bad upload is removed
again and the DatasetError says why. Only the newest KEEP_UPLOADS uploads stay (and any a
running training uses), so uploads cannot fill the disk.
"""
from __future__ import annotations

import os
import shutil
import stat
import zipfile
import zlib
from pathlib import Path, PurePosixPath
from collections.abc import Iterable
from typing import BinaryIO

from emotion.labels import EMOTIONS
from emotion.settings import datasets_root
from training.data import SPLIT_ALIASES, DatasetError, available_splits
from training.names import safe_name, unused_path

MAX_UPLOAD_BYTES = 1 << 30  # Kaggle's fer2013.csv is 290 MB
MAX_UNPACKED_BYTES = 1 << 30  # FER2013 as image folders is about 60 MB
KEEP_UPLOADS = 3
MAX_MEMBERS = 200_000
CHUNK = 1 << 20
LAYOUT_NAMES = set(EMOTIONS) | {alias for aliases in SPLIT_ALIASES.values() for alias in aliases}


def save_upload(filename: str, stream: BinaryIO, root: Path | None = None, in_use: Iterable[str | Path] = ()) -> Path:
    """Store an uploaded .zip or .csv dataset under `root`; returns the path to train on. Older uploads beyond the
    newest KEEP_UPLOADS are deleted then, except those holding a dataset path in `in_use`."""
    root = root or datasets_root()
    suffix = Path(filename).suffix.lower()
    if suffix not in (".zip", ".csv"):
        raise DatasetError(f"{filename}: expected a .zip of FER2013 emotion folders or a fer2013.csv")
    size = stream.seek(0, os.SEEK_END)
    stream.seek(0)
    if size > MAX_UPLOAD_BYTES:
        raise DatasetError(f"{filename} is {size / 1e6:.0f} MB, over the {MAX_UPLOAD_BYTES / 1e6:.0f} MB upload limit; "
                           "give its path on this machine instead")
    root.mkdir(parents=True, exist_ok=True)
    stem = safe_name(Path(filename).stem, "dataset")
    if suffix == ".csv":
        target = dataset = unused_path(root, stem, ".csv")
        with open(target, "xb") as out:
            shutil.copyfileobj(stream, out, CHUNK)
    else:
        target = unused_path(root, stem)
        _unpack(filename, stream, target)
        dataset = _dataset_root(target)
    try:
        available_splits(dataset)
    except DatasetError as exc:
        if target.is_dir():
            shutil.rmtree(target)
        else:
            target.unlink()
        raise DatasetError(f"{filename} is not a FER2013 dataset: {exc}") from None
    _delete_old_uploads(root, [target, *map(Path, in_use)])
    return dataset


def _delete_old_uploads(root: Path, keep: list[Path]) -> None:
    """All but the newest KEEP_UPLOADS entries of `root`, except those that are or hold a path of `keep`."""
    kept = [path.resolve() for path in keep]
    entries = sorted(root.iterdir(), key=lambda entry: entry.stat().st_mtime_ns, reverse=True)
    for entry in entries[KEEP_UPLOADS:]:
        if any(path == entry.resolve() or entry.resolve() in path.parents for path in kept):
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry, ignore_errors=True)
        else:
            entry.unlink(missing_ok=True)


def _unpack(filename: str, stream: BinaryIO, target: Path) -> None:
    if not zipfile.is_zipfile(stream):
        raise DatasetError(f"{filename} is not a zip archive (or it is damaged)")
    stream.seek(0)
    try:
        with zipfile.ZipFile(stream) as archive:
            members = [m for m in archive.infolist() if not m.is_dir() and not _is_clutter(m.filename)]
            for member in members:
                _refuse_unsafe(filename, member)
            if len(members) > MAX_MEMBERS or sum(m.file_size for m in members) > MAX_UNPACKED_BYTES:
                raise DatasetError(f"{filename} unpacks to more than {MAX_MEMBERS} files or "
                                   f"{MAX_UNPACKED_BYTES / 1e9:.0f} GB; refused")
            target.mkdir(parents=True)
            unpacked = 0
            for member in members:
                destination = target.joinpath(*PurePosixPath(member.filename).parts)
                destination.parent.mkdir(parents=True, exist_ok=True)
                with archive.open(member) as source, open(destination, "xb") as out:
                    while chunk := source.read(CHUNK):
                        unpacked += len(chunk)
                        if unpacked > MAX_UNPACKED_BYTES:  # sizes in the header can lie
                            raise DatasetError(f"{filename} unpacks to more than "
                                               f"{MAX_UNPACKED_BYTES / 1e9:.0f} GB; refused")
                        out.write(chunk)
    except (zipfile.BadZipFile, zlib.error, RuntimeError, OSError, EOFError) as exc:
        shutil.rmtree(target, ignore_errors=True)
        raise DatasetError(f"{filename} cannot be unpacked: {exc}") from None
    except DatasetError:
        shutil.rmtree(target, ignore_errors=True)
        raise


def _is_clutter(name: str) -> bool:
    """Files archivers add (macOS' __MACOSX/ and ._ files, .DS_Store): not part of any dataset."""
    parts = PurePosixPath(name).parts
    return bool(parts) and (parts[0] == "__MACOSX" or parts[-1].startswith("."))


def _refuse_unsafe(filename: str, member: zipfile.ZipInfo) -> None:
    name = member.filename
    parts = PurePosixPath(name).parts
    if (name.startswith("/") or "\\" in name or ".." in parts or (parts and ":" in parts[0])
            or stat.S_ISLNK(member.external_attr >> 16)):
        raise DatasetError(f"{filename} holds an unsafe entry {name!r} (an absolute path, '..' or a link); refused")


def _dataset_root(folder: Path) -> Path:
    """Step into wrapper folders (a zip of 'fer2013/train/...'); a lone CSV is the dataset itself."""
    while True:
        entries = list(folder.iterdir())
        if len(entries) != 1:
            return folder
        only = entries[0]
        if only.is_file():
            return only if only.suffix.lower() == ".csv" else folder
        if only.name.lower() in LAYOUT_NAMES:
            return folder
        folder = only
