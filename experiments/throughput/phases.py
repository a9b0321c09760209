"""What the step's phases cost: lazy R1 against R1 in every step, and gradient accumulation's memory.

1. The conditional ResNet step (fashion_mnist_conditional's model at `--width`, batch
   `--batch`) timed with no regulariser, with R1 in every D update, and with R1 lazy every
   16 iterations (its own phase under `lax.cond`), one after another in this process on the
   same fixed batch: the median and the mean over `--steps` steps after a warm-up step.
2. XLA's memory analysis of the compiled DCGAN step at batch `--accum-batch` for
   `train.grad_accum` = 1, 2, 4, 8: the temporaries of one step.

    python experiments/throughput/phases.py [--steps 32] [--width 32] [--batch 32] [--json OUT]

No PyTorch side: these compare gan_jax with itself.
"""

from __future__ import annotations

import argparse
import json
import time
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np

from gan_jax import step
from gan_jax.config import compose
from gan_jax.data.images import ImageDataset
from gan_jax.parts import build as build_parts

SHAPE_ONLY = ImageDataset("fashion_mnist", (28, 28, 1), num_classes=10)  # the step reads a fixed batch
SETTINGS = {
    "none": [],
    "r1_every_step": ["penalty=r1", "penalty.r1.weight=1"],
    "r1_every_16": ["penalty=r1", "penalty.r1.weight=1", "penalty.r1.interval=16"],
}


def lazy_r1_times(steps: int, width: int, batch: int) -> dict[str, dict[str, float]]:
    base = ["experiment=fashion_mnist_conditional", f"model.generator.width={width}"]
    base += [f"model.discriminator.width={width}", f"train.batch_size={batch}"]
    rng = np.random.default_rng(0)
    real = {
        "images": rng.uniform(-1, 1, (1, batch, 28, 28, 1)).astype(np.float32),
        "labels": rng.integers(0, 10, (1, batch)).astype(np.int32),
    }
    times = {}
    for name, extra in SETTINGS.items():
        parts = build_parts(compose(base + extra), SHAPE_ONLY)
        train_step = jax.jit(partial(step.train_step, parts, batch, None))
        state, metrics = train_step(step.init_state(parts, 0), real)
        jax.block_until_ready(metrics)
        seconds = []
        for _ in range(steps):
            start = time.perf_counter()
            state, metrics = train_step(state, real)
            jax.block_until_ready(metrics)
            seconds.append(time.perf_counter() - start)
        times[name] = {"median_ms": 1000 * float(np.median(seconds)), "mean_ms": 1000 * float(np.mean(seconds))}
        print(f"{name:14s} median {times[name]['median_ms']:7.1f} ms   mean {times[name]['mean_ms']:7.1f} ms")
    return times


def accumulation_memory(batch: int) -> dict[int, float]:
    temporaries = {}
    for accum in (1, 2, 4, 8):
        cfg = compose(["experiment=fashion_mnist_dcgan", f"train.batch_size={batch}", f"train.grad_accum={accum}"])
        parts = build_parts(cfg, SHAPE_ONLY)
        real = {"images": jax.ShapeDtypeStruct((1, batch, 28, 28, 1), jnp.float32)}
        compiled = (
            jax.jit(partial(step.train_step, parts, batch, None)).lower(step.init_state(parts, 0), real).compile()
        )
        temporaries[accum] = compiled.memory_analysis().temp_size_in_bytes / 2**20
        print(f"grad_accum={accum}: {temporaries[accum]:6.1f} MiB of temporaries")
    return temporaries


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=32)
    parser.add_argument("--width", type=int, default=32)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--accum-batch", type=int, default=256)
    parser.add_argument("--json", help="write the figures here")
    args = parser.parse_args()
    times = lazy_r1_times(args.steps, args.width, args.batch)
    ratio = times["r1_every_16"]["median_ms"] / times["r1_every_step"]["median_ms"]
    print(f"lazy R1 / R1 in every step (medians): {ratio:.2f}")
    memory = accumulation_memory(args.accum_batch)
    if args.json:
        result = {"lazy_r1": times, "lazy_over_every_step": ratio, "grad_accum_temp_mib": memory}
        with open(args.json, "w") as f:
            json.dump(result, f, indent=2)


if __name__ == "__main__":
    main()
