"""Accuracy where it is used: FER2013 `val` faces rendered into gallery tiles, found by the product's detector,
cropped and classified as the pipeline does, against plain `val` accuracy of the same model.

    python benchmarks/bench_faces_in_gallery.py [--weights PATH] [--face 104] [--scales 0.9,1.0,1.1,1.2,1.3]

Each face is drawn at `--face` px (as classroom-bench draws them) in a 5x5 gallery frame on a dark tile;
the detector (emotion/detect.py, default settings) runs on each frame, every detection is matched to the tile
it overlaps, and its box is cropped at each `--scales` factor around its centre (1.0 = the detector's own
box) before the usual preprocessing. Prints, per scale, the share of faces found and the accuracy on the
found faces, beside the model's accuracy on the dataset's own crops. FER2013's crops hold the whole face
with a margin; the Haar cascade's box is tighter, which is what the scales measure.
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import cv2
import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
DATA = REPO.parent / "shared" / "datasets" / "fer2013"


def scaled_boxes(boxes: np.ndarray, scale: float) -> np.ndarray:
    """Boxes grown (or shrunk) by `scale` around their centres."""
    centre = boxes[:, :2] + boxes[:, 2:] / 2
    size = boxes[:, 2:] * scale
    return np.round(np.concatenate([centre - size / 2, size], axis=1)).astype(int)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--weights", help="model file (default: the active model)")
    parser.add_argument("--data", default=str(DATA))
    parser.add_argument("--face", type=int, default=104, help="drawn face side in px")
    parser.add_argument("--scales", default="0.9,1.0,1.1,1.2,1.3")
    parser.add_argument("--limit", type=int, default=0, help="use only this many val faces (0 = all)")
    parser.add_argument("--views", help="test-time views (default: the model's own)")
    args = parser.parse_args()
    if not Path(args.data).is_dir():
        print(f"skipped: {args.data} not found (FER2013 lives beside the repository)")
        return 0

    from emotion.classifier import EmotionClassifier
    from emotion.classify import crop_faces
    from emotion.detect import FaceDetector
    from emotion.track import iou_matrix
    from training.data import load_split
    from training.evaluate import evaluate

    classifier = EmotionClassifier.load(args.weights, views=args.views)
    val = load_split(args.data, "val")
    if args.limit:
        val = val.subset(args.limit, seed=0)
    plain, _ = evaluate(classifier, val)
    scales = [float(s) for s in args.scales.split(",")]
    detector = FaceDetector()
    rows, cols, width, height = 5, 5, 1280, 720
    tile_w, tile_h = width // cols, height // rows
    rng = np.random.default_rng(0)
    found, correct = 0, {s: 0 for s in scales}
    for start in range(0, len(val), rows * cols):
        frame = np.full((height, width, 3), 32, np.uint8)
        tiles = []
        for k, index in enumerate(range(start, min(start + rows * cols, len(val)))):
            r, c = divmod(k, cols)
            x0, y0 = c * tile_w, r * tile_h
            cv2.rectangle(frame, (x0 + 2, y0 + 2), (x0 + tile_w - 3, y0 + tile_h - 3), (58, 52, 48), -1)
            face = cv2.resize(val.images[index], (args.face, args.face), interpolation=cv2.INTER_CUBIC)
            fx = x0 + (tile_w - args.face) // 2 + int(rng.integers(-8, 9))
            fy = y0 + (tile_h - args.face) // 2 + int(rng.integers(-4, 5))
            frame[fy:fy + args.face, fx:fx + args.face] = face[:, :, None]
            tiles.append((index, np.array([fx, fy, args.face, args.face])))
        detector.reset()  # a new gallery: nothing kept from the last frame's faces
        detections = detector(frame).boxes
        if not len(detections):
            continue
        overlap = iou_matrix(np.stack([box for _, box in tiles]).astype(float), detections.astype(float))
        matched = [(tiles[t][0], detections[overlap[t].argmax()]) for t in range(len(tiles)) if overlap[t].max() > 0.3]
        found += len(matched)
        if not matched:
            continue
        labels = np.array([val.labels[i] for i, _ in matched])
        boxes = np.stack([box for _, box in matched])
        for scale in scales:
            predicted = classifier.predict(crop_faces(frame, scaled_boxes(boxes, scale))).argmax(axis=1)
            correct[scale] += int((predicted == labels).sum())
    print(f"model {classifier.name} ({classifier.views} views): val accuracy on the dataset's crops "
          f"{plain['accuracy']:.4f} ({len(val)} faces)")
    print(f"detector found {found} of {len(val)} faces ({found / len(val):.1%}) drawn at {args.face} px")
    for scale in scales:
        print(f"  box x{scale:.2f}: accuracy {correct[scale] / max(found, 1):.4f} on the found faces")
    return 0


if __name__ == "__main__":
    sys.exit(main())
