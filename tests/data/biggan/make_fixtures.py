"""Makes the BigGAN fixtures: the authors' own networks (ajbrock/BigGAN-PyTorch, BigGAN.py
and layers.py) on perturbed random weights, run on the CPU.

Run with a Python that has torch and numpy (never gan_jax's venv), from a copy of
ajbrock/BigGAN-PyTorch (commit in README.md):

    python tests/data/biggan/make_fixtures.py --biggan /tmp/biggan_src --out tests/data/biggan

Per case it writes CASE.pt (torch.save of the network's state dict: their initialisation,
then every parameter perturbed, the attention gains, zero at first, drawn afresh, and the
batch norms' stored statistics moved off 0 and 1) and CASE.npz: the inputs, the outputs
in eval mode (stored batch statistics; spectral norm's u not moved) and in training mode
(batch statistics; num_itrs power iterations, u moved), images NHWC, every buffer after
the training-mode call ('after/<key>'), and the constructor's arguments (`arch`, JSON).
cifar10_preset.json: the parameter and buffer names and shapes, and the parameter counts,
of the G and D that scripts/launch_cifar_ema.sh builds (no weights).
The tests never import their code; this script is the only thing that does.
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
from pathlib import Path

import numpy as np
import torch

BATCH = {32: 4, 64: 2}  # examples per case, by resolution (the fixtures stay small)
SN_EPS = 1e-8  # utils.prepare_parser's --SN_eps default (what train.py passes)
# Their constructor arguments (BigGAN.Generator / Discriminator); every case sets the
# options train.py would pass from the parser, so none falls back to the class's defaults.
G_CASES = {
    # conditional, shared embedding + hierarchical z, attention at 16, ortho init
    "g_cond": dict(
        G_ch=4,
        dim_z=16,
        resolution=32,
        G_attn="16",
        n_classes=10,
        G_shared=True,
        shared_dim=6,
        hier=True,
        num_G_SVs=1,
        num_G_SV_itrs=1,
        G_init="ortho",
    ),
    # their CIFAR-10 script's kind of G (no shared embedding, no hier, no attention); 2 singular
    # values and 2 power iterations
    "g_plain": dict(
        G_ch=4,
        dim_z=12,
        resolution=32,
        G_attn="0",
        n_classes=10,
        G_shared=False,
        shared_dim=0,
        hier=False,
        num_G_SVs=2,
        num_G_SV_itrs=2,
        G_init="N02",
    ),
    # unconditional: their code has no such mode; one class, every label 0
    "g_uncond": dict(
        G_ch=4,
        dim_z=16,
        resolution=32,
        G_attn="32",
        n_classes=1,
        G_shared=True,
        shared_dim=0,
        hier=True,
        num_G_SVs=1,
        num_G_SV_itrs=1,
        G_init="xavier",
    ),
    # 64x64: the channels change between blocks; attention at 8
    "g_64": dict(
        G_ch=2,
        dim_z=20,
        resolution=64,
        G_attn="8",
        n_classes=5,
        G_shared=True,
        shared_dim=4,
        hier=True,
        num_G_SVs=1,
        num_G_SV_itrs=1,
        G_init="ortho",
    ),
}
D_CASES = {
    # conditional; attention at "16": at 32x32 their D_arch labels all four blocks 16, so
    # one attention layer follows each block
    "d_cond": dict(
        D_ch=4, resolution=32, D_attn="16", n_classes=10, D_wide=True, num_D_SVs=1, num_D_SV_itrs=1, D_init="ortho"
    ),
    # unconditional (one class), the thin (SN-GAN) channel pattern, 2 singular values and 2 iterations
    "d_uncond": dict(
        D_ch=4, resolution=32, D_attn="0", n_classes=1, D_wide=False, num_D_SVs=2, num_D_SV_itrs=2, D_init="N02"
    ),
    "d_64": dict(
        D_ch=2, resolution=64, D_attn="8", n_classes=5, D_wide=True, num_D_SVs=1, num_D_SV_itrs=1, D_init="xavier"
    ),
}
# scripts/launch_cifar_ema.sh's arguments that build the networks, the rest utils.prepare_parser's
# defaults; train.py adds resolution 32 and n_classes 10 for --dataset C10.
CIFAR10_G = dict(
    G_ch=64,
    dim_z=128,
    bottom_width=4,
    resolution=32,
    G_attn="0",
    n_classes=10,
    num_G_SVs=1,
    num_G_SV_itrs=1,
    G_shared=False,
    shared_dim=0,
    hier=False,
    BN_eps=1e-5,
    SN_eps=SN_EPS,
    G_init="N02",
    G_param="SN",
    norm_style="bn",
    cross_replica=False,
    mybn=False,
)
CIFAR10_D = dict(
    D_ch=64,
    D_wide=True,
    resolution=32,
    D_attn="0",
    n_classes=10,
    num_D_SVs=1,
    num_D_SV_itrs=1,
    SN_eps=SN_EPS,
    output_dim=1,
    D_init="N02",
    D_param="SN",
)


def perturb(module: torch.nn.Module, generator: torch.Generator) -> None:
    """Every parameter off its initial value (the zero attention gains drawn afresh, the
    others moved by 10% of their spread, at least 0.05), and the batch norms' stored
    statistics off 0 and 1. Spectral norm's u buffers stay their random draws."""
    with torch.no_grad():
        for name, tensor in module.named_parameters():
            noise = torch.randn(tensor.shape, generator=generator)
            if name.endswith("gamma"):
                tensor.copy_(0.5 + 0.2 * noise)
            else:
                spread = tensor.std() if tensor.numel() > 1 else torch.tensor(0.0)
                tensor.add_(max(0.1 * float(spread), 0.05) * noise)
        for name, buffer in module.named_buffers():
            if name.endswith("stored_mean"):
                buffer.copy_(0.2 * torch.randn(buffer.shape, generator=generator))
            elif name.endswith("stored_var"):
                buffer.copy_(0.5 + torch.rand(buffer.shape, generator=generator))


def shapes(module: torch.nn.Module) -> dict:
    return {
        "parameters": {name: list(p.shape) for name, p in module.named_parameters()},
        "buffers": {name: list(b.shape) for name, b in module.named_buffers()},
        "count": sum(p.numel() for p in module.parameters()),
    }


def buffers_after(module: torch.nn.Module) -> dict[str, np.ndarray]:
    return {f"after/{name}": b.numpy().copy() for name, b in module.named_buffers()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--biggan", required=True, help="a copy of ajbrock/BigGAN-PyTorch")
    parser.add_argument("--out", required=True, help="where the fixtures go")
    args = parser.parse_args()
    sys.path.insert(0, args.biggan)
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cuda.matmul.allow_tf32 = False
    import BigGAN  # noqa: PLC0415 - their code, importable only with --biggan

    out = Path(args.out)
    for seed, (name, arch) in enumerate({**G_CASES, **D_CASES}.items()):
        gen = torch.Generator().manual_seed(seed)
        torch.manual_seed(seed)
        arch = {**arch, "SN_eps": SN_EPS}
        classes = arch["n_classes"]
        batch = BATCH[arch["resolution"]]
        y = torch.randint(0, classes, [batch], generator=gen)
        arrays: dict[str, np.ndarray] = {"y": y.numpy()}
        if name.startswith("g_"):
            net = BigGAN.Generator(**arch, no_optim=True)
            perturb(net, gen)
            z = torch.randn([batch, net.dim_z], generator=gen)
            trained = copy.deepcopy(net).train()
            net.eval()
            with torch.no_grad():
                images_eval = net(z, net.shared(y))
                images_train = trained(z, trained.shared(y))
            arrays.update(
                z=z.numpy(),
                images_eval=images_eval.permute(0, 2, 3, 1).numpy(),
                images_train=images_train.permute(0, 2, 3, 1).numpy(),
            )
        else:
            net = BigGAN.Discriminator(**arch)
            perturb(net, gen)
            size = arch["resolution"]
            # float16 values (stored as such, exactly): the file stays small
            images = (2 * torch.rand([batch, 3, size, size], generator=gen) - 1).half().float()
            trained = copy.deepcopy(net).train()
            net.eval()
            with torch.no_grad():
                logits_eval = net(images, y)
                logits_train = trained(images, y)
            arrays.update(
                images=images.permute(0, 2, 3, 1).numpy().astype(np.float16),
                logits_eval=logits_eval[:, 0].numpy(),
                logits_train=logits_train[:, 0].numpy(),
            )
        arrays.update(buffers_after(trained))
        torch.save(net.state_dict(), out / f"{name}.pt")
        np.savez_compressed(out / f"{name}.npz", **arrays, arch=json.dumps(arch))

    preset = {
        "G": {"arch": CIFAR10_G, **shapes(BigGAN.Generator(**CIFAR10_G, no_optim=True))},
        "D": {"arch": CIFAR10_D, **shapes(BigGAN.Discriminator(**CIFAR10_D))},
    }
    (out / "cifar10_preset.json").write_text(json.dumps(preset, indent=1) + "\n")


if __name__ == "__main__":
    main()
