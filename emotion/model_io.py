"""Saving and loading emotion models: a `.keras` file plus a JSON of metadata beside it.

The shipped InceptionV3 has 22 M parameters (88 MB as float32). Weights are
stored as float16 inside the standard `.keras` zip (~43 MB, under the 50 MB we
ship) and load back into a float32 model with Keras' ordinary loader.
"""
from __future__ import annotations

import json
import os
import shutil
import tempfile
import zipfile
from pathlib import Path

import numpy as np

from emotion.labels import EMOTIONS

WEIGHTS_ENTRY = "model.weights.h5"


class ModelFileError(RuntimeError):
    """A weights file that is missing, corrupt or not an emotion model; the message names it."""


def metadata_path(model_path: str | Path) -> Path:
    return Path(model_path).with_suffix(".json")


def read_metadata(model_path: str | Path) -> dict:
    """The JSON beside a model, or {} when there is none (e.g. a legacy .h5)."""
    meta = metadata_path(model_path)
    if not meta.is_file():
        return {}
    try:
        return json.loads(meta.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise ModelFileError(f"model metadata {meta} is not valid JSON: {exc}") from exc


def _halve_weights(h5_in: Path, h5_out: Path) -> None:
    import h5py

    with h5py.File(h5_in, "r") as src, h5py.File(h5_out, "w") as dst:
        for key, value in src.attrs.items():
            dst.attrs[key] = value

        def copy(name, obj):
            if isinstance(obj, h5py.Group):
                group = dst.require_group(name)
                for key, value in obj.attrs.items():
                    group.attrs[key] = value
            else:
                data = obj[()]
                if isinstance(data, np.ndarray) and data.dtype == np.float32:
                    data = data.astype(np.float16)
                dst.create_dataset(name, data=data)

        src.visititems(copy)


def save_model(model, path: str | Path, metadata: dict, *, half: bool = True) -> Path:
    """Write `path` (.keras, no optimizer state) and its metadata JSON atomically."""
    import keras

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    inference = keras.models.clone_model(model)  # uncompiled: no optimizer state in the file
    inference.set_weights(model.get_weights())
    with tempfile.TemporaryDirectory(dir=path.parent) as tmp:
        plain = Path(tmp) / "plain.keras"
        inference.save(plain)
        packed = Path(tmp) / "packed.keras"
        if half:
            with zipfile.ZipFile(plain) as zin, zipfile.ZipFile(packed, "w", zipfile.ZIP_DEFLATED) as zout:
                for item in zin.infolist():
                    if item.filename == WEIGHTS_ENTRY:
                        zin.extract(item, tmp)
                        _halve_weights(Path(tmp) / WEIGHTS_ENTRY, Path(tmp) / "half.h5")
                        zout.write(Path(tmp) / "half.h5", WEIGHTS_ENTRY)
                    else:
                        zout.writestr(item, zin.read(item.filename))
        else:
            shutil.copy(plain, packed)
        os.replace(packed, path)
    write_metadata(path, {"labels": list(EMOTIONS), **metadata, "file": path.name,
                          "weights_dtype": "float16" if half else "float32"})
    return path


def copy_model(source: str | Path, target: Path, metadata: dict) -> Path:
    """Put a copy of the model file `source` at `target` with `metadata` beside it. The copy is made under
    a name that is not .keras and renamed when complete, so a half-copied model is never listed or loaded."""
    partial = target.with_name(target.name + ".tmp")
    shutil.copyfile(source, partial)
    write_metadata(target, metadata)
    os.replace(partial, target)
    return target


def write_metadata(model_path: str | Path, metadata: dict) -> None:
    """The metadata JSON beside a model file, written atomically."""
    tmp = metadata_path(model_path).with_suffix(".json.tmp")
    tmp.write_text(json.dumps(metadata, indent=2, default=_json_default))
    os.replace(tmp, metadata_path(model_path))


def _json_default(value):
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"cannot store {type(value).__name__} in model metadata")


def load_keras_model(path: str | Path):
    """Load a `.keras` or legacy `.h5` model and check it is a 7-emotion classifier."""
    import keras

    path = Path(path)
    if not path.is_file():
        raise ModelFileError(
            f"model file not found: {path} (expected a .keras or .h5 emotion model; "
            "the shipped default is weights/inceptionv3_fer2013.keras)"
        )
    if path.suffix.lower() not in (".keras", ".h5"):
        raise ModelFileError(f"{path} is not a Keras model file; expected a .keras or legacy .h5 file")
    try:
        model = keras.models.load_model(path, compile=False)
    except Exception as exc:  # Keras raises many types for broken files
        raise ModelFileError(f"cannot load model file {path}: it is corrupt or not a Keras model ({exc})") from exc
    inputs, outputs = model.input_shape, model.output_shape
    if isinstance(inputs, list) or len(inputs) != 4 or inputs[1] != inputs[2] or inputs[3] not in (1, 3):
        raise ModelFileError(f"{path} takes input {inputs}; expected square images (None, S, S, 3)")
    if isinstance(outputs, list) or outputs[-1] != len(EMOTIONS):
        raise ModelFileError(f"{path} outputs {outputs}; expected {len(EMOTIONS)} emotion probabilities")
    return model
