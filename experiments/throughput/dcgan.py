"""Throughput of the DCGAN step on 28x28 images: gan_jax against a same-architecture PyTorch loop.

The Fashion-MNIST DCGAN of `experiment=fashion_mnist_dcgan`: G 100 -> 7x7x128 -> 14x14x64
-> 28x28x1, D 28x28x1 -> 14x14x64 -> 7x7x128 -> 1 (BatchNorm, LeakyReLU 0.2), batch 64,
non-saturating loss, Adam(2e-4, b1=0.5), one D step per G step, D seeing real and
generated images in separate passes (its batch norm needs them apart). Both sides train
on the same fixed real batch, so the step alone is timed; the input pipeline is measured
separately, against the step's consumption. Rounds alternate the contenders; medians
are printed.

Also: the first call's time (compilation) in a fresh process, with JAX's persistent
compilation cache empty and then warm.

    python experiments/throughput/dcgan.py [--rounds 5] [--steps 20] [--data-dir DIR] [--torch-device cuda]
        [--skip-pipeline] [--contenders A,B,...] [--json OUT]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import jax
import numpy as np
import torch_reference

from gan_jax import feed, loop, parallel, step
from gan_jax.config import compose
from gan_jax.data import ImageDataset

BATCH = 64
SHAPE_ONLY = ImageDataset("fashion_mnist", (28, 28, 1))  # the step reads no data: a fixed batch is fed


def compose_config(upsample: str, data_dir: str | None, precision: str = "float32", parallel: str = "shard_map"):
    overrides = [
        "experiment=fashion_mnist_dcgan",
        "logger=none",
        f"model.generator.upsample={upsample}",
        f"train.precision={precision}",
        f"train.parallel={parallel}",
    ]
    if data_dir:
        overrides.append(f"dataset.data_dir={data_dir}")
    return compose(overrides)


def fixed_real_batch() -> np.ndarray:
    return np.random.default_rng(0).uniform(-1, 1, (BATCH, 28, 28, 1)).astype(np.float32)


def jax_runner(upsample: str, precision: str = "float32", mode: str = "shard_map"):
    """A function that runs n steps, one compiled call each (as gan-train does for DCGAN), and blocks."""
    cfg = compose_config(upsample, None, precision, mode)
    parts = loop.build_parts(cfg, SHAPE_ONLY)
    placement = parallel.DataParallel(tuple(jax.local_devices()[:1]), cfg.train.parallel)
    compiled = parallel.compile_train_steps(parts, BATCH, placement)
    real = placement.shard_batches({"images": fixed_real_batch()[None, None, None]}, BATCH)
    state = [placement.replicate(step.init_population(parts, [0]))]

    def run(n: int) -> None:
        for _ in range(n):
            state[0], metrics = compiled(state[0], 1, real)
        jax.block_until_ready(metrics)

    start = time.perf_counter()
    run(1)
    return run, time.perf_counter() - start


def torch_runner(upsample: str, device: str):
    import torch
    from torch import nn

    torch.manual_seed(0)
    torch.set_default_device(device)

    def up(c_in: int, c_out: int) -> nn.Module:
        if upsample == "transpose":
            return nn.ConvTranspose2d(c_in, c_out, 4, 2, 1)
        return nn.Sequential(nn.Conv2d(c_in, 4 * c_out, 2, padding="same"), nn.PixelShuffle(2))

    class Generator(nn.Module):
        def __init__(self):
            super().__init__()
            self.project = nn.Sequential(
                nn.Linear(100, 7 * 7 * 128), nn.Unflatten(1, (128, 7, 7)), nn.BatchNorm2d(128), nn.ReLU()
            )
            self.body = nn.Sequential(up(128, 64), nn.BatchNorm2d(64), nn.ReLU(), up(64, 1), nn.Tanh())

        def forward(self, z):
            return self.body(self.project(z))

    g_net = Generator()
    d_net = nn.Sequential(
        nn.Conv2d(1, 64, 4, 2, 1),
        nn.LeakyReLU(0.2),
        nn.Conv2d(64, 128, 4, 2, 1),
        nn.BatchNorm2d(128),
        nn.LeakyReLU(0.2),
        nn.Flatten(),
        nn.Linear(7 * 7 * 128, 1),
    )
    real = torch.from_numpy(fixed_real_batch()).permute(0, 3, 1, 2).contiguous().to(device)
    run = torch_reference.gan_runner(
        g_net,
        d_net,
        g_net.parameters(),
        d_net.parameters(),
        lambda: real,
        lambda: torch.randn(BATCH, 100),
        warm_up=3,
        joint_d_pass=False,
    )
    return torch_reference.synchronised(run, device)


# name -> (torch device -> a function that runs n steps and blocks); rounds alternate them.
CONTENDERS: dict[str, Callable[[str], Callable[[int], None]]] = {
    "pytorch_transpose": lambda device: torch_runner("transpose", device),
    "pytorch_subpixel": lambda device: torch_runner("subpixel", device),
    "gan_jax_subpixel": lambda _: jax_runner("subpixel")[0],
    "gan_jax_subpixel_bfloat16": lambda _: jax_runner("subpixel", "bfloat16")[0],
    "gan_jax_subpixel_pmap": lambda _: jax_runner("subpixel", mode="pmap")[0],
    "gan_jax_transpose": lambda _: jax_runner("transpose")[0],
    "gan_jax_resize_conv": lambda _: jax_runner("resize_conv")[0],
}


def images_per_second(run, steps: int) -> float:
    start = time.perf_counter()
    run(steps)
    return steps * BATCH / (time.perf_counter() - start)


def pipeline_images_per_second(data_dir: str | None, steps: int = 200) -> dict[str, float]:
    """Real Fashion-MNIST batches: host assembly alone, and through the prefetching device feed."""
    cfg = compose_config("subpixel", data_dir)
    dataset = loop.build_parts(cfg).data
    start = time.perf_counter()
    for s in range(steps):
        feed.chunk_batches(dataset, [0], s, 1, 1, BATCH)
    host = steps * BATCH / (time.perf_counter() - start)
    start = time.perf_counter()
    one_device = parallel.DataParallel(tuple(jax.local_devices()[:1]))
    for batch in feed.device_batches(dataset, [0], 0, [1] * steps, 1, BATCH, one_device):
        jax.block_until_ready(batch)
    device = steps * BATCH / (time.perf_counter() - start)
    return {"host_batches": host, "device_feed": device}


def first_call_seconds(cache_dir: str) -> float:
    """Runs this script in a fresh process that only compiles and runs the first step."""
    command = [sys.executable, __file__, "--first-call-only", "--cache-dir", cache_dir]
    out = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    return float(out.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--steps", type=int, default=20, help="steps per contender per round")
    parser.add_argument("--data-dir", help="TFDS data directory (Fashion-MNIST is prepared there if absent)")
    parser.add_argument("--torch-device", default="cpu", help="cpu or cuda")
    parser.add_argument("--skip-pipeline", action="store_true", help="do not measure the input pipeline")
    parser.add_argument(
        "--contenders",
        type=lambda text: text.split(","),
        default=list(CONTENDERS),
        help=f"comma-separated, from {','.join(CONTENDERS)} (default: all)",
    )
    parser.add_argument("--json", type=Path, help="also write the figures here")
    parser.add_argument("--first-call-only", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--cache-dir", help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.first_call_only:
        jax.config.update("jax_compilation_cache_dir", args.cache_dir)
        jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
        print(jax_runner("subpixel")[1])
        return

    with tempfile.TemporaryDirectory() as cache:
        cold = first_call_seconds(cache)
        warm = first_call_seconds(cache)
    pipeline = None if args.skip_pipeline else pipeline_images_per_second(args.data_dir)

    unknown = set(args.contenders) - set(CONTENDERS)
    if unknown:
        parser.error(f"--contenders: unknown {', '.join(sorted(unknown))}; valid: {', '.join(CONTENDERS)}")
    contenders = {}
    for name in (n for n in CONTENDERS if n in args.contenders):
        try:
            contenders[name] = CONTENDERS[name](args.torch_device)
        except ImportError as error:
            print(f"skipping {name}: {error}")
    rates: dict[str, list[float]] = {name: [] for name in contenders}
    for _ in range(args.rounds):
        for name, run in contenders.items():
            rates[name].append(images_per_second(run, args.steps))
    medians = {name: statistics.median(r) for name, r in rates.items()}

    print(
        f"DCGAN step, 28x28x1, batch {BATCH}, {args.rounds} rounds x {args.steps} steps; "
        f"jax {jax.__version__} on {jax.default_backend()}, torch on {args.torch_device} "
        f"({_torch_threads()} threads)"
    )
    references = [name for name in ("pytorch_transpose", "pytorch_subpixel") if name in medians]
    print(
        f"{'contender':26s} {'images/s':>9s} {'min':>7s} {'max':>7s} {'ms/step':>8s}"
        + "".join(f" {'vs ' + name:>22s}" for name in references)
    )
    for name, r in rates.items():
        print(
            f"{name:26s} {medians[name]:9.0f} {min(r):7.0f} {max(r):7.0f} {BATCH / medians[name] * 1e3:8.1f}"
            + "".join(f" {medians[name] / medians[ref]:21.2f}x" for ref in references)
        )
    consumed = medians.get("gan_jax_subpixel", max(medians.values()))
    print(f"first call (compile + 1 step), fresh process: cache cold {cold:.1f} s, warm {warm:.1f} s")
    if pipeline:
        print(
            f"input pipeline: host {pipeline['host_batches']:.0f} images/s "
            f"({pipeline['host_batches'] / consumed:.0f}x the step's {consumed:.0f}), "
            f"prefetching device feed {pipeline['device_feed']:.0f} images/s "
            f"({pipeline['device_feed'] / consumed:.0f}x)"
        )
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "rates": rates,
                    "medians": medians,
                    "vs_pytorch": {name: {ref: medians[name] / medians[ref] for ref in references} for name in medians},
                    "first_call_cold_s": cold,
                    "first_call_warm_s": warm,
                    "pipeline": pipeline,
                },
                indent=2,
            )
        )


def _torch_threads() -> int | None:
    try:
        import torch
    except ImportError:
        return None
    return torch.get_num_threads()


if __name__ == "__main__":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    main()
