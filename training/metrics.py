"""Classification metrics for the seven emotions, in plain NumPy."""
from __future__ import annotations

import numpy as np

from emotion.labels import EMOTIONS


def confusion_matrix(true: np.ndarray, predicted: np.ndarray) -> np.ndarray:
    """Rows are true emotions, columns predicted ones, in EMOTIONS order."""
    n = len(EMOTIONS)
    return np.bincount(true * n + predicted, minlength=n * n).reshape(n, n)


def classification_report(true: np.ndarray, probabilities: np.ndarray) -> dict:
    """Accuracy, per-class precision/recall/F1/support and the confusion matrix, JSON-ready."""
    predicted = probabilities.argmax(axis=1)
    matrix = confusion_matrix(true, predicted)
    per_class = {}
    for i, name in enumerate(EMOTIONS):
        tp = matrix[i, i]
        precision = tp / matrix[:, i].sum() if matrix[:, i].sum() else 0.0
        recall = tp / matrix[i].sum() if matrix[i].sum() else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        per_class[name] = {"precision": round(float(precision), 4), "recall": round(float(recall), 4),
                           "f1": round(float(f1), 4), "support": int(matrix[i].sum())}
    return {
        "accuracy": round(float((predicted == true).mean()), 4) if len(true) else 0.0,
        "macro_f1": round(float(np.mean([c["f1"] for c in per_class.values()])), 4),
        "images": int(len(true)),
        "per_class": per_class,
        "confusion_matrix": matrix.tolist(),
        "labels": list(EMOTIONS),
    }
