"""Makes the StyleGAN2 fixtures: NVIDIA's own networks on random weights, run on the CPU.

Run with a Python that has torch and numpy (never gan_jax's venv), from a checkout of
NVlabs/stylegan2-ada-pytorch (commit in README.md):

    python tests/data/stylegan2/make_fixtures.py --nvidia /tmp/nvidia --out tests/data/stylegan2

Per case it writes CASE.pt (torch.save of the network's state dict, every parameter and
buffer perturbed) and CASE.npz (the inputs and NVIDIA's outputs). The tests never import
NVIDIA's code; this script is the only thing that does.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

BATCH = 4  # examples per case
SMALL = dict(img_resolution=16, channel_base=256, channel_max=32)  # channels 32 at 4 and 8, 16 at 16
G_CASES = {
    "g_uncond": dict(z_dim=32, c_dim=0, w_dim=32, img_channels=3, mapping_layers=2, conv_clamp=None),
    "g_cond": dict(z_dim=32, c_dim=10, w_dim=32, img_channels=1, mapping_layers=2, conv_clamp=0.5),
}
D_CASES = {
    "d_uncond": dict(c_dim=0, img_channels=3, mbstd_group_size=2, mbstd_num_channels=1, conv_clamp=None),
    "d_cond": dict(
        c_dim=10, img_channels=1, mbstd_group_size=4, mbstd_num_channels=2, conv_clamp=0.5, mapping_layers=2
    ),
    "d_orig": dict(
        c_dim=0, img_channels=3, mbstd_group_size=2, mbstd_num_channels=1, conv_clamp=None, architecture="orig"
    ),
}


def perturb(module: torch.nn.Module, generator: torch.Generator) -> None:
    """Every parameter and buffer moved off its initial value (biases and noise strengths
    start at 0, w_avg too), except the fixed FIR filters."""
    with torch.no_grad():
        for name, tensor in list(module.named_parameters()) + list(module.named_buffers()):
            if name.endswith("resample_filter"):
                continue
            tensor.add_(0.3 * torch.randn(tensor.shape, generator=generator) * (tensor.abs().mean() + 0.1))


def labels(c_dim: int, generator: torch.Generator) -> torch.Tensor:
    if c_dim == 0:
        return torch.zeros([BATCH, 0])
    return torch.nn.functional.one_hot(torch.randint(0, c_dim, [BATCH], generator=generator), c_dim).float()


def make_generator_case(networks, name: str, arch: dict, out: Path, seed: int) -> None:
    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    G = networks.Generator(
        z_dim=arch["z_dim"],
        c_dim=arch["c_dim"],
        w_dim=arch["w_dim"],
        img_resolution=SMALL["img_resolution"],
        img_channels=arch["img_channels"],
        mapping_kwargs=dict(num_layers=arch["mapping_layers"]),
        synthesis_kwargs=dict(
            channel_base=SMALL["channel_base"], channel_max=SMALL["channel_max"], conv_clamp=arch["conv_clamp"]
        ),
    ).eval()
    perturb(G, gen)
    z = torch.randn([BATCH, arch["z_dim"]], generator=gen)
    c = labels(arch["c_dim"], gen)
    with torch.no_grad():
        images_psi1 = G(z, c, truncation_psi=1.0, noise_mode="const")
        images_psi07 = G(z, c, truncation_psi=0.7, noise_mode="const")
        images_psi05_cutoff2 = G(z, c, truncation_psi=0.5, truncation_cutoff=2, noise_mode="const")
        ws = G.mapping(z, c)
    torch.save(G.state_dict(), out / f"{name}.pt")
    np.savez_compressed(
        out / f"{name}.npz",
        z=z.numpy(),
        c=c.numpy(),
        ws=ws.numpy(),
        images_psi1=images_psi1.permute(0, 2, 3, 1).numpy(),
        images_psi07=images_psi07.permute(0, 2, 3, 1).numpy(),
        images_psi05_cutoff2=images_psi05_cutoff2.permute(0, 2, 3, 1).numpy(),
        arch=json.dumps({**arch, **SMALL}),
    )


def make_discriminator_case(networks, name: str, arch: dict, out: Path, seed: int) -> None:
    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    D = networks.Discriminator(
        c_dim=arch["c_dim"],
        img_resolution=SMALL["img_resolution"],
        img_channels=arch["img_channels"],
        architecture=arch.get("architecture", "resnet"),
        channel_base=SMALL["channel_base"],
        channel_max=SMALL["channel_max"],
        conv_clamp=arch["conv_clamp"],
        mapping_kwargs=dict(num_layers=arch["mapping_layers"]) if "mapping_layers" in arch else {},
        epilogue_kwargs=dict(mbstd_group_size=arch["mbstd_group_size"], mbstd_num_channels=arch["mbstd_num_channels"]),
    ).eval()
    perturb(D, gen)
    res = SMALL["img_resolution"]
    images = torch.randn([BATCH, arch["img_channels"], res, res], generator=gen)
    c = labels(arch["c_dim"], gen)
    with torch.no_grad():
        logits = D(images, c)
    torch.save(D.state_dict(), out / f"{name}.pt")
    np.savez_compressed(
        out / f"{name}.npz",
        images=images.permute(0, 2, 3, 1).numpy(),
        c=c.numpy(),
        logits=logits[:, 0].numpy(),
        arch=json.dumps({**arch, **SMALL}),
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--nvidia", required=True, help="a checkout of NVlabs/stylegan2-ada-pytorch")
    parser.add_argument("--out", required=True, help="where the fixtures go")
    parser.add_argument("--only", nargs="*", help="make only these cases (default: all)")
    args = parser.parse_args()
    sys.path.insert(0, args.nvidia)
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cuda.matmul.allow_tf32 = False
    from training import networks  # noqa: PLC0415 - NVIDIA's code, importable only with --nvidia

    out = Path(args.out)
    wanted = set(args.only or [*G_CASES, *D_CASES])
    for seed, (name, arch) in enumerate(G_CASES.items()):
        if name in wanted:
            make_generator_case(networks, name, arch, out, seed)
    for seed, (name, arch) in enumerate(D_CASES.items(), start=10):
        if name in wanted:
            make_discriminator_case(networks, name, arch, out, seed)


if __name__ == "__main__":
    main()
