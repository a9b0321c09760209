"""Throughput of published GANs' training iterations: gan_jax against the authors' own PyTorch code.

One case per model (`--model`), each the same architecture and algorithm on both sides,
timed side by side in one process (one interpreter with jax and torch):

- r3gan: gan_jax's `model=r3gan loss=rpgan penalty=[r1,r2]` against brownvc/R3GAN's
  `R3GAN/Networks.py` Generator and Discriminator and `R3GAN/Trainer.py`
  AdversarialTraining (RpGAN, R1 and R2 as theirs computes them), driven as their
  `training/training_loop.py` drives them: a D phase (RpGAN + gamma / 2 (R1 + R2) on a real
  and a generated batch), then a G phase (RpGAN against the updated D), each with its
  Adam(2e-4, betas (0, 0.9), eps 1e-8). 32x32x3, unconditional, float32 on both sides (their
  preset runs 3 stages of G and D in bfloat16), no EMA, augmentation or schedules (the
  values at the start of their CIFAR-10 schedules, gamma 0.05). By default a CPU-sized width
  (`--width 128 --blocks 1`, the preset's 16 channels a group; batch 8); `--preset` is their
  CIFAR-10 preset (768 wide, 2 blocks a stage, cardinality 96: 20.7M parameters in G and in
  D; batch 512), for GPUs.
- biggan: gan_jax's `experiment=brock2019_biggan_cifar10` against ajbrock/BigGAN-PyTorch's
  `BigGAN.py` and `train_fns.py` GAN_training_function, configured as `train.py` configures
  them from `scripts/launch_cifar_ema.sh` (one device, so no --parallel): 4 D steps (hinge,
  each on a real batch of its own), a G step, G's EMA; class-conditional, spectral norm,
  Adam(2e-4, betas (0, 0.999)). By default G_ch = D_ch = 32 (`--width`), batch 8; `--preset`
  their ch 64 (G 4.3M, D 4.2M parameters), batch 50. Registered where gan_jax has the model.

gan_jax's side is its training step from the composed config, one iteration per call:
`gan_jax` as gan-train compiles it (`parallel.compile_train_steps`: shard_map over one
device, vmap over a population of one replica), `gan_jax_jit` (`--jax jit` or
`--jax train,jit`) `jax.jit(step.train_step)` alone, as phases.py times it. Both sides train
on one fixed real batch and draw their latents inside the iteration. Rounds alternate the
contenders, so the machine's load hits all of them; medians over the rounds are printed, with
each side's parameter counts (asserted equal) and first call (gan_jax: compilation, timed
apart from the first iteration; torch: the first iteration).

The authors' code is not part of this repository: each case imports a checkout named by an
environment variable (R3GAN_SRC, BIGGAN_SRC); without it the script says how to get one.

    pip install -e '.[bench]'     # torch beside gan_jax, in an environment of its own
    git clone https://github.com/brownvc/R3GAN $R3GAN_SRC      # and/or ajbrock/BigGAN-PyTorch at $BIGGAN_SRC
    R3GAN_SRC=... python experiments/throughput/model_zoo.py [--model r3gan|biggan|all]
        [--batch 8] [--rounds 3] [--iterations 1] [--width 128] [--blocks 1] [--cardinality N] [--preset]
        [--jax train,jit] [--torch-device cuda] [--torch-threads 2,1] [--tf32] [--ref-ops] [--json OUT]

R3GAN's torch_utils imports pkg_resources (gone from recent setuptools) for parse_version
only: where it is missing the script supplies that one function. BigGAN-PyTorch's utils
imports torchvision (and h5py, tqdm) but the step never uses it: where torchvision does not
import (a build for another torch), placeholder modules stand in, and the output says so. On CUDA their bias_act and
upfirdn2d plugins are built if they can be (else their reference ops run; `--ref-ops` forces
those) and the output says which ran. PyTorch's OpenMP threads sleep instead of spinning
(OMP_WAIT_POLICY=PASSIVE unless set), which keeps its figure steady on a shared CPU.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import statistics
import sys
import time
import types
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import jax
import numpy as np

from gan_jax import loop, parallel, step
from gan_jax.config import compose
from gan_jax.data import ImageDataset

RESOLUTION = 32
CHANNELS = 3
JAX_VARIANTS = ("train", "jit")  # as gan-train compiles it; jax.jit(step.train_step)


# ---------------------------------------------------------------------------------------
# What a case provides


@dataclass
class Contender:
    """One side of a case: `run(n)` runs n training iterations and returns when they are done."""

    name: str
    run: Callable[[int], None]
    g_params: int
    d_params: int
    first_call_s: float  # gan_jax: compilation; torch: the first iteration
    first_iteration_s: float | None = None  # gan_jax: the first iteration after compiling
    notes: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Case:
    """A model timed on both sides. `setting(args)` -> what both sides build (with
    `.overrides()` for gan_jax, `.describe()`, `.batch`); `torch_side(setting, checkout,
    args)` -> the authors' Contender."""

    name: str
    title: str
    source_env: str  # the environment variable naming the authors' checkout
    source_repo: str
    source_commit: str  # the commit this script was written against
    source_marker: str  # a file every checkout has
    setting: Callable[[argparse.Namespace], Any]
    torch_side: Callable[[Any, Path, argparse.Namespace], Contender]

    def checkout(self) -> Path | str:
        """The authors' checkout, or why there is none and how to get it."""
        directory = os.environ.get(self.source_env)
        path = Path(directory).expanduser() if directory else None
        if path is not None and (path / self.source_marker).is_file():
            return path
        where = f"{self.source_env}={path} has no {self.source_marker}" if path else f"{self.source_env} is not set"
        return (
            f"{self.name}: needs a checkout of the authors' code ({where}):\n"
            f"    git clone {self.source_repo} DIR && git -C DIR checkout {self.source_commit}\n"
            f"then set {self.source_env}=DIR"
        )


CASES: dict[str, Case] = {}


def register(case: Case) -> None:
    CASES[case.name] = case


def count(tree: Any) -> int:
    return int(sum(np.size(leaf) for leaf in jax.tree.leaves(tree)))


def fixed_real_batch(n: int) -> np.ndarray:
    """[n, 32, 32, 3] in [-1, 1], NHWC (torch sides permute it)."""
    return np.random.default_rng(0).uniform(-1, 1, (n, RESOLUTION, RESOLUTION, CHANNELS)).astype(np.float32)


def to_torch_images(images: np.ndarray, device: str) -> Any:
    import torch

    return torch.from_numpy(images).permute(0, 3, 1, 2).contiguous().to(device)


# ---------------------------------------------------------------------------------------
# gan_jax's side (any case): its step from the composed config


def jax_contender(setting: Any, variant: str) -> Contender:
    """gan_jax's training step for `setting` (its `.overrides()`, `.batch` and `.real_batches()`:
    [d_steps, batch, ...] arrays, one batch per D step), one iteration per call: `variant`
    'train' as gan-train compiles it, 'jit' as `jax.jit(step.train_step)`. Compiled ahead
    of the first call."""
    cfg = compose(setting.overrides())
    classes = cfg.model.num_classes if cfg.model.get("conditioning", "none") != "none" else 0
    dataset = ImageDataset(cfg.dataset.name, (RESOLUTION, RESOLUTION, CHANNELS), num_classes=classes)
    parts = loop.build_parts(cfg, dataset)
    single = step.init_state(parts, 0)
    g_params, d_params = count(single.generator.params), count(single.discriminator.params)
    batch, real = setting.batch, setting.real_batches()
    start = time.perf_counter()
    if variant == "jit":
        executable = jax.jit(partial(step.train_step, parts, batch, None)).lower(single, real).compile()
        call = lambda state: executable(state, real)
        state = single
    else:
        placement = parallel.DataParallel(tuple(jax.local_devices()[:1]), cfg.train.parallel)
        placed = placement.shard_batches({k: v[None, None] for k, v in real.items()}, batch)
        state = placement.replicate(step.init_population(parts, [0]))
        executable = parallel.compile_train_steps(parts, batch, placement).lower(state, 1, placed).compile()
        call = lambda state: executable(state, placed)
    compile_s = time.perf_counter() - start
    holder = {"state": state}

    def run(n: int) -> None:
        metrics = None
        for _ in range(n):
            holder["state"], metrics = call(holder["state"])
        jax.block_until_ready((holder["state"], metrics))

    start = time.perf_counter()
    run(1)
    first_iteration_s = time.perf_counter() - start
    name = "gan_jax" if variant == "train" else "gan_jax_jit"
    return Contender(name, run, g_params, d_params, compile_s, first_iteration_s)


# ---------------------------------------------------------------------------------------
# Torch helpers


def provide_pkg_resources() -> str | None:
    """Their torch_utils imports pkg_resources for parse_version alone; where setuptools no
    longer has it, a module with that one function (packaging's). Says what it did."""
    if importlib.util.find_spec("pkg_resources") is not None:
        return None
    from packaging.version import parse

    shim = types.ModuleType("pkg_resources")
    shim.parse_version = parse  # type: ignore[attr-defined]
    sys.modules["pkg_resources"] = shim
    return "pkg_resources.parse_version supplied (packaging.version.parse)"


class _Placeholder(types.ModuleType):
    """A module whose every attribute is a class that takes any arguments (for imports only)."""

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        return type(name, (), {"__init__": lambda self, *args, **kwargs: None})


def provide_torchvision() -> str | None:
    """BigGAN-PyTorch's utils, train_fns and datasets import torchvision at the top but use it
    only to save images and read datasets, never in the training step. Where torchvision does
    not import (one built for another torch fails so), placeholder modules. Says what it did."""
    try:
        import torchvision  # noqa: F401

        return None
    except Exception as error:  # a mismatched build raises RuntimeError, not ImportError
        reason = f"{type(error).__name__}: {error}"
    for name in [m for m in sys.modules if m == "torchvision" or m.startswith("torchvision.")]:
        del sys.modules[name]
    for name in ("torchvision", "torchvision.transforms", "torchvision.datasets", "torchvision.datasets.utils"):
        sys.modules[name] = _Placeholder(name)
        parent, _, child = name.rpartition(".")
        if parent:
            setattr(sys.modules[parent], child, sys.modules[name])
    return f"placeholders (it does not import here: {reason}; the step does not use it)"


def synchronise(device: str) -> None:
    if device.startswith("cuda"):
        import torch

        torch.cuda.synchronize()


def with_torch_threads(contender: Contender, threads: int) -> Contender:
    """`contender`, run with torch limited to `threads` intra-op threads (restored after)."""
    import torch

    def run(n: int) -> None:
        before = torch.get_num_threads()
        torch.set_num_threads(threads)
        try:
            contender.run(n)
        finally:
            torch.set_num_threads(before)

    suffix = f"_{threads}thread{'s' if threads > 1 else ''}"
    return Contender(contender.name + suffix, run, contender.g_params, contender.d_params, contender.first_call_s)


def stylegan_ops(device: str, ref_ops: bool) -> dict[str, str]:
    """NVIDIA's bias_act and upfirdn2d (in the authors' torch_utils): their CUDA plugins where
    they build (on CUDA, unless `ref_ops`), else their reference implementations. Which ran."""
    from torch_utils.ops import bias_act, upfirdn2d

    paths = {}
    for name, module in (("bias_act", bias_act), ("upfirdn2d", upfirdn2d)):
        if not device.startswith("cuda"):
            paths[name] = "reference (device cpu)"
            continue
        if ref_ops:
            module._init = lambda: False
            paths[name] = "reference (--ref-ops)"
            continue
        try:
            module._init()
            paths[name] = "CUDA plugin"
        except Exception as error:  # their get_plugin raises where nvcc or ninja is missing
            module._init = lambda: False
            paths[name] = f"reference (the plugin did not build: {type(error).__name__})"
    return paths


# ---------------------------------------------------------------------------------------
# R3GAN


@dataclass(frozen=True)
class R3GANSetting:
    width: int  # every stage's
    cardinality: int  # every stage's groups
    blocks: int  # every stage's residual blocks
    batch: int
    gamma: float
    expansion: int = 2
    noise_dim: int = 64
    stages: int = 4  # 4, 8, 16, 32
    lr: float = 2e-4
    beta2: float = 0.9
    grouped_conv: str = "auto"  # model.grouped_conv: auto is dense block-diagonal kernels on the CPU

    def lists(self) -> tuple[list[int], list[int], list[int]]:
        return [self.width] * self.stages, [self.cardinality] * self.stages, [self.blocks] * self.stages

    def overrides(self) -> list[str]:
        widths, cardinalities, blocks = self.lists()
        return [
            "experiment=none",
            "logger=none",
            "dataset=cifar10",
            "model=r3gan",
            "loss=rpgan",
            "penalty=[r1,r2]",
            "optim=adam",
            "augment=none",
            f"train.batch_size={self.batch}",
            f"penalty.r1.weight={self.gamma}",
            f"penalty.r2.weight={self.gamma}",
            f"optim.lr={self.lr}",
            "optim.b1=0.0",
            f"optim.b2={self.beta2}",
            f"model.latent_dim={self.noise_dim}",
            f"model.expansion_factor={self.expansion}",
            f"model.width_per_stage=[{','.join(map(str, widths))}]",
            f"model.cardinality_per_stage=[{','.join(map(str, cardinalities))}]",
            f"model.blocks_per_stage=[{','.join(map(str, blocks))}]",
            f"model.grouped_conv={self.grouped_conv}",
        ]

    def real_batches(self) -> dict[str, np.ndarray]:
        return {"images": fixed_real_batch(self.batch)[None]}

    def describe(self) -> str:
        return (
            f"{RESOLUTION}x{RESOLUTION}x{CHANNELS}, batch {self.batch}, {self.stages} stages of width {self.width}, "
            f"{self.blocks} block(s) each, cardinality {self.cardinality} "
            f"({self.width * self.expansion // self.cardinality} channels a group), expansion {self.expansion}, "
            f"z {self.noise_dim}, gamma {self.gamma}, Adam({self.lr}, betas (0, {self.beta2})), float32"
        )


def r3gan_setting(args: argparse.Namespace) -> R3GANSetting:
    if args.preset:  # their train.py --preset CIFAR10
        width, cardinality, blocks = 3 * 1024 // 4, 3 * 32, 2
    else:
        width, blocks = args.width or 128, args.blocks
        cardinality = args.cardinality or max(1, width * 2 // 16)  # the preset's 16 channels a group
    if (width * 2) % cardinality:
        sys.exit(f"--cardinality {cardinality} must divide width * expansion = {width * 2}")
    batch = args.batch or (512 if args.preset else 8)
    return R3GANSetting(width, cardinality, blocks, batch, args.gamma, grouped_conv=args.grouped_conv)


def r3gan_torch(setting: R3GANSetting, checkout: Path, args: argparse.Namespace) -> Contender:
    """Their networks and AdversarialTraining, phases D then G as training_loop.py runs them."""
    notes = {}
    shim = provide_pkg_resources()
    if shim:
        notes["pkg_resources"] = shim
    sys.path.insert(0, str(checkout))
    import torch
    from R3GAN import Networks
    from R3GAN.Trainer import AdversarialTraining
    from torch_utils.ops import conv2d_gradfix

    device = args.torch_device
    notes.update(stylegan_ops(device, args.ref_ops))
    torch.manual_seed(0)
    torch.backends.cudnn.benchmark = True  # training_loop.py's settings
    torch.backends.cuda.matmul.allow_tf32 = args.tf32
    torch.backends.cudnn.allow_tf32 = args.tf32
    conv2d_gradfix.enabled = True
    widths, cardinalities, blocks = setting.lists()
    G = Networks.Generator(setting.noise_dim, widths, cardinalities, blocks, setting.expansion)
    D = Networks.Discriminator(widths[::-1], cardinalities[::-1], blocks[::-1], setting.expansion)
    G = G.train().requires_grad_(False).to(device)
    D = D.train().requires_grad_(False).to(device)
    trainer = AdversarialTraining(G, D)
    phases = []
    for name, module in (("D", D), ("G", G)):
        # train.py's G_opt_kwargs / D_opt_kwargs (betas=[0, 0], which torch >= 2.10 rejects as
        # ints: floats here); the loop sets lr and betas before each step
        opt = torch.optim.Adam(module.parameters(), betas=(0.0, 0.0), eps=1e-8)
        phases.append((name, module, opt))
    batch = setting.batch
    real = to_torch_images(fixed_real_batch(batch), device)
    conditions = torch.zeros([batch, 0], device=device)

    def one_iteration() -> None:
        all_gen_z = torch.randn([len(phases) * batch, setting.noise_dim], device=device).split(batch)
        for (name, module, opt), gen_z in zip(phases, all_gen_z, strict=True):
            opt.zero_grad(set_to_none=True)
            module.requires_grad_(True)
            if name == "D":
                trainer.AccumulateDiscriminatorGradients(gen_z, real, conditions, setting.gamma, 1)
            else:
                trainer.AccumulateGeneratorGradients(gen_z, real, conditions, 1)
            module.requires_grad_(False)
            for group in opt.param_groups:  # their loop sets the scheduled values every phase
                group["lr"] = setting.lr
                group["betas"] = (0.0, setting.beta2)
            params = [param for param in module.parameters() if param.grad is not None]
            if params:  # as their loop does (the all-reduce's flattening, one GPU)
                flat = torch.cat([param.grad.flatten() for param in params])
                for param, grad in zip(params, flat.split([param.numel() for param in params]), strict=True):
                    param.grad = grad.reshape(param.shape)
            opt.step()

    def run(n: int) -> None:
        for _ in range(n):
            one_iteration()
        synchronise(device)

    return torch_contender(run, G, D, notes)


def torch_contender(run: Callable[[int], None], G: Any, D: Any, notes: list[str]) -> Contender:
    """The authors' side, its first iteration timed (torch's warm-up) and its networks counted."""
    start = time.perf_counter()
    run(1)
    first = time.perf_counter() - start
    g_params = sum(p.numel() for p in G.parameters())
    d_params = sum(p.numel() for p in D.parameters())
    return Contender("torch", run, g_params, d_params, first, notes=notes)


register(
    Case(
        name="r3gan",
        title="R3GAN iteration (D: RpGAN + R1 + R2; G: RpGAN)",
        source_env="R3GAN_SRC",
        source_repo="https://github.com/brownvc/R3GAN",
        source_commit="19a7ddf463fbac2bd39b4c1c73d63f1c441c7403",
        source_marker="R3GAN/Networks.py",
        setting=r3gan_setting,
        torch_side=r3gan_torch,
    )
)


# ---------------------------------------------------------------------------------------
# BigGAN (registered where gan_jax has the model)

# scripts/launch_cifar_ema.sh's options but --parallel (one device here), --batch_size, --G_ch, --D_ch.
BIGGAN_SCRIPT = [
    *("--shuffle", "--num_G_accumulations", "1", "--num_D_accumulations", "1", "--num_epochs", "500"),
    *("--num_D_steps", "4", "--G_lr", "2e-4", "--D_lr", "2e-4", "--dataset", "C10", "--G_ortho", "0.0"),
    *("--G_attn", "0", "--D_attn", "0", "--G_init", "N02", "--D_init", "N02"),
    *("--ema", "--use_ema", "--ema_start", "1000", "--seed", "0"),
]


@dataclass(frozen=True)
class BigGANSetting:
    ch: int  # G_ch = D_ch
    batch: int
    d_steps: int = 4  # --num_D_steps 4, each on a real batch of its own
    classes: int = 10

    def overrides(self) -> list[str]:
        return [
            "experiment=brock2019_biggan_cifar10",
            "logger=none",
            f"train.batch_size={self.batch}",
            f"model.generator.ch={self.ch}",
            f"model.discriminator.ch={self.ch}",
        ]

    def real_batches(self) -> dict[str, np.ndarray]:
        images = fixed_real_batch(self.d_steps * self.batch)
        labels = np.random.default_rng(1).integers(0, self.classes, self.d_steps * self.batch).astype(np.int32)
        return {
            "images": images.reshape(self.d_steps, self.batch, *images.shape[1:]),
            "labels": labels.reshape(self.d_steps, self.batch),
        }

    def describe(self) -> str:
        return (
            f"{RESOLUTION}x{RESOLUTION}x{CHANNELS}, batch {self.batch}, G_ch = D_ch = {self.ch}, "
            f"{self.classes} classes, {self.d_steps} D steps (hinge) per G step, spectral norm, G's EMA, "
            "Adam(2e-4, betas (0, 0.999)), float32"
        )


def biggan_setting(args: argparse.Namespace) -> BigGANSetting:
    return BigGANSetting(64 if args.preset else args.width or 32, args.batch or (50 if args.preset else 8))


def biggan_torch(setting: BigGANSetting, checkout: Path, args: argparse.Namespace) -> Contender:
    """Their BigGAN.py networks and train_fns.GAN_training_function (4 D steps on the
    iteration's 4 real batches, then G, then the EMA), configured as train.py configures them."""
    sys.path.insert(0, str(checkout))
    import torch

    notes = {}
    placeholders = provide_torchvision()
    if placeholders:
        notes["torchvision"] = placeholders
    try:
        import BigGAN
        import train_fns
        import utils
    except ImportError as error:
        sys.exit(f"biggan: their utils.py imports {error.name}: pip install torchvision h5py tqdm")
    device = args.torch_device
    script = [*BIGGAN_SCRIPT, "--batch_size", str(setting.batch), "--G_ch", str(setting.ch), "--D_ch", str(setting.ch)]
    config = vars(utils.prepare_parser().parse_args(script))
    config["num_D_steps"] = setting.d_steps
    config["resolution"] = utils.imsize_dict[config["dataset"]]  # train.py's run()
    config["n_classes"] = utils.nclass_dict[config["dataset"]]
    config["G_activation"] = utils.activation_dict[config["G_nl"]]
    config["D_activation"] = utils.activation_dict[config["D_nl"]]
    assert config["n_classes"] == setting.classes
    utils.seed_rng(config["seed"])
    torch.backends.cudnn.benchmark = True
    torch.backends.cuda.matmul.allow_tf32 = args.tf32
    torch.backends.cudnn.allow_tf32 = args.tf32
    G = BigGAN.Generator(**config).to(device)
    D = BigGAN.Discriminator(**config).to(device)
    G_ema = BigGAN.Generator(**{**config, "skip_init": True, "no_optim": True}).to(device)
    ema = utils.ema(G, G_ema, config["ema_decay"], config["ema_start"])
    GD = BigGAN.G_D(G, D)
    G_batch_size = max(config["G_batch_size"], config["batch_size"])
    z_, y_ = utils.prepare_z_y(G_batch_size, G.dim_z, config["n_classes"], device=device, fp16=config["G_fp16"])
    state_dict = {"itr": 0, "epoch": 0, "save_num": 0, "save_best_num": 0, "best_IS": 0, "best_FID": 999999}
    train = train_fns.GAN_training_function(G, D, GD, z_, y_, ema, state_dict, config)
    real = setting.real_batches()
    x = to_torch_images(real["images"].reshape(-1, *real["images"].shape[2:]), device)
    y = torch.from_numpy(real["labels"].reshape(-1).astype(np.int64)).to(device)

    def run(n: int) -> None:
        for _ in range(n):  # train.py's loop body
            state_dict["itr"] += 1
            G.train()
            D.train()
            G_ema.train()
            train(x, y)  # returns the losses as floats: one synchronisation an iteration
        synchronise(device)

    return torch_contender(run, G, D, notes)


if importlib.util.find_spec("gan_jax.models.biggan") is not None:
    register(
        Case(
            name="biggan",
            title="BigGAN iteration (4 D steps, hinge; 1 G step; G's EMA)",
            source_env="BIGGAN_SRC",
            source_repo="https://github.com/ajbrock/BigGAN-PyTorch",
            source_commit="98459431a5d618d644d54cd1e9fceb1e5045648d",
            source_marker="BigGAN.py",
            setting=biggan_setting,
            torch_side=biggan_torch,
        )
    )


# ---------------------------------------------------------------------------------------
# Running the cases


def images_per_second(run: Callable[[int], None], iterations: int, batch: int) -> float:
    start = time.perf_counter()
    run(iterations)
    return iterations * batch / (time.perf_counter() - start)


def run_case(case: Case, checkout: Path, args: argparse.Namespace) -> dict[str, Any]:
    import torch

    setting = case.setting(args)
    reference = case.torch_side(setting, checkout, args)
    contenders = [reference]
    if args.torch_threads:
        contenders = [with_torch_threads(reference, n) for n in args.torch_threads]
    jax_sides = [jax_contender(setting, variant) for variant in args.jax]
    for side in jax_sides:
        same = (side.g_params, side.d_params) == (reference.g_params, reference.d_params)
        assert same, (
            f"{case.name}: parameters differ: {side.name} G {side.g_params:,} D {side.d_params:,}, "
            f"torch G {reference.g_params:,} D {reference.d_params:,}"
        )
    contenders += jax_sides
    rates: dict[str, list[float]] = {c.name: [] for c in contenders}
    for _ in range(args.rounds):
        for contender in contenders:
            rates[contender.name].append(images_per_second(contender.run, args.iterations, setting.batch))
    medians = {name: statistics.median(r) for name, r in rates.items()}
    references = [c.name for c in contenders if not c.name.startswith("gan_jax")]

    print(f"\n{case.title}: {setting.describe()}")
    print(
        f"  {args.rounds} rounds x {args.iterations} iteration(s); jax {jax.__version__} on {jax.default_backend()}, "
        f"torch {torch.__version__} on {args.torch_device} (torch's threads {torch.get_num_threads()}, "
        f"OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY', 'unset')}, TF32 {'on' if args.tf32 else 'off'})"
    )
    print(f"  parameters, both sides: G {reference.g_params:,}, D {reference.d_params:,}")
    if reference.notes:
        print("  torch side: " + ", ".join(f"{k} {v}" for k, v in reference.notes.items()))
    print("  images/s: iterations/s x batch (G's batch; each D step takes a real batch of its own)")
    header = f"  {'contender':18s} {'images/s':>9s} {'min..max':>13s} {'s/iter':>8s}"
    print(header + "".join(f" {'vs ' + ref:>20s}" for ref in references) + f" {'first call':>22s}")
    for contender in contenders:
        r, median = rates[contender.name], medians[contender.name]
        if contender.first_iteration_s is None:
            first = f"{contender.first_call_s:.1f} s (1st iter)"
        else:
            first = f"{contender.first_call_s:.1f} s compile"
        print(
            f"  {contender.name:18s} {median:9.2f} {f'{min(r):.2f}..{max(r):.2f}':>13s} "
            f"{setting.batch / median:8.2f}"
            + "".join(f" {median / medians[ref]:19.2f}x" for ref in references)
            + f" {first:>22s}"
        )
    return {
        "setting": setting.__dict__,
        "parameters": {"G": reference.g_params, "D": reference.d_params},
        "torch_notes": reference.notes,
        "rates": rates,
        "medians": medians,
        "ratios": {f"{c.name}/{ref}": medians[c.name] / medians[ref] for c in jax_sides for ref in references},
        "compile_s": {c.name: c.first_call_s for c in jax_sides},
        "first_iteration_s": {c.name: c.first_iteration_s for c in jax_sides},
        "torch_first_iteration_s": reference.first_call_s,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="r3gan", choices=[*CASES, "all"])
    parser.add_argument("--batch", type=int, help="default: 8; with --preset the authors' (r3gan 512, biggan 50)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--iterations", type=int, default=1, help="iterations per contender per round")
    parser.add_argument("--preset", action="store_true", help="the authors' CIFAR-10 sizes and batch (for GPUs)")
    parser.add_argument(
        "--width", type=int, help="without --preset: r3gan's stage width (default 128), biggan's ch (default 32)"
    )
    parser.add_argument("--blocks", type=int, default=1, help="r3gan: residual blocks a stage (without --preset)")
    parser.add_argument("--cardinality", type=int, help="r3gan: groups (default: 16 channels a group)")
    parser.add_argument("--gamma", type=float, default=0.05, help="r3gan: R1 and R2's gamma")
    parser.add_argument(
        "--grouped-conv",
        default="auto",
        choices=("auto", "native", "dense"),
        help="r3gan: gan_jax's model.grouped_conv (auto: dense block-diagonal kernels on the CPU)",
    )
    parser.add_argument(
        "--jax",
        type=lambda text: text.split(","),
        default=["train"],
        help=f"gan_jax contenders, comma-separated, of {', '.join(JAX_VARIANTS)}",
    )
    parser.add_argument("--torch-device", default=None, help="cpu or cuda (default: cuda where torch sees one)")
    parser.add_argument(
        "--torch-threads",
        type=lambda text: [int(n) for n in text.split(",")],
        help="comma-separated: one torch contender per thread count (default: one, torch's own count)",
    )
    parser.add_argument("--tf32", action="store_true", help="let torch use TF32 (their loop turns it off)")
    parser.add_argument("--ref-ops", action="store_true", help="the authors' reference ops even on CUDA")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    unknown = sorted(set(args.jax) - set(JAX_VARIANTS))
    if unknown:
        parser.error(f"--jax: unknown {unknown}; choose from {', '.join(JAX_VARIANTS)}")
    try:
        import torch
    except ImportError:
        sys.exit("model_zoo.py: needs torch beside gan_jax in this interpreter: pip install -e '.[bench]'")
    if args.torch_device is None:
        args.torch_device = "cuda" if torch.cuda.is_available() else "cpu"

    chosen = list(CASES) if args.model == "all" else [args.model]
    results = {}
    for name in chosen:
        checkout = CASES[name].checkout()
        if isinstance(checkout, str):
            if args.model != "all":
                sys.exit(checkout)
            print(f"\nskipped {checkout}")
            continue
        results[name] = run_case(CASES[name], checkout, args)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")  # leave the GPU's memory to torch too
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # read when torch loads OpenMP (in main)
    main()
