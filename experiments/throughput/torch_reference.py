"""The PyTorch side of the benchmarks: one non-saturating GAN step, eager, as gan_jax's step does it.

D sees real and generated examples in one pass; then G steps against the updated D.
Adam(2e-4, b1=0.5) for both players.
"""

from __future__ import annotations

from typing import Callable


def gan_runner(generate, discriminate, g_params, d_params, real_batch: Callable, latent_batch: Callable,
               warm_up: int) -> Callable[[int], None]:
    """A function that runs n eager steps."""
    import torch

    g_opt = torch.optim.Adam(g_params, lr=2e-4, betas=(0.5, 0.999))
    d_opt = torch.optim.Adam(d_params, lr=2e-4, betas=(0.5, 0.999))
    softplus = torch.nn.functional.softplus

    def one_step() -> None:
        real = real_batch()
        with torch.no_grad():
            fake = generate(latent_batch())
        out = discriminate(torch.cat([real, fake]))
        d_loss = softplus(-out[:len(real)]).mean() + softplus(out[len(real):]).mean()
        d_opt.zero_grad(set_to_none=True)
        d_loss.backward()
        d_opt.step()
        g_loss = softplus(-discriminate(generate(latent_batch()))).mean()
        g_opt.zero_grad(set_to_none=True)
        g_loss.backward()
        g_opt.step()

    def run(n: int) -> None:
        for _ in range(n):
            one_step()

    run(warm_up)
    return run
