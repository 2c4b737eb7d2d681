"""tf.data pipelines: augmented, shuffled training batches and prepared validation arrays."""
from __future__ import annotations

import numpy as np
import tensorflow as tf
import keras

from emotion.labels import EMOTIONS
from emotion.preprocess import SOURCE_SIZE, prepare_faces, scale_pixels
from training.data import FaceSet
from training.teacher import distilled


def make_augmenter(seed: int, strength: float = 1.0) -> keras.Sequential:
    """Small geometric and photometric changes a webcam face plausibly shows: flips, and at `strength` 1 turns
    of up to 10 degrees, 10 % shifts and zoom, 20 % brightness and 30 % contrast; `strength` scales those ranges
    (a late stage of training may weaken them, 0 = flips only)."""
    layers = [keras.layers.RandomFlip("horizontal", seed=seed)]
    if strength > 0:
        layers += [
            keras.layers.RandomRotation(strength * 10 / 360, fill_mode="reflect", seed=seed + 1),
            keras.layers.RandomTranslation(strength * 0.1, strength * 0.1, fill_mode="reflect", seed=seed + 2),
            keras.layers.RandomZoom(strength * 0.1, fill_mode="reflect", seed=seed + 3),
            keras.layers.RandomBrightness(strength * 0.2, value_range=(0, 255), seed=seed + 4),
            keras.layers.RandomContrast(strength * 0.3, value_range=(0, 255), seed=seed + 5),
        ]
    return keras.Sequential(layers, name="augment")


def random_erase(images: tf.Tensor, probability: float, max_fraction: float = 0.4) -> tf.Tensor:
    """Blank a random square in some images (cutout): the model learns not to rely on one region."""
    batch, height, width = tf.shape(images)[0], tf.shape(images)[1], tf.shape(images)[2]
    side = tf.cast(tf.random.uniform([batch], 0.15, max_fraction) * tf.cast(height, tf.float32), tf.int32)
    top = tf.cast(tf.random.uniform([batch]) * tf.cast(height - side, tf.float32), tf.int32)
    left = tf.cast(tf.random.uniform([batch]) * tf.cast(width - side, tf.float32), tf.int32)
    rows = tf.range(height)[None, :, None]
    cols = tf.range(width)[None, None, :]
    inside = ((rows >= top[:, None, None]) & (rows < (top + side)[:, None, None])
              & (cols >= left[:, None, None]) & (cols < (left + side)[:, None, None]))
    chosen = tf.random.uniform([batch]) < probability
    mask = inside & chosen[:, None, None]
    return tf.where(mask[..., None], tf.fill(tf.shape(images), 127.5), images)


def random_crops(images: tf.Tensor, crop_size: int) -> tf.Tensor:
    """A random `crop_size` square of each image, at whole-pixel offsets (an exact copy of those pixels):
    the training half of crop-based training, whose inference half is the centre crop (or the average of
    several crops) in emotion.preprocess."""
    batch, side = tf.shape(images)[0], tf.shape(images)[1]
    offsets = tf.random.uniform([batch, 2], 0, side - crop_size + 1, dtype=tf.int32)
    scale = tf.cast(side - 1, tf.float32)
    start = tf.cast(offsets, tf.float32) / scale
    boxes = tf.concat([start, start + (crop_size - 1) / scale], axis=1)
    return tf.image.crop_and_resize(images, boxes, tf.range(batch), (crop_size, crop_size), method="bilinear")


def mixup(x: tf.Tensor, y: tf.Tensor, w: tf.Tensor, alpha: float) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
    """Blend each example with another of the batch by a Beta(alpha, alpha) weight (Zhang et al. 2018);
    labels and sample weights are blended alike, so each label still sums to one."""
    batch = tf.shape(x)[0]
    gamma_a = tf.random.gamma([batch], alpha)
    gamma_b = tf.random.gamma([batch], alpha)
    lam = gamma_a / (gamma_a + gamma_b)
    partner = tf.random.shuffle(tf.range(batch))
    def mix(t, weight):
        return weight * t + (1 - weight) * tf.gather(t, partner)
    return mix(x, lam[:, None, None, None]), mix(y, lam[:, None]), mix(w, lam)


def training_batches(faces: FaceSet, *, input_size: int, batch_size: int, epoch: int, seed: int,
                     sample_weights: np.ndarray, augment: bool, erase_probability: float,
                     augment_strength: float = 1.0, crop_size: int = 0, mixup_alpha: float = 0.0,
                     skip_batches: int = 0, teacher: np.ndarray | None = None, distill: float = 0.0) -> tf.data.Dataset:
    """One epoch of (x, target y, weight) batches; the order depends only on (seed, epoch),
    so a resumed run can skip exactly the batches it already trained on. `crop_size` (< 48) trains on random
    crops of the faces, `mixup_alpha` (> 0) on blended pairs; `augment_strength` scales the augmenter's ranges.
    y is the one-hot label, or with `teacher` (N, 7 probabilities, training.teacher) the blend
    (1 - distill) * label + distill * teacher; the class weight stays the label's."""
    order = np.random.default_rng(seed + epoch).permutation(len(faces))
    images = faces.images[order][..., None].astype(np.float32)
    labels = faces.labels[order]
    onehot = np.eye(len(EMOTIONS), dtype=np.float32)[labels]
    if teacher is not None and distill > 0:
        onehot = distilled(onehot, teacher[order], distill)
    weights = sample_weights[labels].astype(np.float32)
    dataset = tf.data.Dataset.from_tensor_slices((images, onehot, weights))
    dataset = dataset.batch(batch_size, drop_remainder=True).skip(skip_batches)
    augmenter = make_augmenter(seed + epoch, augment_strength) if augment else None

    def prepare(x, y, w):
        if augmenter is not None:
            x = augmenter(x, training=True)
            if erase_probability > 0:
                x = random_erase(x, erase_probability)
        if crop_size and crop_size < SOURCE_SIZE:
            x = random_crops(x, crop_size)
        x = tf.image.resize(tf.clip_by_value(x, 0.0, 255.0), (input_size, input_size), method="bilinear")
        x = tf.image.grayscale_to_rgb(x)
        if mixup_alpha > 0:
            x, y, w = mixup(x, y, w, mixup_alpha)
        return scale_pixels(x), y, w

    return dataset.map(prepare, num_parallel_calls=tf.data.AUTOTUNE).prefetch(2)


def batches_per_epoch(faces: FaceSet, batch_size: int) -> int:
    return len(faces) // batch_size


def validation_arrays(faces: FaceSet, input_size: int, crop_size: int = 0, views: str = "centre"
                      ) -> tuple[np.ndarray, np.ndarray]:
    """Validation faces through the very preprocessing inference uses, prepared once: each face's test-time
    `views` (emotion.preprocess.VIEW_SETS) one after the other, and one one-hot label per face."""
    return (prepare_faces(faces.images, input_size, crop_size=crop_size, views=views),
            np.eye(len(EMOTIONS), dtype=np.float32)[faces.labels])
