"""Throughput of the StyleGAN2 training iteration: gan_jax against NVIDIA's own loss and networks.

The architecture and recipe of `experiment=fashion_mnist_stylegan2` (32x32x1, batch 32,
z = w = 64, mapping 2 layers, channels min(512 // r, 32), 'skip' G with random noise and
style mixing 0.9, 'resnet' D with minibatch std 4, non-saturating loss, Adam(0.0025,
betas 0, 0.99), lazy R1 every 16 and path length every 4, G's EMA), float32, on both sides:

- gan_jax: its compiled training step from the composed config, one iteration per call:
  `gan_jax` as gan-train compiles it (`parallel.compile_train_steps`: shard_map over the
  devices, vmap over a population of one), `gan_jax_jit` as phases.py does (`jax.jit` of
  `step.train_step` alone).
- NVIDIA: stylegan2-ada-pytorch's `training/networks.py` Generator and Discriminator and
  `training/loss.py` StyleGAN2Loss, driven as `training/training_loop.py` drives them:
  phases Gmain, Greg (every 4), Dmain, Dreg (every 16), each with its Adam (lr and betas
  rescaled for the lazy term), gradients through `misc.nan_to_num`, then G_ema's update.

Both sides train on one fixed real batch, so only the iteration is timed. Reported:
(a) D main + G main only: gan_jax's step composed with `penalty=none`, NVIDIA's Gmain and
    Dmain phases (no lazy phase in either);
(b) the full iteration with the lazy phases amortised: 16 consecutive iterations (1 R1, 4
    path-length phases), timed together;
then one 16-iteration window timed iteration by iteration (NVIDIA: phase by phase).
Contenders alternate within each round; medians over rounds, images/s and gan_jax / NVIDIA.

NVIDIA's code is not part of this repository (its licence forbids copying it): pass a
checkout with `--nvidia DIR` or NVIDIA_DIR. Their custom ops (bias_act, upfirdn2d) run
their reference implementations on the CPU; on CUDA they compile if they can, and the
output says which path ran (`--nvidia-ref-ops` forces the reference ones).

    python experiments/throughput/stylegan2.py --nvidia DIR [--rounds 3] [--steps 8] [--windows 1]
        [--channels 1] [--width 32] [--channel-base 512] [--latent-dim 64] [--batch 32]
        [--torch-device cuda] [--torch-threads 2,1] [--tf32] [--nvidia-ref-ops] [--json OUT]

On a CPU shared with other jobs, PyTorch's OpenMP threads spin-wait at every parallel
region and collapse when a core is taken (phases of 0.2 s took 0.5 to 5 s): the script sets
OMP_WAIT_POLICY=PASSIVE unless it is set (ACTIVE restores the spinning); `--torch-threads 1`
also keeps the figure steady.

A CIFAR-sized setting on a GPU: `--channels 3 --width 512 --channel-base 16384 --latent-dim 512`.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import statistics
import sys
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import jax
import numpy as np
import torch_reference

from gan_jax import loop, parallel, step
from gan_jax.config import compose
from gan_jax.data import ImageDataset

NVIDIA_REPO = "https://github.com/NVlabs/stylegan2-ada-pytorch"
NVIDIA_COMMIT = "d72cc7d041b42ec8e806021a205ed9349f87c6a4"
RESOLUTION = 32
WINDOW = 16  # iterations that hold one R1 (every 16) and four path-length phases (every 4)


@dataclass(frozen=True)
class Setting:
    channels: int  # image channels
    width: int  # channel_max
    channel_base: int  # channels at resolution r: min(channel_base // r, channel_max)
    latent_dim: int  # z and w
    batch: int

    def overrides(self, lazy: bool) -> list[str]:
        out = [
            "experiment=fashion_mnist_stylegan2",
            "logger=none",
            f"train.batch_size={self.batch}",
            f"model.latent_dim={self.latent_dim}",
            f"model.w_dim={self.latent_dim}",
        ]
        if self.channels == 3:
            out.append("dataset=cifar10")
        for player in ("generator", "discriminator"):
            out += [f"model.{player}.channel_max={self.width}", f"model.{player}.channel_base={self.channel_base}"]
        return out + ([] if lazy else ["penalty=none"])

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return (RESOLUTION, RESOLUTION, self.channels)

    def fixed_real_batch(self) -> np.ndarray:
        return np.random.default_rng(0).uniform(-1, 1, (self.batch, *self.image_shape)).astype(np.float32)

    def describe(self) -> str:
        widths = [min(self.channel_base // r, self.width) for r in (4, 8, 16, 32)]
        return (
            f"{RESOLUTION}x{RESOLUTION}x{self.channels}, batch {self.batch}, channels at 4..32: "
            f"{'/'.join(map(str, widths))} (channel_base {self.channel_base}, channel_max {self.width}), "
            f"z = w = {self.latent_dim}, float32"
        )


# ---------------------------------------------------------------------------------------
# gan_jax


class JaxRunner:
    """gan_jax's step on one device, one iteration per call; `run(n)` blocks.

    `plain_jit` False: as gan-train compiles it (`parallel.compile_train_steps`: shard_map
    over the devices, vmap over a population of one replica); True: `jax.jit` of
    `step.train_step` alone, as phases.py times it (no population axis, no shard_map).
    """

    def __init__(self, setting: Setting, lazy: bool, plain_jit: bool = False):
        cfg = compose(setting.overrides(lazy))
        dataset = ImageDataset(cfg.dataset.name, setting.image_shape)  # the step reads the fixed batch only
        parts = loop.build_parts(cfg, dataset)
        real = setting.fixed_real_batch()[None]  # one batch per D step
        self.compiled: Callable[[Any], tuple[Any, Any]]
        if plain_jit:
            train_step = jax.jit(partial(step.train_step, parts, setting.batch, None))
            self.compiled = lambda state: train_step(state, {"images": real})
            self.state = step.init_state(parts, 0)
        else:
            placement = parallel.DataParallel(tuple(jax.local_devices()[:1]), cfg.train.parallel)
            compiled = parallel.compile_train_steps(parts, setting.batch, placement)
            placed = placement.shard_batches({"images": real[None, None]}, setting.batch)
            self.compiled = lambda state: compiled(state, 1, placed)
            self.state = placement.replicate(step.init_population(parts, [0]))
        self.iteration = 0
        start = time.perf_counter()
        self.run(1)  # compiles; iteration 0 runs both lazy phases
        self.first_call_s = time.perf_counter() - start

    def run(self, n: int) -> None:
        for _ in range(n):
            self.state, metrics = self.compiled(self.state)
            self.iteration += 1
        jax.block_until_ready((self.state, metrics))

    def breakdown(self) -> dict[str, list[float]]:
        """One window, timed iteration by iteration, by the lazy phases each ran."""
        times: dict[str, list[float]] = {"main_only": [], "path_length": [], "path_length_r1": []}
        for _ in range(WINDOW):
            kind = _iteration_kind(self.iteration)
            start = time.perf_counter()
            self.run(1)
            times[kind].append(time.perf_counter() - start)
        return times


def _iteration_kind(index: int) -> str:
    if index % 16 == 0:
        return "path_length_r1"
    return "path_length" if index % 4 == 0 else "main_only"


# ---------------------------------------------------------------------------------------
# NVIDIA


def import_nvidia(directory: str | None) -> Path:
    """NVIDIA's checkout on sys.path; exits with how to get it (or torch) when there is none."""
    path = Path(directory).expanduser() if directory else None
    if path is None or not (path / "training" / "networks.py").is_file():
        where = f"{path} has no training/networks.py" if path else "no --nvidia DIR and no NVIDIA_DIR"
        sys.exit(
            f"stylegan2.py: needs a checkout of NVIDIA's stylegan2-ada-pytorch ({where}):\n"
            f"    git clone {NVIDIA_REPO} DIR && git -C DIR checkout {NVIDIA_COMMIT}\n"
            "then pass --nvidia DIR (or set NVIDIA_DIR=DIR)"
        )
    try:
        import torch  # noqa: F401
    except ImportError:
        sys.exit("stylegan2.py: needs torch beside gan_jax: pip install -e '.[bench]'")
    sys.path.insert(0, str(path))
    return path


def nvidia_op_paths(device: str) -> dict[str, str]:
    """Which implementation of NVIDIA's custom ops ran (read after the first iteration)."""
    import torch
    from torch_utils.ops import bias_act, conv2d_gradfix, upfirdn2d

    def plugin(module: Any) -> str:
        if not device.startswith("cuda"):
            return "reference (device cpu)"
        if module._plugin is not None:
            return "CUDA plugin"
        return "reference (the plugin did not build)" if module._inited else "reference (forced)"

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        custom = conv2d_gradfix._should_use_custom_op(torch.zeros(1, device=device))
    return {
        "bias_act": plugin(bias_act),
        "upfirdn2d": plugin(upfirdn2d),
        "conv2d_gradfix": "custom op" if custom else "torch.nn.functional.conv2d (fallback)",
    }


class NvidiaRunner:
    """NVIDIA's networks and StyleGAN2Loss driven as training_loop.py drives them; `run(n)` blocks."""

    def __init__(self, setting: Setting, lazy: bool, device: str, cfg: Any, tf32: bool, ref_ops: bool):
        import torch
        from torch_utils import misc
        from torch_utils.ops import bias_act, conv2d_gradfix, upfirdn2d
        from training import networks
        from training.loss import StyleGAN2Loss

        if ref_ops:  # as if their plugins had failed to build
            for module in (bias_act, upfirdn2d):
                module._inited, module._plugin = True, None
        torch.manual_seed(0)
        torch.backends.cudnn.benchmark = True  # training_loop.py's settings
        torch.backends.cuda.matmul.allow_tf32 = tf32
        torch.backends.cudnn.allow_tf32 = tf32
        conv2d_gradfix.enabled = True
        self.torch, self.misc, self.device = torch, misc, device
        model, g, d = cfg.model, cfg.model.generator, cfg.model.discriminator
        assert g.channel_base == d.channel_base and g.channel_max == d.channel_max
        common = dict(c_dim=0, img_resolution=RESOLUTION, img_channels=setting.channels)
        self.G = networks.Generator(
            z_dim=model.latent_dim,
            w_dim=model.w_dim,
            mapping_kwargs=dict(num_layers=model.mapping.layers, lr_multiplier=model.mapping.lr_multiplier),
            synthesis_kwargs=dict(channel_base=g.channel_base, channel_max=g.channel_max, conv_clamp=g.conv_clamp),
            **common,
        )
        self.G = self.G.train().requires_grad_(False).to(device)
        self.D = networks.Discriminator(
            channel_base=d.channel_base,
            channel_max=d.channel_max,
            conv_clamp=d.conv_clamp,
            architecture=d.architecture,
            epilogue_kwargs=dict(mbstd_group_size=d.mbstd_group_size, mbstd_num_channels=d.mbstd_num_channels),
            **common,
        )
        self.D = self.D.train().requires_grad_(False).to(device)
        self.G_ema = copy.deepcopy(self.G).eval()
        pl = cfg.penalty.path_length
        self.loss = StyleGAN2Loss(
            device=torch.device(device),
            G_mapping=self.G.mapping,
            G_synthesis=self.G.synthesis,
            D=self.D,
            style_mixing_prob=model.mapping.style_mixing,
            r1_gamma=cfg.penalty.r1.weight,
            pl_batch_shrink=pl.batch_shrink,
            pl_decay=pl.decay,
            pl_weight=pl.weight,
        )
        # training_loop.py's phases with lazy regularisation; (a) keeps only the main ones.
        self.phases = []
        for name, module, interval in (("G", self.G, pl.interval), ("D", self.D, cfg.penalty.r1.interval)):
            mb_ratio = interval / (interval + 1)
            betas = [beta**mb_ratio for beta in (cfg.optim.b1, cfg.optim.b2)]
            opt = torch.optim.Adam(module.parameters(), lr=cfg.optim.lr * mb_ratio, betas=betas, eps=1e-8)
            self.phases.append((name + "main", module, opt, 1))
            if lazy:
                self.phases.append((name + "reg", module, opt, interval))
        self.ema_kimg, self.ema_rampup = cfg.train.ema_kimg, cfg.train.ema_rampup
        self.batch, self.z_dim = setting.batch, model.latent_dim
        real = torch.from_numpy(setting.fixed_real_batch()).permute(0, 3, 1, 2).contiguous()
        self.real_img = real.to(device)
        self.c = torch.zeros([setting.batch, 0], device=device)
        self.batch_idx = self.cur_nimg = 0
        self.phase_seconds: dict[str, list[float]] | None = None
        self.run = torch_reference.synchronised(self._iterations, device)
        start = time.perf_counter()
        self.run(1)
        self.first_call_s = time.perf_counter() - start

    def _timed(self, name: str, work: Callable[[], None]) -> None:
        if self.phase_seconds is None:
            work()
            return
        self._synchronise()
        start = time.perf_counter()
        work()
        self._synchronise()
        self.phase_seconds.setdefault(name, []).append(time.perf_counter() - start)

    def one_iteration(self) -> None:
        torch = self.torch
        all_gen_z = torch.randn([len(self.phases) * self.batch, self.z_dim], device=self.device).split(self.batch)
        for (name, module, opt, interval), gen_z in zip(self.phases, all_gen_z, strict=True):
            if self.batch_idx % interval != 0:
                continue

            def phase(name=name, module=module, opt=opt, interval=interval, gen_z=gen_z) -> None:
                opt.zero_grad(set_to_none=True)
                module.requires_grad_(True)
                self.loss.accumulate_gradients(
                    phase=name,
                    real_img=self.real_img,
                    real_c=self.c,
                    gen_z=gen_z,
                    gen_c=self.c,
                    sync=True,
                    gain=interval,
                )
                module.requires_grad_(False)
                for param in module.parameters():
                    if param.grad is not None:
                        self.misc.nan_to_num(param.grad, nan=0, posinf=1e5, neginf=-1e5, out=param.grad)
                opt.step()

            self._timed(name, phase)
        self._timed("G_ema", self.update_ema)
        self.cur_nimg += self.batch
        self.batch_idx += 1

    def update_ema(self) -> None:
        ema_nimg = self.ema_kimg * 1000
        if self.ema_rampup is not None:
            ema_nimg = min(ema_nimg, self.cur_nimg * self.ema_rampup)
        ema_beta = 0.5 ** (self.batch / max(ema_nimg, 1e-8))
        for p_ema, p in zip(self.G_ema.parameters(), self.G.parameters(), strict=True):
            p_ema.copy_(p.lerp(p_ema, ema_beta))
        for b_ema, b in zip(self.G_ema.buffers(), self.G.buffers(), strict=True):
            b_ema.copy_(b)

    def _synchronise(self) -> None:
        if self.device.startswith("cuda"):
            self.torch.cuda.synchronize()

    def _iterations(self, n: int) -> None:
        for _ in range(n):
            self.one_iteration()

    def breakdown(self) -> dict[str, list[float]]:
        """One window, timed phase by phase (each phase synchronised on CUDA)."""
        self.phase_seconds = {}
        self.run(WINDOW)
        seconds, self.phase_seconds = self.phase_seconds, None
        return seconds


# ---------------------------------------------------------------------------------------


def images_per_second(run: Callable[[int], None], iterations: int, batch: int) -> float:
    start = time.perf_counter()
    run(iterations)
    return iterations * batch / (time.perf_counter() - start)


def with_torch_threads(work: Callable[..., Any], threads: int) -> Callable[..., Any]:
    """`work`, run with torch limited to `threads` intra-op threads (restored after)."""
    import torch

    def run(*args: Any) -> Any:
        before = torch.get_num_threads()
        torch.set_num_threads(threads)
        try:
            return work(*args)
        finally:
            torch.set_num_threads(before)

    return run


def _table(title: str, rates: dict[str, list[float]], batch: int) -> dict[str, float]:
    medians = {name: statistics.median(r) for name, r in rates.items()}
    references = [name for name in rates if name.startswith("nvidia")]
    print(title)
    print(
        f"  {'contender':18s} {'images/s':>9s} {'min..max':>11s} {'ms/iter':>8s}"
        + "".join(f" {'vs ' + ref:>20s}" for ref in references)
    )
    for name, r in rates.items():
        print(
            f"  {name:18s} {medians[name]:9.1f} {f'{min(r):.1f}..{max(r):.1f}':>11s} "
            f"{batch / medians[name] * 1e3:8.0f}"
            + "".join(f" {medians[name] / medians[ref]:19.2f}x" for ref in references)
        )
    return medians


def _summary(rates: dict[str, list[float]], medians: dict[str, float]) -> dict[str, Any]:
    references = [name for name in rates if name.startswith("nvidia")]
    ratios = {
        f"{name}/{ref}": medians[name] / medians[ref]
        for name in rates
        if name.startswith("gan_jax")
        for ref in references
    }
    return {"rates": rates, "medians": medians, "ratios": ratios}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nvidia", default=os.environ.get("NVIDIA_DIR"), help="stylegan2-ada-pytorch checkout")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=8, help="(a): iterations per contender per round")
    parser.add_argument("--windows", type=int, default=1, help=f"(b): {WINDOW}-iteration windows per round")
    parser.add_argument("--channels", type=int, default=1, choices=(1, 3), help="image channels")
    parser.add_argument("--width", type=int, default=32, help="channel_max of G and D")
    parser.add_argument("--channel-base", type=int, default=512, help="channels at r: min(base // r, width)")
    parser.add_argument("--latent-dim", type=int, default=64, help="z and w")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--torch-device", default="cpu", help="cpu or cuda")
    parser.add_argument(
        "--torch-threads",
        type=lambda text: [int(n) for n in text.split(",")],
        help="comma-separated: one NVIDIA contender per torch thread count (default: one, torch's own count)",
    )
    parser.add_argument("--tf32", action="store_true", help="let torch use TF32 (NVIDIA's --allow-tf32)")
    parser.add_argument("--nvidia-ref-ops", action="store_true", help="NVIDIA's reference ops even on CUDA")
    parser.add_argument("--no-breakdown", action="store_true", help="skip the iteration-by-iteration window")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    import_nvidia(args.nvidia)
    import torch

    default_threads = torch.get_num_threads()
    threads = {"nvidia": default_threads}
    if args.torch_threads:
        threads = {f"nvidia_{n}thread{'s' if n > 1 else ''}": n for n in args.torch_threads}
    setting = Setting(args.channels, args.width, args.channel_base, args.latent_dim, args.batch)
    recipe = compose(setting.overrides(lazy=True))  # NVIDIA's side reads its settings from the preset's

    def both(lazy: bool) -> tuple[dict[str, Callable[[int], None]], NvidiaRunner, dict[str, JaxRunner]]:
        """(a) or (b)'s contenders: one NVIDIA runner under each thread count, and gan_jax's two."""
        nvidia = NvidiaRunner(setting, lazy, args.torch_device, recipe, args.tf32, args.nvidia_ref_ops)
        jax_sides = {"gan_jax": JaxRunner(setting, lazy), "gan_jax_jit": JaxRunner(setting, lazy, plain_jit=True)}
        runs = {name: with_torch_threads(nvidia.run, n) for name, n in threads.items()}
        return {**runs, **{name: side.run for name, side in jax_sides.items()}}, nvidia, jax_sides

    (runs_a, nvidia_a, jax_a), (runs_b, nvidia_b, jax_b) = both(lazy=False), both(lazy=True)
    ops = nvidia_op_paths(args.torch_device)
    first_calls = {"a_nvidia": nvidia_a.first_call_s, "b_nvidia": nvidia_b.first_call_s}
    for part, sides in (("a", jax_a), ("b", jax_b)):
        first_calls.update({f"{part}_{name}": side.first_call_s for name, side in sides.items()})
    rates_a: dict[str, list[float]] = {name: [] for name in runs_a}
    rates_b: dict[str, list[float]] = {name: [] for name in runs_b}
    for _ in range(args.rounds):
        for name, run in runs_a.items():
            rates_a[name].append(images_per_second(run, args.steps, args.batch))
        for name, run in runs_b.items():
            rates_b[name].append(images_per_second(run, WINDOW * args.windows, args.batch))

    print(
        f"StyleGAN2 iteration, {setting.describe()}; {args.rounds} rounds; jax {jax.__version__} on "
        f"{jax.default_backend()}, torch {torch.__version__} on {args.torch_device} "
        f"(threads: {', '.join(f'{k} {v}' for k, v in threads.items())}; torch's default {default_threads}; "
        f"OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY', 'unset')})"
    )
    print("NVIDIA's ops: " + ", ".join(f"{op} {path}" for op, path in ops.items()))
    medians_a = _table(f"(a) D main + G main, no lazy phase: {args.steps} iterations a round", rates_a, args.batch)
    medians_b = _table(
        f"(b) full iteration, lazy phases amortised: {args.windows} x {WINDOW} iterations a round "
        f"(each {WINDOW}: {WINDOW} D main + G main, 4 path length, 1 R1)",
        rates_b,
        args.batch,
    )
    print("first call (s): " + ", ".join(f"{k} {v:.1f}" for k, v in first_calls.items()))

    breakdown = None
    if not args.no_breakdown:
        breakdown = {name: side.breakdown() for name, side in jax_b.items()}
        for name, n in threads.items():
            breakdown[name] = with_torch_threads(nvidia_b.breakdown, n)()
        print(f"one {WINDOW}-iteration window each, median ms (gan_jax by iteration, NVIDIA by phase):")
        for side, seconds in breakdown.items():
            print(
                f"  {side:18s} " + ", ".join(f"{k} {1e3 * statistics.median(v):.0f}" for k, v in seconds.items() if v)
            )
    if args.json:
        result = {
            "setting": setting.__dict__,
            "torch_threads": threads,
            "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"),
            "nvidia_ops": ops,
            "main_only": _summary(rates_a, medians_a),
            "amortised": _summary(rates_b, medians_b),
            "first_call_s": first_calls,
            "breakdown_s": breakdown,
        }
        args.json.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")  # leave the GPU's memory to torch too
    # Read when torch loads OpenMP (in main): sleeping, not spinning, threads keep PyTorch's
    # figure meaningful on a shared CPU; OMP_WAIT_POLICY=ACTIVE restores the default.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    main()
