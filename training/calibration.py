"""Fit a model's probability calibration on `val` and store it in the model's metadata.

    python -m training.calibration MODEL.keras [--data ../shared/datasets/fer2013] [--split val]

Temperature scaling (Guo et al. 2017): one T minimising the validation log-loss of
softmax(log p / T); it keeps every top label, so the stored accuracy and confusion matrix stay
true. The block also holds the class prior the calibrated model behaves as if trained under
(what the EM mix estimate in emotion/quantify.py needs): adding a per-class bias b to the scaled
logits and fitting it too makes the posteriors match `val`'s class frequencies f, so the
scaled model's own prior is f * exp(-b). For the shipped model it comes out close to the training
counts times their 1/sqrt(frequency) class weights, as it should.
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import numpy as np

from emotion.calibration import temperature_scale

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def _softmax(logits: np.ndarray) -> np.ndarray:
    exp = np.exp(logits - logits.max(axis=-1, keepdims=True))
    return exp / exp.sum(axis=-1, keepdims=True)


def fit_linear_softmax(design: np.ndarray, labels: np.ndarray, iterations: int = 100) -> np.ndarray:
    """theta minimising the mean log-loss of softmax(design @ theta), design (n, 7, k): Newton's method
    (the loss is convex in theta; the Hessian is the covariance of the design under the model)."""
    n, classes, k = design.shape
    onehot = np.eye(classes)[labels]
    theta = np.zeros(k)
    for _ in range(iterations):
        q = _softmax(design @ theta)
        gradient = np.einsum("nck,nc->k", design, q - onehot) / n
        expected = np.einsum("nck,nc->nk", design, q)
        hessian = (np.tensordot(design * q[:, :, None], design, axes=([0, 1], [0, 1])) - expected.T @ expected) / n
        step = np.linalg.lstsq(hessian, gradient, rcond=None)[0]  # lstsq: biases are defined up to a constant
        theta -= step
        if np.abs(step).max() < 1e-9:
            break
    return theta


def log_loss(probabilities: np.ndarray, labels: np.ndarray) -> float:
    return float(-np.log(np.clip(probabilities[np.arange(len(labels)), labels], 1e-30, None)).mean())


def expected_calibration_error(probabilities: np.ndarray, labels: np.ndarray, bins: int = 15) -> float:
    """Top-label ECE: |accuracy - confidence| per confidence bin, weighted by the bin's share of faces."""
    confidence = probabilities.max(axis=1)
    correct = probabilities.argmax(axis=1) == labels
    which = np.minimum((confidence * bins).astype(int), bins - 1)
    count = np.bincount(which, minlength=bins)
    gap = np.abs(np.bincount(which, correct, bins) - np.bincount(which, confidence, bins))
    return float(gap.sum() / max(count.sum(), 1))


def fit_temperature(probabilities: np.ndarray, labels: np.ndarray) -> float:
    """T within [0.05, 100]: a model that is no better than chance on these faces (an untrained one) gets
    T = 100, which flattens its outputs, rather than the negative T that would reverse them; one that separates
    them perfectly (a stand-in on drawn faces), where the best T tends to 0 and Newton's steps diverge, gets
    0.05; a fit that fails outright keeps the model's own outputs (T = 1)."""
    logits = np.log(np.clip(probabilities, 1e-30, None))
    with np.errstate(all="ignore"):
        inverse = fit_linear_softmax(logits[:, :, None], labels)[0]
    return 1.0 if not np.isfinite(inverse) else float(1.0 / np.clip(inverse, 0.01, 20.0))


def implied_prior(probabilities: np.ndarray, labels: np.ndarray, temperature: float, classes: int) -> np.ndarray:
    """The class prior the temperature-scaled posteriors are calibrated under (see the module's docstring)."""
    logits = np.log(np.clip(probabilities, 1e-30, None)) / temperature
    bias_design = np.broadcast_to(np.eye(classes), (len(labels), classes, classes))
    frequencies = np.bincount(labels, minlength=classes) / len(labels)
    with np.errstate(all="ignore"):
        bias = fit_linear_softmax(np.concatenate([logits[:, :, None], bias_design], axis=2), labels)[1:]
        prior = frequencies * np.exp(-bias)
    if not np.all(np.isfinite(prior)) or prior.sum() <= 0:  # the fit diverged (perfectly separated faces)
        return frequencies
    return prior / prior.sum()


def fit_calibration(probabilities: np.ndarray, labels: np.ndarray) -> dict:
    """The metadata block: temperature, the implied training prior, ECE and log-loss before and after."""
    probabilities = np.asarray(probabilities, dtype=np.float64)
    temperature = fit_temperature(probabilities, labels)
    scaled = temperature_scale(probabilities, temperature)
    return {"method": "temperature", "temperature": round(temperature, 4),
            "prior": implied_prior(probabilities, labels, temperature, probabilities.shape[1]).round(5).tolist(),
            "ece_before": round(expected_calibration_error(probabilities, labels), 4),
            "ece_after": round(expected_calibration_error(scaled, labels), 4),
            "log_loss_before": round(log_loss(probabilities, labels), 4),
            "log_loss_after": round(log_loss(scaled, labels), 4),
            "images": int(len(labels))}


def calibration_of(probabilities: np.ndarray, faces) -> dict:
    """The metadata block for a model's uncalibrated `probabilities` of `faces` (a FaceSet, normally `val`)."""
    block = {**fit_calibration(probabilities, faces.labels), "data": faces.source}
    print(f"calibration: temperature {block['temperature']}, ECE {block['ece_before']} -> {block['ece_after']}, "
          f"log-loss {block['log_loss_before']} -> {block['log_loss_after']} on {block['images']} faces")
    return block


def calibrate_model(model_path: str | Path, faces) -> dict:
    """Fit the calibration of the model file on `faces` and add it to the model's metadata."""
    from emotion.classifier import EmotionClassifier
    from emotion.model_io import read_metadata, write_metadata

    classifier = EmotionClassifier.load(model_path, backend="tensorflow", calibrated=False)  # no ONNX export
    block = calibration_of(classifier.predict(faces.images, batch_size=256), faces)
    write_metadata(model_path, {**read_metadata(model_path), "calibration": block})
    return block


def calibrate_run(run: str | Path, faces) -> None:
    """The trainer's last step: calibrate the run's best model, when it has one, on its validation faces."""
    best = Path(run) / "best.keras"
    if best.is_file():
        calibrate_model(best, faces)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m training.calibration", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model", help="model file (.keras) whose metadata gets the calibration")
    parser.add_argument("--data", help="FER2013 to fit on (default: the model's own data)")
    parser.add_argument("--split", default="val")
    args = parser.parse_args(argv)
    from emotion.model_io import read_metadata
    from training.data import load_split

    data = args.data or read_metadata(args.model).get("data", {}).get("path")
    if not data:
        print("error: the model's metadata names no dataset; pass --data", file=sys.stderr)
        return 2
    calibrate_model(args.model, load_split(data, args.split))
    return 0


if __name__ == "__main__":
    sys.exit(main())
