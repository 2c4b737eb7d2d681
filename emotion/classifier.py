"""The emotion classifier: a saved Keras model that predicts a batch of face crops in one call."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from emotion.labels import EMOTIONS
from emotion.model_io import ModelFileError, load_keras_model, read_metadata
from emotion.preprocess import prepare_faces

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


class EmotionClassifier:
    """Face crops -> (N, 7) probabilities in EMOTIONS order."""

    def __init__(self, model, *, path: Path | None = None, metadata: dict | None = None):
        import tensorflow as tf

        self.model = model
        self.path = path
        self.metadata = metadata or {}
        self.input_size = int(model.input_shape[1])
        labels = self.metadata.get("labels", list(EMOTIONS))
        if list(labels) != list(EMOTIONS):
            raise ModelFileError(f"{path}: model labels {labels} differ from {list(EMOTIONS)}")
        # One traced graph for every batch size; eager calls are ~20x slower at batch 1.
        spec = tf.TensorSpec((None, self.input_size, self.input_size, 3), tf.float32)
        self._forward = tf.function(lambda x: model(x, training=False), input_signature=[spec])

    @classmethod
    def load(cls, path: str | Path | None = None) -> "EmotionClassifier":
        """Load `path`, or the active model of the registry when None."""
        from emotion.registry import active_model_path

        path = Path(path) if path else active_model_path()
        model = load_keras_model(path)
        return cls(model, path=path, metadata=read_metadata(path))

    @property
    def name(self) -> str:
        return self.path.name if self.path else self.model.name

    @property
    def val_accuracy(self) -> float | None:
        return self.metadata.get("val_accuracy")

    def predict(self, crops, batch_size: int = 64) -> np.ndarray:
        """All crops in as few calls as the batch size allows (one call for a gallery frame)."""
        if len(crops) == 0:
            return np.zeros((0, len(EMOTIONS)), dtype=np.float32)
        outputs = []
        for start in range(0, len(crops), batch_size):
            batch = prepare_faces(crops[start:start + batch_size], self.input_size)
            outputs.append(self._forward(batch).numpy())
        return np.concatenate(outputs).astype(np.float32)
