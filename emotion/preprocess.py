"""Face-crop preprocessing shared by training and inference.

FER2013 faces are 48x48 grayscale. The network sees every crop the way it saw
the training images: gray -> shrunk to the dataset's 48 px -> enlarged to the
model's input size -> three equal channels -> pixels scaled to [-1, 1]
(InceptionV3's convention). Shrinking a sharp 120 px webcam face to 48 px first
gives it the same blur the model learnt on.
"""
from __future__ import annotations

import cv2
import numpy as np

SOURCE_SIZE = 48  # FER2013 image side, the resolution every crop passes through


def scale_pixels(x):
    """Map 0..255 to [-1, 1]; plain arithmetic so it serves NumPy and TensorFlow alike."""
    return x / 127.5 - 1.0


def to_gray(image: np.ndarray) -> np.ndarray:
    """BGR, BGRA or gray uint8 image -> 2-D gray uint8."""
    if image.ndim == 2:
        return image
    if image.ndim == 3 and image.shape[2] == 1:
        return image[:, :, 0]
    if image.ndim == 3 and image.shape[2] == 3:
        return cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
    if image.ndim == 3 and image.shape[2] == 4:
        return cv2.cvtColor(image, cv2.COLOR_BGRA2GRAY)
    raise ValueError(f"expected a gray or BGR image, got an array of shape {image.shape}")


def to_source_size(gray: np.ndarray) -> np.ndarray:
    """Any gray crop -> 48x48 uint8, the form datasets are stored in."""
    if gray.shape == (SOURCE_SIZE, SOURCE_SIZE):
        return gray
    interpolation = cv2.INTER_AREA if gray.shape[0] > SOURCE_SIZE else cv2.INTER_LINEAR
    return cv2.resize(gray, (SOURCE_SIZE, SOURCE_SIZE), interpolation=interpolation)


# Test-time views of a face, averaged by the classifier: (where the crop sits: centre or a corner, mirrored).
# Corner crops need a model trained on random crops (crop_size < 48); flips suit every model.
VIEW_SETS = {
    "centre": (("centre", False),),
    "flip": (("centre", False), ("centre", True)),
    "five": tuple((place, False) for place in ("centre", "top-left", "top-right", "bottom-left", "bottom-right")),
    "ten": tuple((place, flip) for flip in (False, True)
                 for place in ("centre", "top-left", "top-right", "bottom-left", "bottom-right")),
}


def crop_at(small: np.ndarray, crop_size: int, place: str = "centre") -> np.ndarray:
    """A `crop_size` square of a 48 px face at its centre or a corner (the whole face when crop_size is 0)."""
    side = small.shape[0]
    if not crop_size or crop_size >= side:
        return small
    margin = side - crop_size
    top, left = {"centre": (margin // 2, margin // 2), "top-left": (0, 0), "top-right": (0, margin),
                 "bottom-left": (margin, 0), "bottom-right": (margin, margin)}[place]
    return small[top:top + crop_size, left:left + crop_size]


def prepare_faces(crops: list[np.ndarray] | np.ndarray, input_size: int, *, crop_size: int = 0,
                  views: str = "centre") -> np.ndarray:
    """Face crops (any size, gray or BGR) -> float32 batch (N x V, size, size, 3) for the network, the V views
    (VIEW_SETS) of each face one after the other. `crop_size` (< 48) takes a square of the 48 px face first, as
    models trained on random crops expect."""
    chosen = VIEW_SETS[views]
    if not crop_size and any(place != "centre" for place, _ in chosen):
        raise ValueError(f"the {views!r} views crop the face: only a model trained on crops uses them")
    batch = np.empty((len(crops) * len(chosen), input_size, input_size, 3), dtype=np.float32)
    for i, crop in enumerate(crops):
        small = to_source_size(to_gray(np.asarray(crop)))
        for j, (place, flip) in enumerate(chosen):
            view = crop_at(small, crop_size, place)
            big = cv2.resize(view[:, ::-1] if flip else view, (input_size, input_size), interpolation=cv2.INTER_LINEAR)
            batch[i * len(chosen) + j] = scale_pixels(big.astype(np.float32))[:, :, None]
    return batch
