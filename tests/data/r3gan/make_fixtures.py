"""Makes the R3GAN fixtures: the authors' own networks (brownvc/R3GAN, R3GAN/Networks.py)
on random weights, run on the CPU (their reference, non-CUDA ops).

Run with a Python that has torch, numpy and setuptools < 80 (their torch_utils imports
pkg_resources; never gan_jax's venv), from a checkout of brownvc/R3GAN (commit in README.md):

    python tests/data/r3gan/make_fixtures.py --r3gan /tmp/r3gan_src --out tests/data/r3gan

Per case it writes CASE.pt (torch.save of the network's state dict: their initialisation,
then every parameter perturbed, the zero-initialised ones drawn afresh, so that every
residual branch is live) and CASE.npz (the inputs and their outputs, images NHWC), and
cifar10_preset.json: the parameter names, shapes and counts of train.py's --preset CIFAR10
G and D (unconditional and --cond with 10 classes) from their constructors, no weights.
The tests never import their code; this script is the only thing that does.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

import numpy as np
import torch

BATCH = 4  # examples per case
# Their constructor arguments. G's lists run from 4x4 up; D's from the image down (train.py
# gives D G's lists reversed). Widths change between some stages, so the 1x1 transition convs exist.
G_CASES = {
    "g_uncond": dict(
        NoiseDimension=8, WidthPerStage=[16, 12, 8], CardinalityPerStage=[4, 3, 2], BlocksPerStage=[1, 2, 1]
    ),
    "g_cond": dict(
        NoiseDimension=8,
        WidthPerStage=[16, 8, 8],
        CardinalityPerStage=[4, 2, 2],
        BlocksPerStage=[2, 1, 1],
        ConditionDimension=10,
        ConditionEmbeddingDimension=6,
    ),
}
D_CASES = {
    "d_uncond": dict(WidthPerStage=[8, 12, 16], CardinalityPerStage=[2, 3, 4], BlocksPerStage=[1, 2, 1]),
    "d_cond": dict(
        WidthPerStage=[8, 8, 16],
        CardinalityPerStage=[2, 2, 4],
        BlocksPerStage=[1, 1, 2],
        ConditionDimension=10,
        ConditionEmbeddingDimension=12,
    ),
}
EXPANSION_FACTOR = 2
IMAGE_SIZE = 16  # 3 stages: 4, 8, 16


def cifar10_preset(cond: bool) -> tuple[dict, dict]:
    """train.py's --preset CIFAR10 constructor arguments of G and D (the FP16Stages aside)."""
    widths = [3 * x // 4 for x in [1024, 1024, 1024, 1024]]
    blocks = [2 * x for x in [1, 1, 1, 1]]
    cardinalities = [3 * x for x in [32, 32, 32, 32]]
    noise = 64
    g = dict(
        NoiseDimension=noise,
        WidthPerStage=widths,
        CardinalityPerStage=cardinalities,
        BlocksPerStage=blocks,
        ExpansionFactor=2,
    )
    d = dict(
        WidthPerStage=widths[::-1],
        CardinalityPerStage=cardinalities[::-1],
        BlocksPerStage=blocks[::-1],
        ExpansionFactor=2,
    )
    if cond:
        g.update(ConditionDimension=10, ConditionEmbeddingDimension=noise)
        d.update(ConditionDimension=10, ConditionEmbeddingDimension=widths[0])
    return g, d


def perturb(module: torch.nn.Module, generator: torch.Generator) -> None:
    """Every parameter off its initial value: zero ones (biases, each branch's last conv)
    drawn afresh, the others moved by 10% of their spread. The resampling kernels stay."""
    with torch.no_grad():
        for _, tensor in module.named_parameters():
            noise = torch.randn(tensor.shape, generator=generator)
            if tensor.abs().max() == 0:
                fan_in = tensor[0].numel() if tensor.ndim > 1 else 1
                tensor.copy_(noise * (0.5 / math.sqrt(fan_in) if tensor.ndim > 1 else 0.1))
            else:
                tensor.add_(0.1 * tensor.std() * noise)


def labels(classes: int | None, generator: torch.Generator) -> torch.Tensor | None:
    if not classes:
        return None
    return torch.nn.functional.one_hot(torch.randint(0, classes, [BATCH], generator=generator), classes).float()


def shapes(module: torch.nn.Module) -> dict:
    return {
        "parameters": {name: list(p.shape) for name, p in module.named_parameters()},
        "buffers": {name: list(b.shape) for name, b in module.named_buffers()},
        "count": sum(p.numel() for p in module.parameters()),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--r3gan", required=True, help="a checkout of brownvc/R3GAN")
    parser.add_argument("--out", required=True, help="where the fixtures go")
    args = parser.parse_args()
    sys.path.insert(0, args.r3gan)
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cuda.matmul.allow_tf32 = False
    from R3GAN import Networks  # noqa: PLC0415 - their code, importable only with --r3gan

    out = Path(args.out)
    for seed, (name, arch) in enumerate({**G_CASES, **D_CASES}.items()):
        gen = torch.Generator().manual_seed(seed)
        torch.manual_seed(seed)
        arch = {**arch, "ExpansionFactor": EXPANSION_FACTOR}
        classes = arch.get("ConditionDimension")
        c = labels(classes, gen)
        arrays = {} if c is None else {"c": c.numpy()}
        if name.startswith("g_"):
            net = Networks.Generator(**arch).eval()
            perturb(net, gen)
            z = torch.randn([BATCH, arch["NoiseDimension"]], generator=gen)
            with torch.no_grad():
                images = net(z, c)
            arrays.update(z=z.numpy(), images=images.permute(0, 2, 3, 1).numpy())
        else:
            net = Networks.Discriminator(**arch).eval()
            perturb(net, gen)
            images = torch.randn([BATCH, 3, IMAGE_SIZE, IMAGE_SIZE], generator=gen)
            with torch.no_grad():
                logits = net(images, c)
            arrays.update(images=images.permute(0, 2, 3, 1).numpy(), logits=logits.numpy())
        torch.save(net.state_dict(), out / f"{name}.pt")
        np.savez_compressed(out / f"{name}.npz", **arrays, arch=json.dumps(arch))

    preset = {}
    for cond in (False, True):
        g_arch, d_arch = cifar10_preset(cond)
        suffix = "cond" if cond else "uncond"
        preset[f"G_{suffix}"] = {"arch": g_arch, **shapes(Networks.Generator(**g_arch))}
        preset[f"D_{suffix}"] = {"arch": d_arch, **shapes(Networks.Discriminator(**d_arch))}
    (out / "cifar10_preset.json").write_text(json.dumps(preset, indent=1) + "\n")


if __name__ == "__main__":
    main()
