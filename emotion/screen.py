"""The call window on this computer: grab a monitor or a region of it (mss) and feed a LiveSession.

Works when the dashboard runs on the teacher's own machine, where the Zoom or
Meet gallery is on screen; no virtual camera is needed.
"""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass

import numpy as np


class ScreenError(RuntimeError):
    """No screen can be captured here (e.g. a server without a display)."""


@dataclass(frozen=True)
class Region:
    monitor: int = 1  # mss numbering: 1 = first monitor (0 = all monitors together)
    left: int = 0  # offsets and size inside that monitor; width/height 0 = the whole monitor
    top: int = 0
    width: int = 0
    height: int = 0


def list_monitors() -> list[dict]:
    """Monitors as mss reports them ({left, top, width, height}); raises ScreenError without a display."""
    try:
        import mss

        with mss.mss() as grabber:
            return list(grabber.monitors[1:])
    except Exception as exc:  # mss raises its own error types per platform
        raise ScreenError(f"no screen to capture here ({exc}); "
                          "run the dashboard on the computer that shows the call") from exc


class ScreenCapture:
    """A background thread grabbing `region` about `fps` times a second into `on_frame(bgr)`."""

    def __init__(self, region: Region, fps: float, on_frame):
        self.region, self.fps, self.on_frame = region, fps, on_frame
        self.error: str | None = None
        self.latest: np.ndarray | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="screen-capture", daemon=True)

    def start(self) -> "ScreenCapture":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    @property
    def running(self) -> bool:
        return self._thread.is_alive()

    def _box(self, monitors: list[dict]) -> dict:
        if not 1 <= self.region.monitor <= len(monitors) - 1:
            raise ScreenError(f"there is no monitor {self.region.monitor} (found {len(monitors) - 1})")
        m = monitors[self.region.monitor]
        return {"left": m["left"] + self.region.left, "top": m["top"] + self.region.top,
                "width": self.region.width or m["width"] - self.region.left,
                "height": self.region.height or m["height"] - self.region.top}

    def _run(self) -> None:
        try:
            import mss

            with mss.mss() as grabber:
                box = self._box(grabber.monitors)
                while not self._stop.is_set():
                    started = time.monotonic()
                    frame = np.ascontiguousarray(np.asarray(grabber.grab(box))[:, :, :3])  # BGRA -> BGR
                    self.latest = self.on_frame(frame)
                    self._stop.wait(max(0.0, 1.0 / self.fps - (time.monotonic() - started)))
        except Exception as exc:  # shown on the page; the thread ends
            self.error = f"screen capture stopped: {exc}"
