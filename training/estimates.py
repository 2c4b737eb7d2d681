"""How long a training run takes on this machine, and how long a running one has left (no Streamlit).

A run is start-up (TensorFlow, the data, the model), then per epoch its training batches plus the BatchNorm
recalibration and validation that end the epoch, then a wrap-up (the final recalibration, validations before and
after it, and the probability calibration). Speeds come from earlier runs here with the same network and image
size (their progress.json, log.csv, train.log and best model's metadata), else from the table below, measured once
on this machine and scaled by pixel count: then the estimate says it is a guess.
"""
from __future__ import annotations

import re
import time
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from statistics import median
from typing import TYPE_CHECKING

from training.config import TrainConfig

if TYPE_CHECKING:
    from training.runs import RunStatus


@dataclass(frozen=True)
class Speeds:
    """A network's speeds at one image size on this machine."""

    train: float  # images/s through training steps, input pipeline included
    forward: float  # images/s through inference (validation, BatchNorm recalibration)
    startup: float  # seconds from launch to the first batch
    source: str  # where the numbers come from, as the page says it
    measured: bool  # False: the reference table, a guess
    run: str = ""  # the run that measured them (user text: quote it when shown)


# Measured on this 2-core machine at 75 px. InceptionV3 float32 (benchmarks/bench_training_speed.py): ~135 images/s
# on random tensors, ~95 with the input pipeline; a real FER2013 epoch (28,709 images) took 5-6 min plus ~25 s of
# BatchNorm recalibration (6,400 faces) and ~15 s of validation (3,589 faces), i.e. inference at ~250 images/s;
# start-up ~30 s. The VGG teacher: ~280 images/s at 40 px with the input pipeline, epochs of 1.9 min with their
# validation (vgg1), i.e. ~80 and ~430 at 75 px by pixel count. The small CNN: a 3-epoch run of the tests' drawn
# faces (~270 images/s, 10 s to start).
REFERENCE = {"inceptionv3": (95.0, 250.0, 30.0), "vgg": (80.0, 430.0, 15.0), "small": (270.0, 800.0, 10.0)}
REFERENCE_SIZE = 75
RECENT_EPOCHS = 5  # a running run's epoch time: the median of its last epochs
RATE_WEIGHT_BATCHES = 20  # the current epoch's measured rate counts as much as the prior after this many batches
LAUNCH_LINE = re.compile(r"^# (\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d) python -m training\.train", re.MULTILINE)
VAL_LINE = re.compile(r"^val\s+(\d+) images;", re.MULTILINE)


def reference_speeds(arch: str, image_size: int) -> Speeds:
    train, forward, startup = REFERENCE.get(arch, REFERENCE["inceptionv3"])
    scale = (REFERENCE_SIZE / image_size) ** 2  # time goes with the pixel count
    return Speeds(train * scale, forward * scale, startup,
                  f"a guess: speeds measured once on this machine for {arch} at {REFERENCE_SIZE} px"
                  + (f", scaled to {image_size} px by pixel count" if image_size != REFERENCE_SIZE else "")
                  + "; a run's first epoch measures it here", measured=False)


def _log(run_dir: Path) -> str:
    try:
        return (run_dir / "train.log").read_text(errors="replace")
    except OSError:
        return ""


def launches(run_dir: Path) -> list[datetime]:
    """When the run's trainer was launched from the page (the header lines runs.start_run writes into train.log)."""
    return [datetime.fromisoformat(stamp) for stamp in LAUNCH_LINE.findall(_log(run_dir))]


def val_images(run_dir: Path) -> int:
    """The run's validation faces, as the trainer printed them once its data was loaded (0 before)."""
    found = VAL_LINE.findall(_log(run_dir))
    return int(found[-1]) if found else 0


def measured_startup(run: "RunStatus") -> float | None:
    """Launch to first batch, for a run launched once (later sessions blur when its training started)."""
    started = launches(run.path)
    if len(started) != 1 or not run.updated:
        return None
    seconds = run.updated - run.elapsed - started[0].timestamp()
    return seconds if 0 < seconds < 3600 else None


def measured_forward(run: "RunStatus") -> float | None:
    """Inference speed from an ended run's last epoch (timed under the load of its last training rate; a running
    run's rate is already the next epoch's): its time beyond the training batches, over the faces checked."""
    if run.active or not (len(run.history) and run.images_per_s and run.batches):
        return None
    config = TrainConfig.from_stored({"data": "", **run.config})
    checks = val_images(run.path) + config.epoch_recalibrate_images
    beyond = float(run.history["seconds"].iloc[-1]) - run.batches * config.batch_size / run.images_per_s
    return checks / beyond if checks and beyond > 0 else None


def speeds_for(arch: str, image_size: int, runs: list["RunStatus"]) -> Speeds:
    """The speeds of the latest runs here with this network and size; the reference table for what none measured."""
    same = [run for run in runs if run.images_per_s and run.config.get("arch", "inceptionv3") == arch
            and run.config.get("image_size", 75) == image_size]
    reference = reference_speeds(arch, image_size)
    if not same:
        return reference
    train = same[0].images_per_s
    load = train / reference.train  # how much faster or slower than the reference this machine is now
    forward = next((f for f in map(measured_forward, same) if f), reference.forward * load)
    startup = next((s for s in map(measured_startup, same) if s), reference.startup)
    return Speeds(train, forward, startup, "measured on this machine by the run", measured=True, run=same[0].name)


@dataclass(frozen=True)
class RunEstimate:
    """A planned run's time, in seconds, by part."""

    speeds: Speeds
    epochs: int
    train_images: int  # trained per epoch
    startup: float
    training: float  # per epoch
    checks: float  # per epoch: BatchNorm recalibration and validation
    wrapup: float  # after the last epoch

    @property
    def epoch(self) -> float:
        return self.training + self.checks

    @property
    def total(self) -> float:
        return self.startup + self.epochs * self.epoch + self.wrapup


def estimate_run(config: TrainConfig, train_images: int, val_images: int, speeds: Speeds) -> RunEstimate:
    """The run `config` describes on a dataset of `train_images` / `val_images` (before --limit / --val-limit)."""
    train_images = min(train_images, config.limit) if config.limit else train_images
    val_images = min(val_images, config.val_limit) if config.val_limit else val_images
    batches = train_images // config.batch_size
    if config.max_batches:
        batches = min(batches, config.max_batches)
    checks = (val_images + min(config.epoch_recalibrate_images, train_images)) / speeds.forward
    final_recalibration = min(config.recalibrate_images, train_images) + 2 * val_images if config.recalibrate_images \
        else 0
    return RunEstimate(speeds, config.epochs, batches * config.batch_size, speeds.startup,
                       batches * config.batch_size / speeds.train, checks,
                       (final_recalibration + val_images) / speeds.forward)


def remaining_seconds(run: "RunStatus", prior: Speeds, now: float | None = None) -> float | None:
    """Seconds a running run has left until its last epoch and wrap-up (early stopping may end it sooner); None
    until its first progress report says how many batches an epoch has.

    Smooth by construction: once the run has finished epochs, an epoch takes the median of its recent ones; before
    that, the current epoch's measured rate is blended with `prior` (earlier runs' speeds) by how many batches it
    covers, so the first noisy reports (tracing, warm-up) do not swing the estimate; the time since the last
    report (validating, between reports) counts as spent.
    """
    if not (run.epochs and run.batches):
        return None
    config = TrainConfig.from_stored({"data": "", **run.config, "limit": 0, "max_batches": 0, "val_limit": 0})
    weight = run.batch / (run.batch + RATE_WEIGHT_BATCHES) if run.images_per_s else 0.0
    speeds = replace(prior, train=weight * run.images_per_s + (1 - weight) * prior.train)
    plan = estimate_run(config, run.batches * config.batch_size, val_images(run.path), speeds)
    training, checks = plan.training, plan.checks
    if len(run.history):
        per_epoch = float(median(run.history["seconds"].tail(RECENT_EPOCHS)))
        share = plan.training / plan.epoch
        training, checks = per_epoch * share, per_epoch * (1 - share)
    current = (1 - run.batch / run.batches) * training + checks if run.epoch < run.epochs else 0.0
    if run.updated and run.status != "starting":
        current = max(0.0, current - max(0.0, (now or time.time()) - run.updated))
    later = max(0, run.epochs - run.epoch - 1) * (training + checks)
    startup = 0.0
    if run.status == "starting":  # a resumed run loading again; its progress is the last session's
        started = launches(run.path)
        startup = max(0.0, prior.startup - (datetime.now() - started[-1]).total_seconds()) if started else prior.startup
    return startup + current + later + plan.wrapup


def duration(seconds: float | None) -> str:
    if seconds is None:
        return "–"
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.0f} min"
    return f"{int(seconds // 3600)} h {int(seconds % 3600 // 60)} min"


def describe(estimate: RunEstimate, quote=str) -> str:
    """The estimate as the Training page says it, in Markdown; `quote` makes the run's name plain text."""
    return (f"About **{duration(estimate.epoch)} per epoch** here: {duration(estimate.training)} training "
            f"{estimate.train_images:,} images at ~{estimate.speeds.train:.0f} images/s, then "
            f"{duration(estimate.checks)} recalibrating BatchNorm and validating. With ~{duration(estimate.startup)} "
            f"to start and ~{duration(estimate.wrapup)} to finish (final recalibration, calibration), "
            f"{estimate.epochs} epochs take up to **{duration(estimate.total)}**; early stopping often ends sooner. "
            f"Speeds {estimate.speeds.source}{' ' + quote(estimate.speeds.run) if estimate.speeds.run else ''}.")
