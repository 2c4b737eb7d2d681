"""Stochastic weight averaging (Izmailov et al. 2018): the running mean of a run's weights after each epoch of
a constant or slowly falling learning rate lands nearer the centre of the basin those epochs wander around,
which generalises better than any one of them. BatchNorm's moving statistics of the mean weights are not the
mean of the statistics, so they are re-estimated before the average is judged.

    average = WeightAverage(run / "average.npz")
    average.add(model, epoch=5)        # after an epoch; kept on disk, so a resumed run goes on averaging
    average.epochs                     # [3, 4, 5]: the epochs in the mean
    average.copy_into(other_model)     # a model of the same architecture gets the mean weights
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np


class WeightAverage:
    """The mean of a model's weights over the epochs added, stored in one .npz file beside the run."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self.mean: list[np.ndarray] = []
        self.epochs: list[int] = []
        if self.path.is_file():
            with np.load(self.path) as stored:
                self.epochs = [int(e) for e in stored["epochs"]]
                self.mean = [stored[f"w{i}"] for i in range(len(stored.files) - 1)]

    def add(self, model, *, epoch: int) -> bool:
        """Fold the model's weights into the mean; an epoch already in it (a resume that re-ran the end of an
        epoch) is not counted twice. Returns whether the mean changed."""
        if epoch in self.epochs:
            return False
        weights = model.get_weights()
        if self.mean and [w.shape for w in weights] != [m.shape for m in self.mean]:
            raise ValueError(f"{self.path} averages a model of another architecture")
        n = len(self.epochs)
        self.mean = ([np.array(w, dtype=np.float64) for w in weights] if not n else
                     [m + (w - m) / (n + 1) for m, w in zip(self.mean, weights)])
        self.epochs.append(epoch)
        self._save()
        return True

    def copy_into(self, model) -> None:
        model.set_weights([m.astype(w.dtype) for m, w in zip(self.mean, model.get_weights())])

    def _save(self) -> None:
        # written to a temporary file first: a run killed mid-write keeps the previous mean
        tmp = self.path.with_name(self.path.stem + ".tmp.npz")
        np.savez(tmp, epochs=np.array(self.epochs), **{f"w{i}": m for i, m in enumerate(self.mean)})
        os.replace(tmp, self.path)
