"""Applying a model's probability calibration at inference (fitted by training/calibration.py).

The network was trained with label smoothing and class weights, so its softmax outputs are
not the frequencies with which it is right. Temperature scaling, softmax(log p / T), fixes the
confidence without changing any face's most likely emotion; log p are the network's logits up to
a per-face constant, which softmax ignores.
"""
from __future__ import annotations

import numpy as np

METHODS = ("temperature",)


def check_calibration(calibration: dict | None) -> None:
    """Raise ValueError for a calibration block this code cannot apply."""
    if calibration is None:
        return
    if calibration.get("method") not in METHODS:
        raise ValueError(f"unknown calibration method {calibration.get('method')!r}; expected one of {METHODS}")
    if not float(calibration.get("temperature", 0)) > 0:
        raise ValueError(f"calibration temperature must be positive, got {calibration.get('temperature')!r}")


def temperature_scale(probabilities: np.ndarray, temperature: float) -> np.ndarray:
    """softmax(log p / T) per row."""
    logits = np.log(np.clip(probabilities, 1e-30, None)) / temperature
    logits -= logits.max(axis=-1, keepdims=True)
    scaled = np.exp(logits)
    return scaled / scaled.sum(axis=-1, keepdims=True)


def calibrate(probabilities: np.ndarray, calibration: dict | None) -> np.ndarray:
    """The calibrated probabilities, or the input unchanged for a model without calibration."""
    if calibration is None:
        return probabilities
    return temperature_scale(probabilities, float(calibration["temperature"])).astype(probabilities.dtype)
