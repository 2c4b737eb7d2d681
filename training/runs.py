"""Training runs in the background: start, watch, stop, resume and register them (no Streamlit).

A run is `python -m training.train ... --out RUN_DIR` started as a detached process (its
own session, output in RUN_DIR/train.log), so it outlives page reruns, closed tabs and the
page's own process. Everything about a run is read back from the files the trainer
writes in its folder, so runs started from the command line show up the same way.

Only one run trains at a time (two would share the CPU and both crawl): the lock file
RUNS_ROOT/training.lock names the trainer's PID and run folder. A lock whose process is
gone (a crash, a reboot) is stale and cleared by the next start.
"""
from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd

from emotion.settings import REPO_ROOT
from training.names import safe_name, unused_path
from emotion.settings import runs_root
from training.config import TrainConfig, to_argv
from training.estimates import RunEstimate, estimate_run, remaining_seconds, speeds_for
from training.train import LOG_FIELDS, write_json

LOCK_FILE = "training.lock"
ACTIVE = ("starting", "running", "stopping")
# The trainer's own "error: ..." lines, and the last line of a Python traceback ("ValueError: ...").
ERROR_LINE = re.compile(r"^(error:|[\w.]*(Error|Exception)\b)")


class RunError(RuntimeError):
    """A run that cannot be started, resumed or registered; the message says why."""


class RunBusyError(RunError):
    """Another run is training; the message names it."""


def _pid_alive(pid: int | None) -> bool:
    try:
        os.kill(pid, 0)
    except (TypeError, ProcessLookupError):
        return False
    except PermissionError:  # someone else's process, but alive
        return True
    return True


def trainer_alive(pid: int | None) -> bool:
    """Whether `pid` is a live training process (not a zombie, not a stranger that reused the PID)."""
    if not pid:
        return False
    proc = Path(f"/proc/{pid}")
    if Path("/proc/self").exists():  # Linux: look at the process itself
        try:
            state = (proc / "stat").read_text().rsplit(")", 1)[1].split()[0]
            command = (proc / "cmdline").read_bytes().split(b"\0")
        except (OSError, IndexError):
            return False
        return state != "Z" and b"training.train" in command
    return _pid_alive(pid)


def _read_json(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None


def _lock_path(root: Path | None) -> Path:
    return (root or runs_root()) / LOCK_FILE


def _live_lock(root: Path | None) -> dict | None:
    """The lock's content while its process lives; a lock taken a moment ago by a start still launching counts."""
    lock = _read_json(_lock_path(root))
    if not lock:
        return None
    alive = trainer_alive(lock.get("pid")) or (lock.get("launching") and _pid_alive(lock.get("pid")))
    return lock if alive else None


@dataclass
class RunStatus:
    """What a run folder says about its run, as the page shows it."""

    path: Path
    status: str  # new, starting, running, stopping, stopped, finished, failed, crashed
    config: dict = field(default_factory=dict)
    epoch: int = 0  # epochs completed
    epochs: int = 0
    batch: int = 0  # batches done in the current epoch
    batches: int = 0
    elapsed: float = 0.0  # training seconds, over all sessions of the run
    remaining: float | None = None  # estimate while active, assuming no early stop
    images_per_s: float = 0.0
    updated: float = 0.0  # when the trainer last reported (epoch seconds)
    best_val_accuracy: float | None = None
    pid: int | None = None
    message: str = ""  # the trainer's last word (an error while failed)
    history: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=LOG_FIELDS))

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def active(self) -> bool:
        return self.status in ACTIVE

    @property
    def epoch_fraction(self) -> float:
        return self.batch / self.batches if self.batches else 0.0

    @property
    def fraction(self) -> float:
        if self.status == "finished":
            return 1.0
        return min(1.0, (self.epoch + self.epoch_fraction) / self.epochs) if self.epochs else 0.0

    @property
    def mid_epoch(self) -> bool:
        return 0 < self.batch < self.batches and self.epoch < self.epochs

    @property
    def position(self) -> str:
        """Where the run is, in the same epoch numbers everywhere: the epoch under way (1-based) while in one,
        else the epochs done."""
        of = f" of {self.epochs}" if self.epochs else ""
        if self.active:
            return f"epoch {min(self.epoch + 1, self.epochs or self.epoch + 1)}{of}"
        if self.mid_epoch:
            return f"during epoch {self.epoch + 1}{of} (batch {self.batch} of {self.batches})"
        return f"after epoch {self.epoch}{of}" if self.epoch else "before its first epoch"

    @property
    def note(self) -> str:
        """The run's state in the page's words (its Resume button), else the trainer's last line."""
        if self.status == "stopped":
            where = (f"epoch {self.epoch + 1}, batch {self.batch + 1}" if self.mid_epoch
                     else f"epoch {self.epoch + 1}")
            return f"Stopped {self.position}, with a checkpoint: Resume continues at {where}."
        if self.status == "finished" and self.epoch < self.epochs:
            return f"Finished early {self.position}: no validation gain for several epochs (early stopping)."
        return self.message

    @property
    def best_model(self) -> Path | None:
        best = self.path / "best.keras"
        return best if best.is_file() else None


def _history(run_dir: Path) -> pd.DataFrame:
    try:
        return pd.read_csv(run_dir / "log.csv")
    except (OSError, ValueError):  # missing, or being written
        return pd.DataFrame(columns=LOG_FIELDS)


def _last_words(run_dir: Path, failed: bool) -> str:
    """The last line of train.log; for a failed run, its last error line."""
    try:
        with open(run_dir / "train.log", "rb") as f:
            f.seek(max(0, f.seek(0, os.SEEK_END) - 8192))
            lines = [line.strip() for line in f.read().decode(errors="replace").splitlines() if line.strip()]
    except OSError:
        return ""
    errors = [line for line in lines if ERROR_LINE.match(line)]
    return (errors if failed and errors else lines or [""])[-1]


def run_status(run_dir: str | Path, root: Path | None = None, estimate: bool = True) -> RunStatus:
    """Read progress.json, state.json, config.json, log.csv and the lock into one RunStatus; with `estimate`,
    the time an active run has left (from earlier runs' speeds too)."""
    run_dir = Path(run_dir).expanduser()
    progress, state = _read_json(run_dir / "progress.json"), _read_json(run_dir / "state.json")
    config = _read_json(run_dir / "config.json") or {}
    lock = _live_lock(root)
    launched_here = lock is not None and Path(lock["run_dir"]) == run_dir.resolve()
    pid = (progress or {}).get("pid")
    if launched_here and (progress is None or progress.get("pid") != lock["pid"]):
        status, pid = "starting", lock["pid"]  # loading data and model; progress.json is an older session's
    elif progress:
        status = progress["status"]
        if status == "running":
            status = ("stopping" if (run_dir / "STOP").exists() else "running") if trainer_alive(pid) else "crashed"
    elif state:
        status = "crashed" if state["status"] == "running" else state["status"]
    elif config or (run_dir / "train.log").exists():
        status = "stopped" if (run_dir / "STOP").exists() else "failed"  # ended before its first batch
    else:
        status = "new"
    progress = progress or {}
    run = RunStatus(
        path=run_dir, status=status, config=config, pid=pid,
        epoch=progress.get("epoch", (state or {}).get("epoch", 0)),
        epochs=progress.get("epochs", config.get("epochs", 0)),
        batch=progress.get("batch", 0), batches=progress.get("batches", 0), elapsed=progress.get("elapsed", 0.0),
        images_per_s=progress.get("images_per_s", 0.0), updated=progress.get("updated", 0.0),
        best_val_accuracy=progress.get("best_val_accuracy", (state or {}).get("best_val_accuracy")),
        message=_last_words(run_dir, status in ("failed", "crashed")), history=_history(run_dir),
    )
    if estimate and run.active:
        others = [other for other in list_runs(root, estimate=False) if other.path != run.path]
        run.remaining = remaining_seconds(run, speeds_for(config.get("arch", "inceptionv3"),
                                                          config.get("image_size", 75), others))
    return run


def list_runs(root: Path | None = None, estimate: bool = False) -> list[RunStatus]:
    """Every run folder under the runs root, most recently active first."""
    root = root or runs_root()
    if not root.is_dir():
        return []
    marks = ("config.json", "progress.json", "train.log")  # train.log: started here, config not written yet
    folders = [d for d in root.iterdir() if d.is_dir() and any((d / mark).is_file() for mark in marks)]

    def last_touched(folder: Path) -> float:
        return max((folder / mark).stat().st_mtime for mark in marks if (folder / mark).exists())

    return [run_status(d, root, estimate) for d in sorted(folders, key=last_touched, reverse=True)]


def active_run(root: Path | None = None) -> RunStatus | None:
    """The run training now: the one holding the lock, or one started by hand from the command line."""
    root = root or runs_root()
    lock = _live_lock(root)
    if lock and (run := run_status(lock["run_dir"], root, estimate=False)).active:  # not a trainer just exiting after its stop
        return run
    return next((run for run in list_runs(root) if run.active), None)


def _busy_message(run: RunStatus) -> str:
    return (f"A training run is already going: {run.name} ({run.status}, pid {run.pid}, {run.path}). "
            "Stop it or wait for it to finish; only one run trains at a time.")


def _refuse_arguments(message: str):
    raise RunError(f"the trainer refuses these settings: {message}")


def start_run(run_dir: str | Path, train_args: list[str], root: Path | None = None) -> int:
    """Launch `python -m training.train TRAIN_ARGS --out RUN_DIR` in the background; returns its PID.

    Raises RunBusyError while another run trains, RunError for arguments the trainer would refuse.
    """
    root = root or runs_root()
    run_dir = Path(run_dir).expanduser().resolve()
    argv = [*map(str, train_args), "--out", str(run_dir)]
    parser = TrainConfig.parser()
    parser.error = _refuse_arguments  # argparse would print and exit; say it as a RunError instead
    try:
        problems = TrainConfig.from_namespace(parser.parse_args(argv)).contradictions()
    except ValueError as exc:  # a value out of bounds
        problems = [str(exc)]
    if problems:
        _refuse_arguments("; ".join(problems))
    if (_read_json(run_dir / "state.json") or {}).get("status") == "finished":
        raise RunError(f"{run_dir.name} has already finished; start a new run to train again")

    root.mkdir(parents=True, exist_ok=True)
    busy = active_run(root)
    if busy:
        raise RunBusyError(_busy_message(busy))
    lock = _lock_path(root)
    lock.unlink(missing_ok=True)  # nothing lives behind it (checked just above): stale
    try:  # O_EXCL: of two starts racing here exactly one wins
        descriptor = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
    except FileExistsError:
        raise RunBusyError("Another training run was started at the same moment; "
                           "only one run trains at a time.") from None
    with os.fdopen(descriptor, "w") as f:
        json.dump({"pid": os.getpid(), "run_dir": str(run_dir), "launching": True}, f)

    run_dir.mkdir(parents=True, exist_ok=True)
    try:
        with open(run_dir / "train.log", "ab") as log:
            log.write(f"\n# {datetime.now().isoformat(timespec='seconds')} python -m training.train "
                      f"{' '.join(argv)}\n".encode())
            log.flush()
            process = subprocess.Popen([sys.executable, "-m", "training.train", *argv], cwd=REPO_ROOT,
                                       stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                       start_new_session=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    except OSError as exc:
        lock.unlink(missing_ok=True)
        raise RunError(f"cannot start the trainer: {exc}") from exc
    write_json(lock, {"pid": process.pid, "run_dir": str(run_dir),
                      "started": datetime.now(timezone.utc).isoformat(timespec="seconds")})
    # Collect the exit status when the trainer ends, so it does not linger as a zombie that looks alive.
    threading.Thread(target=process.wait, name=f"trainer-{process.pid}", daemon=True).start()
    return process.pid


def resume_run(run_dir: str | Path, root: Path | None = None) -> int:
    """Start a stopped, crashed or failed run again with the settings in its config.json."""
    run_dir = Path(run_dir).expanduser()
    config = _read_json(run_dir / "config.json")
    if not config:
        raise RunError(f"{run_dir} holds no run to resume (no config.json)")
    return start_run(run_dir, to_argv(config), root)


def stop_run(run_dir: str | Path, root: Path | None = None) -> bool:
    """Ask a run to stop after its current batch, keeping a checkpoint to resume from; False if none runs.

    Both of the trainer's stop channels are used: the STOP file, and SIGTERM, which also ends
    a trainer still loading its data (before it watches the STOP file) without harm.
    """
    run = run_status(run_dir, root, estimate=False)
    if not run.active:
        return False
    (run.path / "STOP").touch()
    if trainer_alive(run.pid):  # never signal the launching page itself, which holds the lock for a moment
        with contextlib.suppress(ProcessLookupError):
            os.kill(run.pid, signal.SIGTERM)
    return True


def wait_for_run(run_dir: str | Path, timeout: float, root: Path | None = None, poll: float = 0.5) -> RunStatus:
    """Block until the run is no longer active (or `timeout` seconds pass); returns its last status."""
    deadline = time.monotonic() + timeout
    run = run_status(run_dir, root, estimate=False)
    while run.active and time.monotonic() < deadline:
        time.sleep(poll)
        run = run_status(run_dir, root, estimate=False)
    return run


def register_run(run_dir: str | Path, models_dir: Path | None = None, name: str | None = None) -> Path:
    """Copy the run's best model and its metadata into the models folder under an unused name."""
    from emotion.model_io import copy_model, read_metadata
    from emotion.registry import models_dir as default_models_dir

    run_dir = Path(run_dir).expanduser()
    best = run_dir / "best.keras"
    if not best.is_file():
        raise RunError(f"{run_dir.name} has no best model yet: it is written after the first validated epoch")
    folder = models_dir or default_models_dir()
    folder.mkdir(parents=True, exist_ok=True)
    target = unused_path(folder, safe_name(name or run_dir.name, "model"), ".keras")
    return copy_model(best, target, {**read_metadata(best), "file": target.name, "run": run_dir.name,
                                     "run_path": str(run_dir),
                                     "registered": datetime.now(timezone.utc).isoformat(timespec="seconds")})


def estimate_new_run(config: TrainConfig, train_images: int, val_images: int,
                     root: Path | None = None) -> RunEstimate:
    """How long `config` would train here, at the speeds the latest runs here measured for its network and size."""
    return estimate_run(config, train_images, val_images, speeds_for(config.arch, config.image_size, list_runs(root)))


def new_run_dir(name: str, root: Path | None = None) -> Path:
    """An unused run folder named after `name` (a timestamp when empty)."""
    root = root or runs_root()
    return unused_path(root, safe_name(name, datetime.now().strftime("run-%Y%m%d-%H%M")))
