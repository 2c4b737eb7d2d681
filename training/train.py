"""Train the InceptionV3 emotion model on FER2013.

    python -m training.train --data ../shared/datasets/fer2013 --out ~/.cache/class-mood/runs/main

Reads top to bottom: settings -> data -> model -> loop over epochs and batches
(warmup, checkpoints, validation, plateau LR, early stopping) -> best model.
Start it again with the same --out to resume exactly where it stopped, even
mid-epoch. SIGTERM/SIGINT or a file named STOP in --out stop it cleanly after
the current batch, keeping a checkpoint.
"""
from __future__ import annotations

import argparse
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

os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")  # ~1.5x faster training on this AMD CPU
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

LOG_FIELDS = ["epoch", "lr", "loss", "accuracy", "val_loss", "val_accuracy", "seconds"]
# Settings that must not change when a run is resumed.
RESUME_KEYS = ("data", "train_split", "val_split", "arch", "image_size", "batch_size", "seed", "init", "limit",
               "crop_size")


def default_runs_root() -> Path:
    """Where run folders go unless --out says otherwise: CLASS_MOOD_RUNS, read when asked."""
    return Path(os.environ.get("CLASS_MOOD_RUNS", Path.home() / ".cache" / "class-mood" / "runs")).expanduser()


def build_parser() -> argparse.ArgumentParser:
    """Every training knob as a flag; the training page reads the same flags and help texts."""
    p = argparse.ArgumentParser(prog="python -m training.train", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", required=True,
                   help="FER2013: fer2013.csv or a folder with train/ and val/ emotion folders")
    p.add_argument("--train-split", default="train", help="split to train on (train / Training)")
    p.add_argument("--val-split", default="val", help="split to select the model on (val / PublicTest)")
    p.add_argument("--out", default=str(default_runs_root() / "default"),
                   help="run folder: checkpoints, logs, best model")
    p.add_argument("--arch", choices=["inceptionv3", "small"], default="inceptionv3",
                   help="inceptionv3 = the product's model; small = a tiny CNN for quick trials and tests")
    p.add_argument("--image-size", type=int, default=75, help="network input side in px (InceptionV3 needs >= 75)")
    p.add_argument("--batch-size", type=int, default=64, help="images per training step")
    p.add_argument("--epochs", type=int, default=38,
                   help="passes over the training images (early stopping may end sooner)")
    p.add_argument("--optimizer", choices=["adamw", "adam", "sgd", "rmsprop"], default="adamw",
                   help="adamw = Adam with decoupled weight decay; sgd = SGD with Nesterov momentum "
                        "(at lr 0.02 it did not learn in 300 batches from scratch here, Adam did)")
    p.add_argument("--lr", type=float, default=5e-4, help="peak learning rate, reached after the warmup")
    p.add_argument("--momentum", type=float, default=0.9, help="SGD momentum")
    p.add_argument("--weight-decay", type=float, default=0.01,
                   help="decoupled weight decay (0 = off), scaled by the learning rate as in AdamW")
    p.add_argument("--clipnorm", type=float, default=5.0, help="clip each gradient to this norm (0 = off)")
    p.add_argument("--warmup-epochs", type=float, default=2.0, help="linear LR warmup from lr/20, in epochs")
    p.add_argument("--plateau-patience", type=int, default=3, help="epochs without val gain before the LR drops")
    p.add_argument("--plateau-factor", type=float, default=0.5, help="LR multiplier on a plateau")
    p.add_argument("--min-lr", type=float, default=1e-5)
    p.add_argument("--anneal-epochs", type=int, default=18,
                   help="the last N epochs bring the LR from where it is down to --min-lr along a cosine, "
                        "without plateau steps (0 = off); may be set when resuming a run")
    p.add_argument("--early-stop", type=int, default=12, help="stop after this many epochs without val gain")
    p.add_argument("--label-smoothing", type=float, default=0.1)
    p.add_argument("--dropout", type=float, default=0.3, help="dropout before the emotion layer")
    p.add_argument("--bn-momentum", type=float, default=0.9, help="BatchNorm moving-average momentum")
    p.add_argument("--balance", choices=["none", "sqrt", "inverse"], default="sqrt",
                   help="class weights for rare classes (disgust): 1/sqrt(freq), 1/freq or none")
    p.add_argument("--no-augment", dest="augment", action="store_false", help="turn data augmentation off")
    p.add_argument("--erase-prob", type=float, default=0.25, help="probability of cutting out a random square")
    p.add_argument("--crop-size", type=int, default=0,
                   help="train on random crops of this side (px of the 48 px face) and infer on the centre crop "
                        "(0 = the whole face)")
    p.add_argument("--mixup", type=float, default=0.0,
                   help="mixup: blend pairs of training faces and their labels by a Beta(a, a) weight (0 = off)")
    p.add_argument("--recalibrate-images", type=int, default=25600,
                   help="when the run ends, re-estimate BatchNorm statistics of the best model on this many clean "
                        "training faces and keep the result if val improves (0 = off; python -m training.recalibrate)")
    p.add_argument("--epoch-recalibrate-images", type=int, default=6400,
                   help="before each validation, re-estimate BatchNorm statistics on this many clean training faces "
                        "so that epochs are compared (and saved) without the noise of the last augmented batches "
                        "(0 = off); training itself uses batch statistics and is unaffected")
    p.add_argument("--init", default="scratch",
                   help="scratch, imagenet (needs the Keras download), or a .keras/.h5 model to fine-tune")
    p.add_argument("--checkpoint-every", type=int, default=200, help="batches between resumable checkpoints")
    p.add_argument("--limit", type=int, default=0, help="use only the first N training images (0 = all)")
    p.add_argument("--val-limit", type=int, default=0, help="use only the first N validation images (0 = all)")
    p.add_argument("--max-batches", type=int, default=0,
                   help="cap batches per epoch (0 = full epochs); for quick trials")
    p.add_argument("--skip-unreadable", action="store_true", help="leave out unreadable images instead of failing")
    p.add_argument("--fresh", action="store_true", help="discard an existing run in --out instead of resuming it")
    p.add_argument("--strategy", choices=["default", "mirrored", "multi-worker"], default="default",
                   help="tf.distribute strategy: mirrored = all GPUs of this machine; multi-worker = several "
                        "machines described by the TF_CONFIG environment variable")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--print-every", type=int, default=20, help="batches between progress lines")
    return p


def parse_args(argv=None) -> argparse.Namespace:
    return build_parser().parse_args(argv)


def options() -> dict[str, argparse.Action]:
    """Every flag by setting name, with its default, choices and help: the training page's widgets use them."""
    return {action.dest: action for action in build_parser()._actions if action.option_strings}


def to_argv(settings: dict) -> list[str]:
    """Flags that reproduce `settings` (a saved config.json, or any part of it): resuming and the page use it."""
    argv = []
    for action in options().values():
        if action.dest not in settings:
            continue
        value, flag = settings[action.dest], action.option_strings[0]
        if action.nargs == 0:  # an on/off flag such as --no-augment: given only when it changes the default
            if value == action.const:
                argv.append(flag)
        else:
            argv += [flag, str(value)]
    return argv


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


def main(argv=None) -> int:
    args = parse_args(argv)
    import numpy as np
    import tensorflow as tf
    import keras

    from emotion.model_io import ModelFileError, load_keras_model, save_model
    from training.data import DatasetError, class_weights, load_split
    from training.metrics import classification_report
    from training.model import at_input_size, build_model, build_small_cnn, recalibrate_batchnorm
    from training.pipeline import batches_per_epoch, training_batches, validation_arrays

    run = Path(args.out).expanduser()
    if args.fresh and run.exists():
        shutil.rmtree(run)
    run.mkdir(parents=True, exist_ok=True)
    state_file, checkpoint = run / "state.json", run / "last.keras"
    config = {k: v for k, v in vars(args).items() if k not in ("fresh", "out")}
    config["data"] = str(Path(args.data).expanduser().resolve())

    state = json.loads(state_file.read_text()) if state_file.exists() else None
    if state:
        old = json.loads((run / "config.json").read_text())
        changed = [k for k in RESUME_KEYS if old.get(k, config.get(k)) != config.get(k)]
        if changed:
            print(f"error: {run} holds a run with different {', '.join(changed)}; "
                  "use another --out or --fresh", file=sys.stderr)
            return 2
        if state.get("status") == "finished":
            print(f"{run} has already finished (best val accuracy {state['best_val_accuracy']:.4f}); "
                  "use --fresh to train again")
            return 0
    write_json(run / "config.json", config)
    (run / "STOP").unlink(missing_ok=True)
    keras.utils.set_random_seed(args.seed)

    # ---- data
    try:
        train = load_split(args.data, args.train_split, skip_unreadable=args.skip_unreadable)
        val = load_split(args.data, args.val_split, skip_unreadable=args.skip_unreadable)
    except DatasetError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.limit:
        train = train.subset(args.limit, seed=args.seed)
    if args.val_limit:
        val = val.subset(args.val_limit, seed=args.seed)
    for part in (train, val):
        if part.skipped:
            print(f"warning: left out {len(part.skipped)} unreadable image(s) of {part.source}: "
                  f"{', '.join(part.skipped[:3])}")
    if len(train) < args.batch_size:
        print(f"error: {len(train)} training images, fewer than one batch of {args.batch_size}", file=sys.stderr)
        return 2
    weights_per_class = class_weights(train.labels, args.balance)
    val_x, val_y = validation_arrays(val, args.image_size, args.crop_size)
    steps = batches_per_epoch(train, args.batch_size)
    if args.max_batches:
        steps = min(steps, args.max_batches)
    print(f"train {len(train)} images {train.class_counts()}\nval   {len(val)} images; {steps} batches/epoch")

    # ---- model (built and compiled inside the distribution strategy's scope)
    strategy = distribution_strategy(args.strategy)
    print(f"{type(strategy).__name__} with {strategy.num_replicas_in_sync} replica(s)")
    with strategy.scope():
        if state:
            model = keras.models.load_model(checkpoint)
            print(f"resuming {run} at epoch {state['epoch'] + 1} batch {state['batch']}")
        else:
            try:
                if args.init not in ("scratch", "imagenet"):  # a model file to fine-tune, whatever --arch says
                    model = load_keras_model(args.init)
                elif args.arch == "small":
                    model = build_small_cnn(args.image_size, dropout=args.dropout)
                else:
                    model = build_model(args.image_size, weights=None if args.init == "scratch" else "imagenet",
                                        dropout=args.dropout, bn_momentum=args.bn_momentum)
            except (ModelFileError, ValueError, OSError) as exc:
                print(f"error: cannot start from {args.init}: {exc}", file=sys.stderr)
                return 2
            if model.input_shape[1] != args.image_size:
                try:
                    model = at_input_size(model, args.image_size, dropout=args.dropout, bn_momentum=args.bn_momentum)
                except ValueError as exc:
                    print(f"error: {args.init} takes {model.input_shape[1]} px images; pass --image-size "
                          f"{model.input_shape[1]} to fine-tune it ({exc})", file=sys.stderr)
                    return 2
                print(f"fine-tuning the {args.init} weights at {args.image_size} px")
            optimizer_kwargs = {"learning_rate": args.lr, "clipnorm": args.clipnorm or None,
                                "weight_decay": args.weight_decay or None}
            optimizer = {
                "sgd": lambda: keras.optimizers.SGD(momentum=args.momentum, nesterov=True, **optimizer_kwargs),
                "adam": lambda: keras.optimizers.Adam(**optimizer_kwargs),
                "adamw": lambda: keras.optimizers.AdamW(**{**optimizer_kwargs, "weight_decay": args.weight_decay}),
                "rmsprop": lambda: keras.optimizers.RMSprop(**optimizer_kwargs),
            }[args.optimizer]()
            if args.weight_decay:
                optimizer.exclude_from_weight_decay(var_names=["batch_normalization", "bias", "beta"])
            model.compile(optimizer=optimizer,
                          loss=keras.losses.CategoricalCrossentropy(label_smoothing=args.label_smoothing),
                          weighted_metrics=["accuracy"])
            state = {"epoch": 0, "batch": 0, "lr": args.lr, "best_val_accuracy": 0.0, "best_epoch": None,
                     "plateau_wait": 0, "stale_epochs": 0, "partial": None, "status": "running", "elapsed": 0.0}
            with open(run / "log.csv", "w", newline="") as f:
                csv.writer(f).writerow(LOG_FIELDS)

    stop = StopRequest(run)
    warmup_steps = int(args.warmup_epochs * steps)
    anneal_epoch = max(args.epochs - args.anneal_epochs, 0) if args.anneal_epochs else args.epochs

    def scheduled_lr(epoch: int, batch: int) -> float:
        """Linear warmup from lr/20, then the plateau-adapted LR, then the cosine anneal."""
        step = epoch * steps + batch
        if step < warmup_steps:
            return args.lr * max(1 / 20, (step + 1) / warmup_steps)
        if epoch < anneal_epoch:
            return state["lr"]
        start = state.setdefault("anneal_from", state["lr"])  # kept in the state for resumes
        done = (step - anneal_epoch * steps) / (args.anneal_epochs * steps)
        return args.min_lr + (start - args.min_lr) * (1 + math.cos(math.pi * done)) / 2
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
            "pid": os.getpid(), "status": status, "epoch": epoch, "epochs": args.epochs, "batch": batch,
            "batches": steps, "elapsed": time.time() - started, "images_per_s": speed["images_per_s"],
            "best_val_accuracy": state["best_val_accuracy"], "updated": time.time()})

    # ---- training loop
    for epoch in range(state["epoch"], args.epochs):
        epoch_start, first_batch = time.time(), state["batch"]
        model.reset_metrics()
        # train_on_batch reports each batch alone; keep running sums (in the state, for resumes)
        sums = state["partial"] or {"batches": 0, "loss": 0.0, "accuracy": 0.0}
        batches = training_batches(train, input_size=args.image_size, batch_size=args.batch_size, epoch=epoch,
                                   seed=args.seed, sample_weights=weights_per_class, augment=args.augment,
                                   erase_probability=args.erase_prob, crop_size=args.crop_size,
                                   mixup_alpha=args.mixup, skip_batches=first_batch).take(steps - first_batch)
        tick = time.time()
        logs = {k: sums[k] / max(sums["batches"], 1) for k in ("loss", "accuracy")}
        for batch, (x, y, w) in enumerate(batches, start=first_batch):
            lr = scheduled_lr(epoch, batch)
            model.optimizer.learning_rate.assign(lr)
            now = model.train_on_batch(x, y, sample_weight=w, return_dict=True)
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
            if (batch + 1) % args.print_every == 0 or batch + 1 == steps:
                rate = done_now * args.batch_size / (time.time() - tick)
                eta = (steps - batch - 1) * args.batch_size / max(rate, 1e-9)
                print(f"epoch {epoch + 1}/{args.epochs} batch {batch + 1}/{steps} loss {logs['loss']:.4f} "
                      f"acc {logs['accuracy']:.4f} lr {lr:.2e} {rate:.0f} img/s eta {eta / 60:.1f} min", flush=True)
                report_progress(epoch, batch + 1, "running", rate)
            if stop:
                save_checkpoint("stopped")
                report_progress(epoch, batch + 1, "stopped")
                print(f"stopped at epoch {epoch + 1} batch {batch + 1}; run again with --out {run} to resume")
                return 0
            if (batch + 1) % args.checkpoint_every == 0 and batch + 1 < steps:
                save_checkpoint("running")

        # ---- end of epoch: validate, log, keep the best, adapt the LR
        if args.epoch_recalibrate_images:
            recalibrate_batchnorm(model, train.images, images=min(args.epoch_recalibrate_images, len(train)),
                                  seed=args.seed + epoch, crop_size=args.crop_size)
        probabilities = model.predict(val_x, batch_size=128, verbose=0)
        val_loss = float(keras.losses.categorical_crossentropy(val_y, probabilities).numpy().mean())
        report = classification_report(val.labels, probabilities)
        row = {"epoch": epoch + 1, "lr": float(model.optimizer.learning_rate.numpy()), "loss": logs["loss"],
               "accuracy": logs["accuracy"], "val_loss": val_loss, "val_accuracy": report["accuracy"],
               "seconds": round(time.time() - epoch_start, 1)}
        with open(run / "log.csv", "a", newline="") as f:
            csv.DictWriter(f, LOG_FIELDS).writerow(row)
        improved = report["accuracy"] > state["best_val_accuracy"]
        print(f"epoch {epoch + 1}: loss {row['loss']:.4f} acc {row['accuracy']:.4f} val_loss {val_loss:.4f} "
              f"val_acc {report['accuracy']:.4f}{' (best)' if improved else ''} in {row['seconds'] / 60:.1f} min",
              flush=True)
        if improved:
            state.update(best_val_accuracy=report["accuracy"], best_epoch=epoch + 1, stale_epochs=0, plateau_wait=0)
            save_model(model, run / "best.keras", {
                "name": run.name, "architecture": model.name, "input_size": args.image_size,
                "preprocessing": {"source_size": 48, "channels": 3, "scale": "x / 127.5 - 1",
                                  "crop_size": args.crop_size},
                "epoch": epoch + 1, "val_accuracy": report["accuracy"], "validation": report,
                "data": {"path": config["data"], "train_split": args.train_split, "val_split": args.val_split,
                         "train_images": len(train), "val_images": len(val),
                         "train_fingerprint": train.fingerprint(), "val_fingerprint": val.fingerprint()},
                "settings": config, "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                "versions": {"python": platform.python_version(), "tensorflow": tf.__version__,
                             "keras": keras.__version__, "numpy": np.__version__},
            })
        else:
            state["stale_epochs"] += 1
            state["plateau_wait"] += 1
            if state["plateau_wait"] >= args.plateau_patience and args.warmup_epochs < epoch + 1 < anneal_epoch:
                state["lr"] = max(state["lr"] * args.plateau_factor, args.min_lr)
                state["plateau_wait"] = 0
                print(f"validation plateau: learning rate lowered to {state['lr']:.2e}")
        state.update(epoch=epoch + 1, batch=0, partial=None)
        if state["stale_epochs"] >= args.early_stop:
            print(f"early stop: no validation gain for {args.early_stop} epochs")
            break
        if epoch + 1 < args.epochs:
            save_checkpoint("running")

    # before "finished", so that a run killed while recalibrating does it again when resumed
    if args.recalibrate_images and (run / "best.keras").is_file():
        from training.recalibrate import recalibrate_run

        before, after = recalibrate_run(run, train, val, images=args.recalibrate_images, seed=args.seed)
        state["best_val_accuracy"] = max(before, after)
    save_checkpoint("finished")
    report_progress(state["epoch"], 0, "finished")
    print(f"finished: best val accuracy {state['best_val_accuracy']:.4f} at epoch {state['best_epoch']}; "
          f"model in {run / 'best.keras'}")
    from training.calibration import calibrate_run  # the best model's probability calibration, in its metadata
    calibrate_run(run, val)
    return 0


if __name__ == "__main__":
    sys.exit(main())
