"""Throughput of the toy MLP GAN step: gan_jax against a same-architecture PyTorch loop.

G and D: 3 hidden layers of 128 ReLU units; ring_2d (8 modes); batch 512;
non-saturating loss; Adam(2e-4, b1=0.5); one D step per G step. Both sides sample the
data and the latents inside the timed step, and both standardise D's input and G's
output the same way.

Rounds alternate the contenders, so machine noise hits both; medians are printed.

    python experiments/throughput/mlp_gan.py [--rounds 7] [--steps 2000] [--torch-device cuda] [--json OUT]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import jax
import torch_reference

from gan_jax import loop, parallel, step
from gan_jax.config import compose

OVERRIDES = [
    "experiment=none",
    "dataset=ring_2d",
    "model=mlp",
    "loss=non_saturating",
    "optim=adam",
    "optim.lr=2e-4",
    "model.generator.width=128",
    "model.generator.depth=3",
    "model.discriminator.width=128",
    "model.discriminator.depth=3",
    "model.generator.activation=relu",
    "model.discriminator.activation=relu",
    "model.latent_dim=2",
    "train.batch_size=512",
    "train.d_steps=1",
    "logger=none",
]

SCAN_STEPS = 100  # steps per compiled call of the lax.scan contender


def gan_jax_parts():
    cfg = compose(OVERRIDES)
    return cfg, loop.build_parts(cfg)


def jax_runner(steps_per_call: int, num_devices: int = 1):
    """A function that runs n steps (n a multiple of steps_per_call) and blocks."""
    cfg, parts = gan_jax_parts()
    placement = parallel.DataParallel(tuple(jax.local_devices()[:num_devices]))
    compiled = parallel.compile_train_steps(parts, cfg.train.batch_size, placement)
    state = [placement.replicate(step.init_population(parts, [0]))]

    def run(n: int) -> None:
        for _ in range(n // steps_per_call):
            state[0], metrics = compiled(state[0], steps_per_call)
        jax.block_until_ready(metrics)

    run(steps_per_call)  # compile
    return run


def flops_per_step() -> float:
    """XLA's own count of the floating-point operations in one compiled step."""
    cfg, parts = gan_jax_parts()
    state = step.init_state(parts, 0)
    one_step = jax.jit(lambda s: step.train_step(parts, cfg.train.batch_size, None, s))
    analysis = one_step.lower(state).compile().cost_analysis()
    analysis = analysis[0] if isinstance(analysis, list) else analysis
    return float(analysis["flops"])


def torch_runner(device: str):
    import torch
    from torch import nn

    torch.set_default_device(device)
    cfg, parts = gan_jax_parts()
    data = parts.data
    modes = torch.tensor(data.modes, dtype=torch.float32)
    loc = torch.tensor(data.loc, dtype=torch.float32)
    scale = torch.tensor(data.scale, dtype=torch.float32)
    batch, latent_dim = cfg.train.batch_size, cfg.model.latent_dim

    def mlp(in_dim, out_dim):
        layers, width = [], in_dim
        for _ in range(3):
            layers += [nn.Linear(width, 128), nn.ReLU()]
            width = 128
        return nn.Sequential(*layers, nn.Linear(width, out_dim))

    torch.manual_seed(0)
    g_net, d_net = mlp(latent_dim, 2), mlp(2, 1)
    generate = lambda z: loc + scale * g_net(z)  # noqa: E731
    discriminate = lambda x: d_net((x - loc) / scale)  # noqa: E731

    def real_batch():
        return modes[torch.randint(len(modes), (batch,))] + data.std * torch.randn(batch, 2)

    run = torch_reference.gan_runner(
        generate,
        discriminate,
        g_net.parameters(),
        d_net.parameters(),
        real_batch,
        lambda: torch.randn(batch, latent_dim),
        warm_up=20,
    )
    return torch_reference.synchronised(run, device)


def steps_per_second(run, steps: int) -> float:
    start = time.perf_counter()
    run(steps)
    return steps / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--steps", type=int, default=2000, help="steps per contender per round")
    parser.add_argument("--torch-device", default="cpu", help="cpu or cuda")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    if args.steps % SCAN_STEPS:
        parser.error(f"--steps={args.steps}: must be a multiple of {SCAN_STEPS} (the scan contender's steps per call)")

    contenders = {}
    try:
        contenders["pytorch_eager"] = torch_runner(args.torch_device)
    except ImportError as error:
        print(f"skipping pytorch_eager: {error}")
    contenders["gan_jax_jit_1step"] = jax_runner(steps_per_call=1)
    contenders[f"gan_jax_scan_{SCAN_STEPS}"] = jax_runner(steps_per_call=SCAN_STEPS)
    rates = {name: [] for name in contenders}
    for _ in range(args.rounds):
        for name, run in contenders.items():
            rates[name].append(steps_per_second(run, args.steps))
    medians = {name: statistics.median(r) for name, r in rates.items()}
    base = medians.get("pytorch_eager", float("nan"))
    flops = flops_per_step()
    print(f"MLP GAN step, ring_2d, batch 512, 3x128 ReLU, {args.rounds} rounds x {args.steps} steps")
    print(f"jax {jax.__version__} on {jax.default_backend()}, {jax.local_device_count()} device(s)")
    print(f"one step = {flops / 1e6:.0f} MFLOP (XLA cost analysis); GFLOP/s below is that x steps/s")
    print(f"{'contender':24s} {'median steps/s':>15s} {'min':>9s} {'max':>9s} {'GFLOP/s':>8s} {'vs PyTorch':>11s}")
    for name, r in rates.items():
        print(
            f"{name:24s} {medians[name]:15.0f} {min(r):9.0f} {max(r):9.0f} "
            f"{medians[name] * flops / 1e9:8.0f} {medians[name] / base:10.2f}x"
        )
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "rates": rates,
                    "medians": medians,
                    "flops_per_step": flops,
                    "ratio_vs_pytorch": {n: m / base for n, m in medians.items()},
                },
                indent=2,
            )
        )


if __name__ == "__main__":
    main()
