"""Train the InceptionV3 emotion model on FER2013.

    python -m training.train --data ../shared/datasets/fer2013 --out ~/.cache/class-mood/runs/main

Reads top to bottom: settings -> data -> model -> loop over epochs and batches
(warmup, checkpoints, validation, plateau LR, early stopping) -> best model.
Start it again with the same --out to resume exactly where it stopped, even
mid-epoch. SIGTERM/SIGINT or a file named STOP in --out stop it cleanly after
the current batch, keeping a checkpoint.
"""
from __future__ import annotations

import csv
import json
import math
import os
import platform
import shutil
import signal
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

from training.config import TrainConfig

LOG_FIELDS = ["epoch", "lr", "loss", "accuracy", "val_loss", "val_accuracy", "seconds"]
OPTIMIZER_CLASSES = {"adamw": "AdamW", "adam": "Adam", "sgd": "SGD", "rmsprop": "RMSprop"}


class StopRequest:
    """Turns SIGTERM/SIGINT or a STOP file into a clean stop after the current batch."""

    def __init__(self, run_dir: Path):
        self.file = run_dir / "STOP"
        self.signalled = False
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, self._on_signal)

    def _on_signal(self, *_):
        self.signalled = True

    def __bool__(self) -> bool:
        return self.signalled or self.file.exists()


def distribution_strategy(name: str):
    """The tf.distribute strategy to train under; "default" is a single device."""
    import tensorflow as tf

    return {"default": tf.distribute.get_strategy, "mirrored": tf.distribute.MirroredStrategy,
            "multi-worker": tf.distribute.MultiWorkerMirroredStrategy}[name]()


def write_json(path: Path, data: dict) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(data, indent=2))
    os.replace(tmp, path)


def make_optimizer(cfg: TrainConfig):
    """The configured optimizer; weight decay skips BatchNorm parameters and biases."""
    import keras

    common = {"learning_rate": cfg.lr, "clipnorm": cfg.clipnorm or None, "weight_decay": cfg.weight_decay or None}
    optimizer = {
        "sgd": lambda: keras.optimizers.SGD(momentum=cfg.momentum, nesterov=True, **common),
        "adam": lambda: keras.optimizers.Adam(**common),
        "adamw": lambda: keras.optimizers.AdamW(**{**common, "weight_decay": cfg.weight_decay}),
        "rmsprop": lambda: keras.optimizers.RMSprop(**common),
    }[cfg.optimizer]()
    if cfg.weight_decay:
        optimizer.exclude_from_weight_decay(var_names=["batch_normalization", "bias", "beta"])
    return optimizer


def anneal_start(epochs: int, anneal_epochs: int) -> int:
    """The epoch the cosine anneal starts at (--anneal-epochs 0: never, i.e. at the end of the run)."""
    return max(epochs - anneal_epochs, 0) if anneal_epochs else epochs


def cosine_lr(plan: dict, position: float, min_lr: float) -> float:
    """The LR at `position` (in epochs) of a cosine from plan["from"] at plan["start"] down to min_lr at plan["end"]."""
    done = min(max((position - plan["start"]) / max(plan["end"] - plan["start"], 1e-9), 0.0), 1.0)
    return min_lr + (plan["from"] - min_lr) * (1 + math.cos(math.pi * done)) / 2


def replan_cosine(state: dict, position: float, cfg: TrainConfig) -> None:
    """Fit a stored anneal to the run's current --epochs/--anneal-epochs when a resume changed them.

    A stopped run goes on from the LR it reached at `position` (restarting the stored cosine would make the LR jump
    back up): past the new anneal's start, down a new cosine to the new end; before it, holding that LR. A finished
    run given more epochs is a new stage: its anneal starts again from --lr.
    """
    plan = state.get("cosine")
    if not plan or (plan["epochs"], plan["anneal_epochs"]) == (cfg.epochs, cfg.anneal_epochs):
        return
    if state.get("status") == "finished":
        state["lr"] = cfg.lr
        del state["cosine"]
        return
    reached = cosine_lr(plan, position, cfg.min_lr)
    if position < anneal_start(cfg.epochs, cfg.anneal_epochs):
        state["lr"] = reached
        del state["cosine"]
    else:
        state["cosine"] = {"from": reached, "start": position, "end": cfg.epochs, "epochs": cfg.epochs,
                           "anneal_epochs": cfg.anneal_epochs}


def compile_model(model, cfg: TrainConfig) -> None:
    import keras

    model.compile(optimizer=make_optimizer(cfg),
                  loss=keras.losses.CategoricalCrossentropy(label_smoothing=cfg.label_smoothing),
                  weighted_metrics=["accuracy"])


def main(argv=None) -> int:
    parsed = TrainConfig.parser(description=__doc__).parse_args(argv)
    try:
        cfg = TrainConfig.from_namespace(parsed)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for problem in cfg.contradictions():
        print(f"warning: {problem}", file=sys.stderr)
    os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")  # ~1.5x faster training on this AMD CPU
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import numpy as np
    import tensorflow as tf
    import keras

    from emotion.model_io import ModelFileError, load_keras_model, save_model
    from training.data import DatasetError, class_weights, load_split, training_prior
    from training.averaging import WeightAverage
    from training.metrics import classification_report
    from training.model import at_input_size, build_network, recalibrate_batchnorm
    from training.pipeline import batches_per_epoch, training_batches, validation_arrays

    run = Path(parsed.out).expanduser()
    if parsed.fresh and run.exists():
        shutil.rmtree(run)
    run.mkdir(parents=True, exist_ok=True)
    state_file, checkpoint = run / "state.json", run / "last.keras"
    cfg.data = str(Path(cfg.data).expanduser().resolve())
    config = cfg.stored()

    state = json.loads(state_file.read_text()) if state_file.exists() else None
    if state:
        old = json.loads((run / "config.json").read_text())
        if "anneal_from" in state:  # a state from before the anneal's plan was stored: the plan of its config
            epochs, anneal = old["epochs"], old["anneal_epochs"]
            state["cosine"] = {"from": state.pop("anneal_from"), "start": anneal_start(epochs, anneal), "end": epochs,
                               "epochs": epochs, "anneal_epochs": anneal}
        changed = cfg.changed_fixed(old)
        if changed:
            print(f"error: {run} holds a run with different {', '.join(changed)}; "
                  "use another --out or --fresh", file=sys.stderr)
            return 2
        if state.get("status") == "finished" and cfg.epochs <= state["epoch"]:
            print(f"{run} has already finished (best val accuracy {state['best_val_accuracy']:.4f}); "
                  "give more --epochs to train on, or --fresh to train again")
            return 0
    write_json(run / "config.json", config)
    (run / "STOP").unlink(missing_ok=True)
    keras.utils.set_random_seed(cfg.seed)

    # ---- data
    try:
        train = load_split(cfg.data, cfg.train_split, skip_unreadable=cfg.skip_unreadable)
        val = load_split(cfg.data, cfg.val_split, skip_unreadable=cfg.skip_unreadable)
    except DatasetError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if cfg.limit:
        train = train.subset(cfg.limit, seed=cfg.seed)
    if cfg.val_limit:
        val = val.subset(cfg.val_limit, seed=cfg.seed)
    for part in (train, val):
        if part.skipped:
            print(f"warning: left out {len(part.skipped)} unreadable image(s) of {part.source}: "
                  f"{', '.join(part.skipped[:3])}")
    if len(train) < cfg.batch_size:
        print(f"error: {len(train)} training images, fewer than one batch of {cfg.batch_size}", file=sys.stderr)
        return 2
    teacher, online_teacher = None, None  # fixed targets of the clean faces, or models that label each batch
    if cfg.teacher:
        from training.teacher import OnlineTeachers, load_targets, model_files

        try:
            files = model_files(cfg.teacher)
            if files:
                online_teacher = OnlineTeachers(files, student_crop=cfg.crop_size)
            else:
                teacher = load_targets(cfg.teacher, train.images)
        except (ValueError, ModelFileError, OSError) as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        source = f"{len(online_teacher)} model(s) online" if online_teacher else cfg.teacher
        print(f"distilling from {source}: targets {1 - cfg.distill:g} label + {cfg.distill:g} teacher")
    weights_per_class = class_weights(train.labels, cfg.balance)
    trained_under = training_prior(train.labels, cfg.balance)  # stored with every best model, for the mix estimate
    val_x, val_y = validation_arrays(val, cfg.image_size, cfg.crop_size, views=cfg.val_views)

    def validation_probabilities(m) -> np.ndarray:
        """Each validation face's probabilities, averaged over its views as the product's classifier does."""
        return m.predict(val_x, batch_size=128, verbose=0).reshape(len(val), -1, val_y.shape[1]).mean(axis=1)
    steps = batches_per_epoch(train, cfg.batch_size)
    if cfg.max_batches:
        steps = min(steps, cfg.max_batches)
    print(f"train {len(train)} images {train.class_counts()}\nval   {len(val)} images; {steps} batches/epoch")

    # ---- model (built and compiled inside the distribution strategy's scope)
    strategy = distribution_strategy(cfg.strategy)
    print(f"{type(strategy).__name__} with {strategy.num_replicas_in_sync} replica(s)")
    with strategy.scope():
        if state:
            model = keras.models.load_model(checkpoint)
            print(f"resuming {run} at epoch {state['epoch'] + 1} batch {state['batch']}")
            if type(model.optimizer).__name__ != OPTIMIZER_CLASSES[cfg.optimizer]:
                # a new stage (e.g. SGD after AdamW): fresh optimizer state, its own LR and cosine from here
                print(f"switching the optimizer from {type(model.optimizer).__name__} to {cfg.optimizer} "
                      f"at lr {cfg.lr:g}")
                compile_model(model, cfg)
                state["lr"] = cfg.lr
                state.pop("cosine", None)
        else:
            try:
                if cfg.init not in ("scratch", "imagenet"):  # a model file to fine-tune, whatever --arch says
                    model = load_keras_model(cfg.init)
                else:
                    model = build_network(cfg.arch, cfg.image_size, dropout=cfg.dropout, bn_momentum=cfg.bn_momentum,
                                          weights=None if cfg.init == "scratch" else "imagenet")
            except (ModelFileError, ValueError, OSError) as exc:
                print(f"error: cannot start from {cfg.init}: {exc}", file=sys.stderr)
                return 2
            if model.input_shape[1] != cfg.image_size:
                try:
                    model = at_input_size(model, cfg.image_size, dropout=cfg.dropout, bn_momentum=cfg.bn_momentum)
                except ValueError as exc:
                    print(f"error: {cfg.init} takes {model.input_shape[1]} px images; pass --image-size "
                          f"{model.input_shape[1]} to fine-tune it ({exc})", file=sys.stderr)
                    return 2
                print(f"fine-tuning the {cfg.init} weights at {cfg.image_size} px")
            compile_model(model, cfg)
            state = {"epoch": 0, "batch": 0, "lr": cfg.lr, "best_val_accuracy": 0.0, "best_epoch": None,
                     "plateau_wait": 0, "stale_epochs": 0, "partial": None, "status": "running", "elapsed": 0.0}
            with open(run / "log.csv", "w", newline="") as f:
                csv.writer(f).writerow(LOG_FIELDS)

    stop = StopRequest(run)
    warmup_steps = int(cfg.warmup_epochs * steps)
    anneal_epoch = anneal_start(cfg.epochs, cfg.anneal_epochs)
    replan_cosine(state, state["epoch"] + state["batch"] / steps, cfg)

    def scheduled_lr(epoch: int, batch: int) -> float:
        """Linear warmup from lr/20, then the plateau-adapted LR, then the cosine anneal."""
        step = epoch * steps + batch
        if step < warmup_steps:
            return cfg.lr * max(1 / 20, (step + 1) / warmup_steps)
        if "cosine" not in state and epoch < anneal_epoch:
            return state["lr"]
        plan = state.setdefault("cosine", {"from": state["lr"], "start": anneal_epoch, "end": cfg.epochs,
                                           "epochs": cfg.epochs, "anneal_epochs": cfg.anneal_epochs})
        return cosine_lr(plan, step / steps, cfg.min_lr)  # the plan is kept in the state for resumes
    started = time.time() - state["elapsed"]

    def save_checkpoint(status: str) -> None:
        state["status"], state["elapsed"] = status, time.time() - started
        model.save(run / "last.tmp.keras")
        os.replace(run / "last.tmp.keras", checkpoint)
        write_json(state_file, state)

    speed = {"images_per_s": 0.0}  # the last measured, still reported once stopped or finished

    def report_progress(epoch: int, batch: int, status: str, rate: float = 0.0) -> None:
        speed["images_per_s"] = rate or speed["images_per_s"]
        write_json(run / "progress.json", {
            "pid": os.getpid(), "status": status, "epoch": epoch, "epochs": cfg.epochs, "batch": batch,
            "batches": steps, "elapsed": time.time() - started, "images_per_s": speed["images_per_s"],
            "best_val_accuracy": state["best_val_accuracy"], "updated": time.time()})

    def recalibrate(network, images: int, epoch: int) -> None:
        """BatchNorm statistics re-estimated on `images` clean training faces (the same faces for every model of
        an epoch)."""
        recalibrate_batchnorm(network, train.images, images=min(images, len(train)), seed=cfg.seed + epoch,
                              crop_size=cfg.crop_size)

    # stochastic weight averaging (--average-from): the running mean, on disk beside the checkpoint
    average = WeightAverage(run / "average.npz") if cfg.average_from else None
    averaged = None  # a second model that holds the mean, built at the first averaged epoch

    sam_step = None
    if cfg.sam:
        from training.sharpness import SharpnessAwareStep

        sam_step = SharpnessAwareStep(model, cfg.sam)
        print(f"sharpness-aware steps, rho {cfg.sam:g} (two passes per batch)")

    # ---- training loop
    for epoch in range(state["epoch"], cfg.epochs):
        epoch_start, first_batch = time.time(), state["batch"]
        model.reset_metrics()
        # train_on_batch reports each batch alone; keep running sums (in the state, for resumes)
        sums = state["partial"] or {"batches": 0, "loss": 0.0, "accuracy": 0.0}
        batches = training_batches(train, input_size=cfg.image_size, batch_size=cfg.batch_size, epoch=epoch,
                                   seed=cfg.seed, sample_weights=weights_per_class, augment=cfg.augment,
                                   erase_probability=cfg.erase_prob, augment_strength=cfg.augment_strength,
                                   crop_size=cfg.crop_size, mixup_alpha=cfg.mixup, skip_batches=first_batch,
                                   teacher=teacher, distill=cfg.distill).take(steps - first_batch)
        tick = time.time()
        logs = {k: sums[k] / max(sums["batches"], 1) for k in ("loss", "accuracy")}
        for batch, (x, y, w) in enumerate(batches, start=first_batch):
            lr = scheduled_lr(epoch, batch)
            model.optimizer.learning_rate.assign(lr)
            if online_teacher is not None:
                y = online_teacher.blend(x, y, cfg.distill)
            now = sam_step(x, y, w) if sam_step else model.train_on_batch(x, y, sample_weight=w, return_dict=True)
            done_now = batch + 1 - first_batch
            sums = {"batches": sums["batches"] + 1, "loss": sums["loss"] + float(now["loss"]),
                    "accuracy": sums["accuracy"] + float(now["accuracy"])}
            logs = {k: sums[k] / sums["batches"] for k in ("loss", "accuracy")}
            if not np.isfinite(logs["loss"]):
                print("error: the loss became NaN/inf; lower --lr or raise --warmup-epochs", file=sys.stderr)
                state["status"] = "failed"
                write_json(state_file, state)
                report_progress(epoch, batch + 1, "failed")
                return 1
            state["batch"], state["partial"] = batch + 1, sums
            if (batch + 1) % cfg.print_every == 0 or batch + 1 == steps:
                rate = done_now * cfg.batch_size / (time.time() - tick)
                eta = (steps - batch - 1) * cfg.batch_size / max(rate, 1e-9)
                print(f"epoch {epoch + 1}/{cfg.epochs} batch {batch + 1}/{steps} loss {logs['loss']:.4f} "
                      f"acc {logs['accuracy']:.4f} lr {lr:.2e} {rate:.0f} img/s eta {eta / 60:.1f} min", flush=True)
                report_progress(epoch, batch + 1, "running", rate)
            if stop:
                save_checkpoint("stopped")
                report_progress(epoch, batch + 1, "stopped")
                print(f"stopped at epoch {epoch + 1} batch {batch + 1}; run again with --out {run} to resume")
                return 0
            if (batch + 1) % cfg.checkpoint_every == 0 and batch + 1 < steps:
                save_checkpoint("running")

        # ---- end of epoch: validate, log, keep the best, adapt the LR
        if cfg.epoch_recalibrate_images:
            recalibrate(model, cfg.epoch_recalibrate_images, epoch)
        probabilities = validation_probabilities(model)
        val_loss = float(keras.losses.categorical_crossentropy(val_y, probabilities).numpy().mean())
        report = classification_report(val.labels, probabilities)
        row = {"epoch": epoch + 1, "lr": float(model.optimizer.learning_rate.numpy()), "loss": logs["loss"],
               "accuracy": logs["accuracy"], "val_loss": val_loss, "val_accuracy": report["accuracy"],
               "seconds": round(time.time() - epoch_start, 1)}
        with open(run / "log.csv", "a", newline="") as f:
            csv.DictWriter(f, LOG_FIELDS).writerow(row)
        candidate, candidate_report, extra = model, report, {}
        if average is not None and epoch + 1 >= cfg.average_from:
            average.add(model, epoch=epoch + 1)
            if averaged is None:
                averaged = keras.models.clone_model(model)
            average.copy_into(averaged)
            recalibrate(averaged, cfg.epoch_recalibrate_images or 6400, epoch)  # a mean has no statistics of its own
            averaged_report = classification_report(val.labels, validation_probabilities(averaged))
            print(f"weight average of epochs {average.epochs[0]}-{average.epochs[-1]}: "
                  f"val_acc {averaged_report['accuracy']:.4f}", flush=True)
            state.setdefault("average_val_accuracy", {})[str(epoch + 1)] = averaged_report["accuracy"]
            if averaged_report["accuracy"] > report["accuracy"]:
                candidate, candidate_report = averaged, averaged_report
                extra = {"weight_average": {"epochs": list(average.epochs)}}
        # the first epoch is always kept: a tiny or unlucky run can score 0.0, and a run must end with a model
        improved = state["best_epoch"] is None or candidate_report["accuracy"] > state["best_val_accuracy"]
        print(f"epoch {epoch + 1}: loss {row['loss']:.4f} acc {row['accuracy']:.4f} val_loss {val_loss:.4f} "
              f"val_acc {report['accuracy']:.4f}{' (best)' if improved else ''} in {row['seconds'] / 60:.1f} min",
              flush=True)
        if improved:
            state.update(best_val_accuracy=candidate_report["accuracy"], best_epoch=epoch + 1, stale_epochs=0,
                         plateau_wait=0)
            save_model(candidate, run / "best.keras", {
                "name": run.name, "architecture": model.name, "input_size": cfg.image_size,
                "preprocessing": {"source_size": 48, "channels": 3, "scale": "x / 127.5 - 1",
                                  "crop_size": cfg.crop_size, "views": cfg.val_views},
                "epoch": epoch + 1, "val_accuracy": candidate_report["accuracy"], "validation": candidate_report,
                "training_prior": trained_under, **extra,
                "data": {"path": config["data"], "train_split": cfg.train_split, "val_split": cfg.val_split,
                         "train_images": len(train), "val_images": len(val),
                         "train_fingerprint": train.fingerprint(), "val_fingerprint": val.fingerprint()},
                "settings": config, "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                "versions": {"python": platform.python_version(), "tensorflow": tf.__version__,
                             "keras": keras.__version__, "numpy": np.__version__},
            })
        else:
            state["stale_epochs"] += 1
            state["plateau_wait"] += 1
            if state["plateau_wait"] >= cfg.plateau_patience and cfg.warmup_epochs < epoch + 1 < anneal_epoch:
                state["lr"] = max(state["lr"] * cfg.plateau_factor, cfg.min_lr)
                state["plateau_wait"] = 0
                print(f"validation plateau: learning rate lowered to {state['lr']:.2e}")
        state.update(epoch=epoch + 1, batch=0, partial=None)
        if state["stale_epochs"] >= cfg.early_stop:
            print(f"early stop: no validation gain for {cfg.early_stop} epochs")
            break
        if epoch + 1 < cfg.epochs:
            save_checkpoint("running")

    # before "finished", so that a run killed while recalibrating or calibrating does it again when resumed
    if cfg.recalibrate_images and (run / "best.keras").is_file():
        from training.recalibrate import recalibrate_run

        before, after = recalibrate_run(run, train, val, images=cfg.recalibrate_images, seed=cfg.seed)
        state["best_val_accuracy"] = max(before, after)
    from training.calibration import calibrate_run  # the best model's probability calibration, in its metadata

    calibrate_run(run, val)
    save_checkpoint("finished")
    report_progress(state["epoch"], 0, "finished")
    print(f"finished: best val accuracy {state['best_val_accuracy']:.4f} at epoch {state['best_epoch']}; "
          f"model in {run / 'best.keras'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
