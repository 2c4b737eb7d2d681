"""Faces, datasets, frames and videos the tests make themselves.

Drawn cartoon faces: OpenCV's Haar cascade finds them, and each emotion has
its own mouth, brows and eyes, so a small model learns them in seconds.
"""
from __future__ import annotations

import csv
import itertools
from pathlib import Path

import cv2
import numpy as np

from emotion.labels import EMOTIONS, FER2013_CSV_INDEX


def draw_face(emotion: str, size: int = 48, rng: np.random.Generator | None = None) -> np.ndarray:
    """A gray face of `size` px showing `emotion`, with small random variation."""
    rng = rng or np.random.default_rng(0)
    s = 200  # draw big, then shrink: smooth edges
    img = np.full((s, s), int(rng.integers(70, 110)), np.uint8)
    c = s // 2 + int(rng.integers(-4, 5))
    skin = int(rng.integers(185, 220))
    cv2.ellipse(img, (c, c + 6), (72, 92), 0, 0, 360, skin, -1)
    eye_y, eye_dx = c - 22, 32
    eye_h = {"surprise": 10, "fear": 10, "angry": 7, "disgust": 7}.get(emotion, 8)
    for side in (-1, 1):
        cv2.ellipse(img, (c + side * eye_dx, eye_y), (17, eye_h), 0, 0, 360, 55, -1)
        inner, outer = (c + side * 14, eye_y - 22), (c + side * 52, eye_y - 22)
        if emotion == "angry":
            inner = (inner[0], inner[1] + 14)
        elif emotion in ("surprise", "fear"):
            inner, outer = (inner[0], inner[1] - 7), (outer[0], outer[1] - (2 if emotion == "fear" else 7))
        elif emotion == "sad":
            inner = (inner[0], inner[1] - 8)
        elif emotion == "disgust" and side == 1:
            inner, outer = (inner[0], inner[1] + 8), (outer[0], outer[1] + 4)
        cv2.line(img, inner, outer, 60, 7)
    cv2.line(img, (c, c - 14), (c, c + 20), 160, 5)
    mouth = (c, c + 46)
    if emotion == "happy":
        cv2.ellipse(img, (c, c + 34), (34, 22), 0, 10, 170, 45, 8)
    elif emotion == "sad":
        cv2.ellipse(img, (c, c + 64), (30, 18), 0, 190, 350, 45, 8)
    elif emotion == "surprise":
        cv2.ellipse(img, mouth, (12, 16), 0, 0, 360, 50, -1)
    elif emotion == "fear":
        cv2.rectangle(img, (c - 26, c + 42), (c + 26, c + 52), 50, -1)
    elif emotion == "angry":
        cv2.rectangle(img, (c - 26, c + 44), (c + 26, c + 50), 40, -1)
    elif emotion == "disgust":
        pts = np.array([[c - 30, c + 50], [c - 10, c + 42], [c + 10, c + 52], [c + 30, c + 40]], np.int32)
        cv2.polylines(img, [pts], False, 45, 8)
        cv2.line(img, (c - 12, c + 14), (c + 12, c + 14), 120, 4)
    else:  # neutral
        cv2.line(img, (c - 24, c + 48), (c + 24, c + 48), 60, 6)
    img = cv2.GaussianBlur(img, (0, 0), 2.5)
    img = cv2.resize(img, (size, size), interpolation=cv2.INTER_AREA)
    noise = rng.normal(0, 3, img.shape)
    return np.clip(img.astype(np.float64) * rng.uniform(0.9, 1.1) + noise, 0, 255).astype(np.uint8)


def face_set(per_class: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(N, 48, 48) uint8 faces and their EMOTIONS indices."""
    rng = np.random.default_rng(seed)
    images, labels = [], []
    for index, emotion in enumerate(EMOTIONS):
        for _ in range(per_class):
            images.append(draw_face(emotion, 48, rng))
            labels.append(index)
    return np.stack(images), np.asarray(labels)


def write_folder_dataset(root: Path, per_class: dict[str, int] | int, seed: int = 0,
                         splits: tuple[str, ...] = ("train", "val")) -> Path:
    """<root>/<split>/<emotion>/*.png in FER2013's folder layout."""
    rng = np.random.default_rng(seed)
    counts = per_class if isinstance(per_class, dict) else dict.fromkeys(EMOTIONS, per_class)
    for split in splits:
        for emotion, count in counts.items():
            folder = root / split / emotion
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(count):
                cv2.imwrite(str(folder / f"{split}_{emotion}_{i}.png"), draw_face(emotion, 48, rng))
    return root


def write_csv_dataset(path: Path, per_class: int, seed: int = 0) -> Path:
    """Kaggle's fer2013.csv form, with Training and PublicTest rows."""
    rng = np.random.default_rng(seed)
    code = {name: index for index, name in FER2013_CSV_INDEX.items()}
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["emotion", "pixels", "Usage"])
        for usage in ("Training", "PublicTest"):
            for emotion in EMOTIONS:
                for _ in range(per_class):
                    pixels = " ".join(map(str, draw_face(emotion, 48, rng).ravel()))
                    writer.writerow([code[emotion], pixels, usage])
    return path


def gallery_frame(emotions: list[str | None], *, cols: int = 5, size=(1280, 720), face: int = 100,
                  seed: int = 0) -> tuple[np.ndarray, list[tuple[int, int, int, int]]]:
    """A video-call gallery: one tile per entry (None = camera off). Returns the BGR frame
    and each shown face's (x, y, w, h)."""
    rng = np.random.default_rng(seed)
    width, height = size
    rows = -(-len(emotions) // cols)
    tile_w, tile_h = width // cols, height // rows
    frame = np.full((height, width, 3), 40, np.uint8)
    boxes = []
    for i, emotion in enumerate(emotions):
        x, y = (i % cols) * tile_w, (i // cols) * tile_h
        cv2.rectangle(frame, (x + 2, y + 2), (x + tile_w - 3, y + tile_h - 3), (110, 118, 126), -1)
        if emotion is None:
            continue
        fx, fy = x + (tile_w - face) // 2, y + (tile_h - face) // 2
        frame[fy:fy + face, fx:fx + face] = cv2.cvtColor(draw_face(emotion, face, rng), cv2.COLOR_GRAY2BGR)
        boxes.append((fx, fy, face, face))
    return frame, boxes


def write_video(path: Path, frames, fps: int = 4) -> Path:
    """Encode BGR frames with PyAV (H.264 when available). `frames` is streamed, so a long video made by a
    generator never sits in memory whole."""
    import av

    frames = iter(frames)
    first = next(frames)
    height, width = first.shape[:2]
    with av.open(str(path), mode="w") as container:
        try:
            stream = container.add_stream("libx264", rate=fps)
        except Exception:
            stream = container.add_stream("mpeg4", rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        for frame in itertools.chain([first], frames):
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="bgr24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def write_audio_only(path: Path, seconds: float = 2.0) -> Path:
    """A valid media file with a sound track and no video stream."""
    import av

    rate = 16000
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("aac", rate=rate)
        stream.layout = "mono"
        samples = (0.1 * np.sin(np.arange(int(seconds * rate)) * 2 * np.pi * 440 / rate)).astype(np.float32)
        for start in range(0, len(samples), 1024):
            frame = av.AudioFrame.from_ndarray(samples[None, start:start + 1024], format="fltp", layout="mono")
            frame.sample_rate = rate
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def write_y4m(path: Path, frames, fps: int = 30) -> Path:
    """A raw YUV4MPEG2 file for Chromium's fake camera."""
    frames = list(frames)
    height, width = frames[0].shape[:2]
    with open(path, "wb") as f:
        f.write(f"YUV4MPEG2 W{width} H{height} F{fps}:1 Ip A1:1 C420jpeg\n".encode())
        for frame in frames:
            f.write(b"FRAME\n")
            f.write(cv2.cvtColor(frame, cv2.COLOR_BGR2YUV_I420).tobytes())
    return path


def speaker_frame(speaker: str, strip: list[str | None], *, size=(1280, 720), face: int = 100,
                  speaker_face: int = 300, seed: int = 0) -> tuple[np.ndarray, list[tuple[int, int, int, int]]]:
    """A call's speaker view: a strip of thumbnails (None = camera off) above one big tile. Returns the BGR
    frame and each shown face's (x, y, w, h), the speaker's last."""
    rng = np.random.default_rng(seed)
    width, height = size
    strip_h = height // 5
    top, boxes = gallery_frame(strip, cols=len(strip), size=(width, strip_h), face=min(face, strip_h - 10),
                               seed=seed)
    frame = np.full((height, width, 3), 40, np.uint8)
    frame[:strip_h] = top
    cv2.rectangle(frame, (2, strip_h + 2), (width - 3, height - 3), (96, 104, 112), -1)
    fx, fy = (width - speaker_face) // 2, strip_h + (height - strip_h - speaker_face) // 2
    frame[fy:fy + speaker_face, fx:fx + speaker_face] = cv2.cvtColor(draw_face(speaker, speaker_face, rng),
                                                                     cv2.COLOR_GRAY2BGR)
    return frame, boxes + [(fx, fy, speaker_face, speaker_face)]


def classroom_frame(emotions: list[str], *, rows: int = 2, size=(1280, 720), seed: int = 0
                    ) -> tuple[np.ndarray, list[tuple[int, int, int, int]]]:
    """One camera on a room: a wall shaded top to bottom, students in rows (smaller at the back), no tiles.
    Returns the BGR frame and each face's (x, y, w, h)."""
    rng = np.random.default_rng(seed)
    width, height = size
    shade = np.linspace(160, 90, height)[:, None, None] * np.array([1.0, 0.95, 0.85])
    frame = np.broadcast_to(shade, (height, width, 3)).astype(np.uint8).copy()
    per_row = -(-len(emotions) // rows)
    boxes = []
    for i, emotion in enumerate(emotions):
        row, col = divmod(i, per_row)
        side = int(0.7 * height / (rows + 1) * (0.6 + 0.4 * row / max(rows - 1, 1)))
        x = min(int((col + 0.5) * width / per_row - side / 2 + (side / 3 if row % 2 else 0)), width - side)
        y = int(height * 0.1 + row * height * 0.85 / rows)
        frame[y:y + side, x:x + side] = cv2.cvtColor(draw_face(emotion, side, rng), cv2.COLOR_GRAY2BGR)
        boxes.append((x, y, side, side))
    return frame, boxes
