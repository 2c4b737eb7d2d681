"""Training throughput (images/s) of a network under the trainer's options: float32 or mixed bfloat16,
with and without XLA (`jit_compile`), on random faces so that it needs no dataset.

    python benchmarks/bench_training_speed.py [--arch inceptionv3] [--image-size 75] [--batch-size 64]
        [--batches 12] [--variants float32,bfloat16,float32+xla]
    python benchmarks/bench_training_speed.py --arch vgg --image-size 40 --variants float32   # the teacher

Each variant runs in its own process (Keras' dtype policy is global), after warm-up batches that are not timed.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from training.config import ARCHITECTURES  # noqa: E402


def measure(arch: str, variant: str, image_size: int, batch_size: int, batches: int) -> dict:
    os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import numpy as np
    import keras

    precision, _, xla = variant.partition("+")
    if precision == "bfloat16":
        keras.mixed_precision.set_global_policy("mixed_bfloat16")
    from training.model import build_network

    model = build_network(arch, image_size)
    model.compile(optimizer=keras.optimizers.AdamW(5e-4), loss="categorical_crossentropy",
                  jit_compile=bool(xla))
    rng = np.random.default_rng(0)
    x = rng.uniform(-1, 1, (batch_size, image_size, image_size, 3)).astype("float32")
    y = np.eye(7, dtype="float32")[rng.integers(0, 7, batch_size)]
    for _ in range(3):
        model.train_on_batch(x, y)
    started = time.perf_counter()
    for _ in range(batches):
        model.train_on_batch(x, y)
    seconds = time.perf_counter() - started
    return {"arch": arch, "variant": variant, "image_size": image_size, "batch_size": batch_size,
            "images_per_s": round(batches * batch_size / seconds, 1)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--arch", default="inceptionv3", choices=ARCHITECTURES)
    parser.add_argument("--image-size", type=int, default=75)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--batches", type=int, default=12)
    parser.add_argument("--variants", default="float32,bfloat16,float32+xla")
    parser.add_argument("--one", help=argparse.SUPPRESS)  # the child process's variant
    args = parser.parse_args()
    if args.one:
        print(json.dumps(measure(args.arch, args.one, args.image_size, args.batch_size, args.batches)))
        return 0
    for variant in args.variants.split(","):
        out = subprocess.run([sys.executable, __file__, "--one", variant, "--arch", args.arch,
                              "--image-size", str(args.image_size), "--batch-size", str(args.batch_size),
                              "--batches", str(args.batches)],
                             capture_output=True, text=True)
        lines = [line for line in out.stdout.splitlines() if line.startswith("{")]
        print(lines[-1] if lines else json.dumps({"variant": variant, "error": out.stderr.strip()[-400:]}),
              flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
