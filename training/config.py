"""A training run's configuration in one place: the trainer's flags, the Training page's widgets and help
texts, and the run's stored config.json all come from `TrainConfig`, so a new knob is added once.

    config = TrainConfig.from_argv(["--data", "fer2013", "--epochs", "5"])   # what the trainer parses
    config.to_argv()                                                          # flags that reproduce it
    TrainConfig.from_stored(json.loads(config_json))                          # a stored run, for resuming
    KNOBS["lr"].help, KNOBS["lr"].page["options"]                             # what the page shows

Each field's metadata holds its help text, its choices or bounds, whether a resumed run may change it, and
how the Training page offers it (`page`: label and widget hints — "options" to pick from, "widget": "slider",
"step" of a number, "section" to group it under; None = command line only).
"""
from __future__ import annotations

import argparse
from dataclasses import MISSING, asdict, dataclass, field, fields

from emotion.settings import runs_root

ARCHITECTURES = ("inceptionv3", "vgg", "small")
OPTIMIZERS = ("adamw", "adam", "sgd", "rmsprop")
BALANCES = ("none", "sqrt", "inverse")
STRATEGIES = ("default", "mirrored", "multi-worker")
LEARNING_RATES = (1e-5, 3e-5, 1e-4, 2e-4, 3e-4, 5e-4, 1e-3, 2e-3, 5e-3, 1e-2, 2e-2)


def knob(default, help: str, *, choices=None, low=None, high=None, fixed: bool = False, page: dict | None = None,
         flag: str | None = None, switch: str | None = None):
    """A field of TrainConfig. `fixed`: a resumed run must keep it; `low`/`high`: accepted bounds;
    `switch`: the on/off flag's name for a boolean whose default is on (e.g. --no-augment)."""
    return field(default=default, metadata={"help": help, "choices": choices, "low": low, "high": high,
                                            "fixed": fixed, "page": page, "flag": flag, "switch": switch})


@dataclass
class TrainConfig:
    data: str = knob(MISSING, "FER2013: fer2013.csv or a folder with train/ and val/ emotion folders", fixed=True)
    train_split: str = knob("train", "split to train on (train / Training)", fixed=True)
    val_split: str = knob("val", "split to select the model on (val / PublicTest)", fixed=True)
    arch: str = knob("inceptionv3", "inceptionv3 = the product's model; vgg = a VGG-style teacher for "
                                    "distillation at the crop's own size (e.g. --image-size 40 --crop-size 40; "
                                    "never shipped); small = a tiny CNN for quick trials and tests",
                     choices=ARCHITECTURES, fixed=True, page={"label": "Architecture"})
    image_size: int = knob(75, "network input side in px (InceptionV3 needs >= 75)", low=32, high=299, fixed=True,
                           page={"label": "Image size (px)"})
    batch_size: int = knob(64, "images per training step", low=1, high=1024, fixed=True,
                           page={"label": "Batch size", "options": (16, 32, 64, 128)})
    epochs: int = knob(38, "passes over the training images (early stopping may end sooner)", low=1, high=1000,
                       page={"label": "Epochs"})
    optimizer: str = knob("adamw", "adamw = Adam with decoupled weight decay; sgd = SGD with Nesterov momentum. "
                                   "A resumed run may switch (e.g. an SGD stage after AdamW: its own --lr, a new "
                                   "cosine over --anneal-epochs from where it is)", choices=OPTIMIZERS,
                          page={"label": "Optimizer"})
    lr: float = knob(5e-4, "peak learning rate, reached after the warmup", low=1e-7, high=1.0,
                     page={"label": "Learning rate", "options": LEARNING_RATES, "widget": "slider"})
    momentum: float = knob(0.9, "SGD momentum", low=0.0, high=0.999)
    weight_decay: float = knob(0.01, "decoupled weight decay (0 = off), scaled by the learning rate as in AdamW",
                               low=0.0, high=1.0)
    clipnorm: float = knob(5.0, "clip each gradient to this norm (0 = off)", low=0.0, high=1e6)
    warmup_epochs: float = knob(2.0, "linear LR warmup from lr/20, in epochs", low=0.0, high=100.0)
    plateau_patience: int = knob(3, "epochs without val gain before the LR drops", low=1, high=100)
    plateau_factor: float = knob(0.5, "LR multiplier on a plateau", low=0.01, high=1.0)
    min_lr: float = knob(1e-5, "the smallest learning rate the plateau rule and the anneal go down to", low=0.0,
                         high=1.0)
    anneal_epochs: int = knob(18, "the last N epochs bring the LR from where it is down to --min-lr along a cosine, "
                                  "without plateau steps (0 = off); may be set when resuming a run", low=0, high=1000,
                              page={"label": "Anneal the LR over the last N epochs"})
    early_stop: int = knob(12, "stop after this many epochs without val gain", low=1, high=1000)
    label_smoothing: float = knob(0.1, "share of each label spread over the other emotions", low=0.0, high=0.5)
    dropout: float = knob(0.3, "dropout before the emotion layer", low=0.0, high=0.9)
    bn_momentum: float = knob(0.9, "BatchNorm moving-average momentum", low=0.0, high=0.999)
    balance: str = knob("sqrt", "class weights for rare classes (disgust): 1/sqrt(freq), 1/freq or none",
                        choices=BALANCES, page={"label": "Class balancing"})
    augment: bool = knob(True, "random flips, turns, shifts, zoom, brightness and cut-outs: less overfitting, "
                               "slower to converge", switch="--no-augment",
                         page={"label": "Augmentation"})
    augment_strength: float = knob(1.0, "scales the ranges of the turns, shifts, zoom, brightness and contrast "
                                        "(1 = as the first runs; 0 = flips only); a resumed run may lower it for a "
                                        "late, lighter stage", low=0.0, high=2.0,
                                   page={"label": "Augmentation strength", "step": 0.1})
    erase_prob: float = knob(0.25, "probability of cutting out a random square", low=0.0, high=1.0)
    crop_size: int = knob(0, "train on random crops of this side (px of the 48 px face) and infer on the centre "
                             "crop (0 = the whole face)", low=0, high=48, fixed=True,
                          page={"label": "Random crop (px of 48, 0 = off)"})
    mixup: float = knob(0.0, "mixup: blend pairs of training faces and their labels by a Beta(a, a) weight (0 = off)",
                        low=0.0, high=10.0, page={"label": "Mixup alpha (0 = off)", "step": 0.1})
    teacher: str = knob("", "knowledge distillation: a file of python -m training.teacher (models' probabilities for "
                            "every training face), or model files separated by commas that label each augmented "
                            "batch as the student sees it (online); each target becomes a blend of the label and "
                            "the teacher's probabilities ('' = off)")
    distill: float = knob(0.5, "with --teacher: the share of each training target taken from the teacher's "
                               "probabilities (the rest is the one-hot label)", low=0.0, high=1.0)
    sam: float = knob(0.0, "sharpness-aware minimisation: each step takes the gradient at the worst weights within "
                           "this radius (rho, e.g. 0.05) and costs two passes; a resumed run may switch it on for its "
                           "last epochs (0 = off)", low=0.0, high=2.0,
                      page={"label": "Sharpness-aware radius rho (0 = off)", "step": 0.01})
    average_from: int = knob(0, "stochastic weight averaging: from this epoch on, average the weights after each "
                                "epoch; the mean (BatchNorm statistics re-estimated) is validated beside the "
                                "weights themselves and kept as the best model when it beats them (0 = off); "
                                "best with a constant or slowly falling LR (--anneal-epochs 0)", low=0, high=1000,
                            page={"label": "Average the weights from epoch (0 = off)"})
    val_views: str = knob("flip", "test-time views each validation face is averaged over, as the product classifies "
                                  "it: the centre crop, or the centre crop and its mirror image (flip); the best "
                                  "model is chosen, and stored, with them", choices=("centre", "flip"))
    recalibrate_images: int = knob(25600, "when the run ends, re-estimate BatchNorm statistics of the best model on "
                                          "this many clean training faces and keep the result if val improves "
                                          "(0 = off; python -m training.recalibrate)", low=0, high=10**7)
    epoch_recalibrate_images: int = knob(6400, "before each validation, re-estimate BatchNorm statistics on this many "
                                               "clean training faces so that epochs are compared (and saved) without "
                                               "the noise of the last augmented batches (0 = off); training itself "
                                               "uses batch statistics and is unaffected", low=0, high=10**7)
    init: str = knob("scratch", "scratch, imagenet (needs the Keras download), or a .keras/.h5 model to fine-tune",
                     fixed=True)
    checkpoint_every: int = knob(200, "batches between resumable checkpoints", low=1, high=10**6)
    limit: int = knob(0, "use only the first N training images (0 = all)", low=0, high=10**7, fixed=True,
                      page={"label": "Training images (0 = all)", "section": "Quick trial"})
    val_limit: int = knob(0, "use only the first N validation images (0 = all)", low=0, high=10**7)
    max_batches: int = knob(0, "cap batches per epoch (0 = full epochs); for quick trials", low=0, high=10**7,
                            page={"label": "Batches per epoch (0 = all)", "section": "Quick trial"})
    skip_unreadable: bool = knob(False, "leave out unreadable images instead of failing")
    strategy: str = knob("default", "tf.distribute strategy: mirrored = all GPUs of this machine; multi-worker = "
                                    "several machines described by the TF_CONFIG environment variable",
                         choices=STRATEGIES)
    seed: int = knob(1, "random seed of the data order, augmentation and initial weights", low=0, high=2**31 - 1,
                     fixed=True)
    print_every: int = knob(20, "batches between progress lines", low=1, high=10**6)

    # ---- checks
    def __post_init__(self):
        for f in fields(self):
            meta, value = f.metadata, getattr(self, f.name)
            if meta["choices"] and value not in meta["choices"]:
                raise ValueError(f"{flag_name(f)} must be one of {', '.join(meta['choices'])}, not {value!r}")
            if meta["low"] is not None and not (meta["low"] <= value <= meta["high"]):
                raise ValueError(f"{flag_name(f)} must be between {meta['low']:g} and {meta['high']:g}, not {value!r}")

    def contradictions(self) -> list[str]:
        """Settings that cannot all hold, each as a sentence. The Training page refuses to start with any; the
        command line warns and trains anyway (an anneal or warmup longer than the run covers all of it)."""
        problems = []
        if self.anneal_epochs > self.epochs:
            problems.append(f"the anneal covers the last {self.anneal_epochs} epochs of a run of {self.epochs}; "
                            "make it at most the number of epochs")
        if self.warmup_epochs > self.epochs:
            problems.append(f"the warmup ({self.warmup_epochs:g} epochs) is longer than the run ({self.epochs})")
        if self.arch == "inceptionv3" and self.image_size < 75:
            problems.append("InceptionV3 needs an image size of at least 75 px")
        if 0 < self.crop_size < 24:
            problems.append(f"a {self.crop_size} px crop keeps too little of a 48 px face; use 0 or 24 to 47")
        if self.min_lr > self.lr:
            problems.append(f"the smallest learning rate ({self.min_lr:g}) is above the peak ({self.lr:g})")
        return problems

    # ---- the command line
    @classmethod
    def parser(cls, prog: str = "python -m training.train", description: str | None = None
               ) -> argparse.ArgumentParser:
        p = argparse.ArgumentParser(prog=prog, description=description,
                                    formatter_class=argparse.RawDescriptionHelpFormatter)
        for f in fields(cls):
            meta = f.metadata
            if f.type == "bool" or isinstance(f.default, bool):
                if meta["switch"]:
                    p.add_argument(meta["switch"], dest=f.name, action="store_false", help=meta["help"])
                else:
                    p.add_argument(flag_name(f), dest=f.name, action="store_true", help=meta["help"])
                continue
            kind = {"int": int, "float": float, "str": str}[f.type]
            kwargs = {"type": kind, "help": meta["help"], "choices": meta["choices"]}
            if f.default is MISSING:
                kwargs["required"] = True
            else:
                kwargs["default"] = f.default
            p.add_argument(flag_name(f), dest=f.name, **kwargs)
        p.add_argument("--out", default=str(runs_root() / "default"),
                       help="run folder: checkpoints, logs, best model")
        p.add_argument("--fresh", action="store_true",
                       help="discard an existing run in --out instead of resuming it")
        return p

    @classmethod
    def from_namespace(cls, args: argparse.Namespace) -> "TrainConfig":
        return cls(**{f.name: getattr(args, f.name) for f in fields(cls)})

    @classmethod
    def from_argv(cls, argv: list[str]) -> "TrainConfig":
        return cls.from_namespace(cls.parser().parse_args(argv))

    def to_argv(self) -> list[str]:
        """Flags that reproduce this configuration."""
        return to_argv(asdict(self))

    # ---- the stored config.json
    def stored(self) -> dict:
        return asdict(self)

    @classmethod
    def from_stored(cls, stored: dict) -> "TrainConfig":
        """A run's config.json (older runs may lack newer knobs: they get the defaults)."""
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in stored.items() if k in names})

    def changed_fixed(self, old: dict) -> list[str]:
        """The settings a resumed run may not change that differ from the stored run `old`."""
        return [f.name for f in fields(self) if f.metadata["fixed"] and old.get(f.name, getattr(self, f.name))
                != getattr(self, f.name)]


def flag_name(f) -> str:
    return f.metadata["flag"] or "--" + f.name.replace("_", "-")


@dataclass(frozen=True)
class Knob:
    """One setting as the Training page offers it: default, help text, choices or bounds, widget hints."""
    name: str
    default: object
    help: str
    choices: tuple | None
    low: float | None
    high: float | None
    page: dict | None
    fixed: bool


KNOBS = {f.name: Knob(f.name, f.default, f.metadata["help"], f.metadata["choices"], f.metadata["low"],
                      f.metadata["high"], f.metadata["page"], f.metadata["fixed"]) for f in fields(TrainConfig)}


_FIELDS = {f.name: f for f in fields(TrainConfig)}


def to_argv(settings: dict) -> list[str]:
    """Flags that reproduce `settings` (a saved config.json, or any part of it). Every value is given, so a run
    resumed after a default changed keeps its own; an on/off flag only when it differs from its default."""
    argv = []
    for name, value in settings.items():
        f = _FIELDS.get(name)
        if f is None:
            continue
        if isinstance(f.default, bool):
            if value != f.default:
                argv.append(f.metadata["switch"] or flag_name(f))
        else:
            argv += [flag_name(f), str(value)]
    return argv
