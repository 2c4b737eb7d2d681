"""Sharpness-aware minimisation (SAM, Foret et al. 2021) for a compiled Keras model.

Each step first moves the weights to the worst point within a radius rho along the batch's gradient, takes the
gradient there, and applies that gradient to the original weights with the model's own optimizer (its clipping,
weight decay and learning rate included). It seeks minima whose whole neighbourhood has a low loss, which
generalise better on noisy labels such as FER2013's; each step costs two forward and backward passes. Switching
it on only for the last epochs of a run gains about as much as using it throughout (Zhou et al. 2025).

    step = SharpnessAwareStep(model, rho=0.05)   # model compiled as training.train compiles it
    logs = step(x, y, w)                         # instead of model.train_on_batch(x, y, sample_weight=w, ...)
    logs["loss"], logs["accuracy"]               # the loss and weighted accuracy at the original weights
"""
from __future__ import annotations

import tensorflow as tf


class SharpnessAwareStep:
    """One SAM training step of `model` on a batch (x, targets y, sample weights w)."""

    def __init__(self, model, rho: float):
        self.model, self.rho = model, float(rho)
        self._step = tf.function(self._train_step)

    def _loss(self, x, y, w):
        predictions = self.model(x, training=True)
        return self.model.loss(y, predictions, sample_weight=w), predictions

    def _train_step(self, x, y, w):
        variables = self.model.trainable_variables
        with tf.GradientTape() as tape:
            loss, predictions = self._loss(x, y, w)
        gradients = tape.gradient(loss, variables)
        scale = self.rho / (tf.linalg.global_norm(gradients) + 1e-12)
        climbs = [g * scale for g in gradients]
        for variable, climb in zip(variables, climbs):
            variable.assign_add(climb)
        with tf.GradientTape() as tape:
            sharp_loss, _ = self._loss(x, y, w)
        sharp_gradients = tape.gradient(sharp_loss, variables)
        for variable, climb in zip(variables, climbs):
            variable.assign_sub(climb)
        self.model.optimizer.apply_gradients(zip(sharp_gradients, variables))
        right = tf.cast(tf.argmax(predictions, axis=-1) == tf.argmax(y, axis=-1), tf.float32)
        w = tf.cast(w, tf.float32)
        return {"loss": loss, "accuracy": tf.reduce_sum(right * w) / tf.reduce_sum(w)}

    def __call__(self, x, y, w) -> dict:
        return {k: float(v) for k, v in self._step(x, tf.convert_to_tensor(y, tf.float32), w).items()}
