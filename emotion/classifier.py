"""The emotion classifier: a saved Keras model that predicts a batch of face crops in one call.

Inference runs in ONNX Runtime when it can (measured here: about 2x TensorFlow's
speed at batch 1, 1.25x at batch 32, same outputs to 1e-6); the model is
exported once per model file into the cache folder and checked against
TensorFlow before use. TensorFlow stays the fallback, and the training engine. `backend="onnx-int8"`
runs a dynamically quantized copy of that export (int8 weights, onnxruntime.quantization.quantize_dynamic).
"""
from __future__ import annotations

import hashlib
import logging
import os
from pathlib import Path

import numpy as np

from emotion.calibration import calibrate, check_calibration
from emotion.labels import EMOTIONS
from emotion.model_io import ModelFileError, load_keras_model, read_metadata
from emotion.preprocess import VIEW_SETS, prepare_faces
from emotion.settings import cache_dir

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
log = logging.getLogger(__name__)
BACKENDS = ("auto", "onnx", "onnx-int8", "tensorflow")
INT8_TOLERANCE = 0.1  # probabilities of the int8 model may differ this much from TensorFlow's


def _file_digest(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()[:20]


class EmotionClassifier:
    """Face crops -> (N, 7) probabilities in EMOTIONS order, calibrated when the model's metadata
    holds a calibration (`calibrated=False` gives the network's own outputs, to fit one)."""

    def __init__(self, model, *, path: Path | None = None, metadata: dict | None = None, backend: str = "tensorflow",
                 calibrated: bool = True, views: str | None = None):
        import tensorflow as tf

        if backend not in BACKENDS:
            raise ValueError(f"unknown backend {backend!r}; expected one of {', '.join(BACKENDS)}")
        self.model = model
        self.path = path
        self.metadata = metadata or {}
        self.input_size = int(model.input_shape[1])
        preprocessing = self.metadata.get("preprocessing", {})
        # models trained on random crops of the 48 px face see crops of it (0 = the whole face); each face is
        # classified as the average over the model's test-time views (emotion.preprocess.VIEW_SETS)
        self.crop_size = int(preprocessing.get("crop_size", 0))
        self.views = views or preprocessing.get("views", "centre")
        if self.views not in VIEW_SETS:
            raise ModelFileError(f"{path}: unknown test-time views {self.views!r}; expected one of "
                                 f"{', '.join(VIEW_SETS)}")
        labels = self.metadata.get("labels", list(EMOTIONS))
        if list(labels) != list(EMOTIONS):
            raise ModelFileError(f"{path}: model labels {labels} differ from {list(EMOTIONS)}")
        self.calibration = self.metadata.get("calibration") if calibrated else None
        try:
            check_calibration(self.calibration)
        except ValueError as exc:
            raise ModelFileError(f"{path}: {exc}") from None
        # One traced graph for every batch size; eager calls are ~20x slower at batch 1.
        spec = tf.TensorSpec((None, self.input_size, self.input_size, 3), tf.float32)
        self._tf_forward = tf.function(tf.autograph.experimental.do_not_convert(lambda x: model(x, training=False)),
                                       input_signature=[spec])
        self._forward = lambda batch: self._tf_forward(batch).numpy()
        self.backend = "tensorflow"
        self.backend_note = ""
        if backend != "tensorflow":
            try:
                self._use_onnx(int8=backend == "onnx-int8")
            except Exception as exc:  # any failure keeps TensorFlow, which always works
                self.backend_note = f"ONNX Runtime not used: {exc}"
                if backend != "auto":
                    raise ModelFileError(f"{path}: {self.backend_note}") from exc
                log.info(self.backend_note)

    def _use_onnx(self, int8: bool = False) -> None:
        import onnxruntime

        if self.path is None:
            raise ValueError("the model has no file to name its ONNX export after")
        onnx_path = cache_dir() / "onnx" / f"{_file_digest(self.path)}.onnx"
        # smooth random images (8 px blocks), closer to faces than pixel noise: white noise inflated the int8
        # model's error on a small stand-in network to 0.14 where faces gave under 0.1
        blocks = np.random.default_rng(0).uniform(-1, 1, (4, -(-self.input_size // 8), -(-self.input_size // 8), 3))
        probe = blocks.repeat(8, axis=1).repeat(8, axis=2)[:, :self.input_size, :self.input_size].astype(np.float32)
        expected = self._tf_forward(probe).numpy()  # also makes the model "called", which export needs
        if not onnx_path.exists():
            onnx_path.parent.mkdir(parents=True, exist_ok=True)
            partial = onnx_path.with_suffix(f".{os.getpid()}.tmp")
            self.model.export(str(partial), format="onnx", verbose=False)
            os.replace(partial, onnx_path)
        if int8:
            onnx_path = self._quantized(onnx_path)
        options = onnxruntime.SessionOptions()
        options.log_severity_level = 3
        # threads that spin while waiting for work steal the CPU from the other classes' detection (measured
        # here with a training run beside it: 419 faces/s at batch 32 without spinning, 235 with it)
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        session = onnxruntime.InferenceSession(str(onnx_path), options, providers=["CPUExecutionProvider"])
        input_name = session.get_inputs()[0].name
        got = session.run(None, {input_name: probe})[0]
        if not np.allclose(got, expected, atol=INT8_TOLERANCE if int8 else 1e-4):
            raise ValueError(f"its outputs differ from TensorFlow's by {np.abs(got - expected).max():.2g}")
        self._forward = lambda batch: session.run(None, {input_name: batch})[0]
        self.backend = "onnx-int8" if int8 else "onnx"

    @staticmethod
    def _quantized(onnx_path: Path) -> Path:
        """The int8 copy of a float32 export, made once beside it."""
        from onnxruntime.quantization import QuantType, quantize_dynamic

        int8_path = onnx_path.with_suffix(".int8.onnx")
        if not int8_path.exists():
            partial = onnx_path.with_suffix(f".int8.{os.getpid()}.tmp")
            quantize_dynamic(str(onnx_path), str(partial), weight_type=QuantType.QInt8)
            os.replace(partial, int8_path)
        return int8_path

    @classmethod
    def load(cls, path: str | Path | None = None, backend: str = "auto", *,
             calibrated: bool = True, views: str | None = None) -> "EmotionClassifier":
        """Load `path`, or the active model of the registry when None; `views` overrides the model's own."""
        from emotion.registry import active_model_path

        path = Path(path) if path else active_model_path()
        model = load_keras_model(path)
        return cls(model, path=path, metadata=read_metadata(path), backend=backend, calibrated=calibrated, views=views)

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
        views = len(VIEW_SETS[self.views])
        outputs = [self._forward(prepare_faces(chunk, self.input_size, crop_size=self.crop_size, views=self.views))
                   .reshape(len(chunk), views, len(EMOTIONS)).mean(axis=1)
                   for chunk in (crops[start:start + batch_size] for start in range(0, len(crops), batch_size))]
        return calibrate(np.concatenate(outputs).astype(np.float32), self.calibration)
