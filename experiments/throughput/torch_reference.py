"""The PyTorch side of the benchmarks: one non-saturating GAN step, eager, as gan_jax's step does it.

D steps on real and generated examples, then G steps against the updated D.
Adam(2e-4, b1=0.5) for both players.
"""

from __future__ import annotations

from collections.abc import Callable


def gan_runner(
    generate,
    discriminate,
    g_params,
    d_params,
    real_batch: Callable,
    latent_batch: Callable,
    warm_up: int,
    joint_d_pass: bool = True,
) -> Callable[[int], None]:
    """A function that runs n eager steps.

    `joint_d_pass`: D sees real and generated examples in one batch; False (a D with batch
    norm, as gan_jax does then) in two.
    """
    import torch

    g_opt = torch.optim.Adam(g_params, lr=2e-4, betas=(0.5, 0.999))
    d_opt = torch.optim.Adam(d_params, lr=2e-4, betas=(0.5, 0.999))
    softplus = torch.nn.functional.softplus

    def one_step() -> None:
        real = real_batch()
        with torch.no_grad():
            fake = generate(latent_batch())
        if joint_d_pass:
            out = discriminate(torch.cat([real, fake]))
            real_out, fake_out = out[: len(real)], out[len(real) :]
        else:
            real_out, fake_out = discriminate(real), discriminate(fake)
        d_loss = softplus(-real_out).mean() + softplus(fake_out).mean()
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


def synchronised(run: Callable[[int], None], device: str) -> Callable[[int], None]:
    """`run`, returning only when the device has finished its work (CUDA runs asynchronously)."""
    import torch

    def run_and_wait(n: int) -> None:
        run(n)
        if device.startswith("cuda"):
            torch.cuda.synchronize()

    return run_and_wait
