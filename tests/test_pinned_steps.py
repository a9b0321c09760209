"""The first steps of today's configs, pinned: the numbers they gave before the step was
rebuilt as phases and terms (tests/data/pinned_first_steps.json, written by this file's
`python tests/test_pinned_steps.py --write` at gan_jax commit c980e05, with the single
penalty spelled penalty=r1 penalty.weight=1 then). Toy data must match bit for bit; the
image configs are fed fixed random batches and match bit for bit on this CPU too (the
tolerance below is the issue's: 1e-5 on the first step, 5e-3 on the first four)."""

from __future__ import annotations

import json
import sys
from functools import partial
from pathlib import Path

import jax
import numpy as np
import pytest
from conftest import compose_config

from gan_jax import parts as parts_lib
from gan_jax import step
from gan_jax.data.images import ImageDataset

FIXTURE = Path(__file__).parent / "data" / "pinned_first_steps.json"
STEPS = 4
TOY = ["experiment=none", "dataset=ring_2d", "model.generator.width=32", "model.discriminator.width=32"]
TOY += ["train.batch_size=64"]
IMAGE = ["model.generator.width=8", "model.discriminator.width=8", "model.latent_dim=16", "train.batch_size=16"]
IMAGE += ["train.ema_start=2"]
CONDITIONAL = ["experiment=fashion_mnist_conditional", "model.generator.width=16", "model.discriminator.width=16"]
CONDITIONAL += ["train.batch_size=16", "train.ema_start=2"]

CASES = {
    "toy_ns": TOY,
    "toy_wgan_clip_d5": TOY + ["loss=wgan", "train.d_steps=5"],
    "toy_hinge_r1": TOY + ["loss=hinge", "penalty=r1", "penalty.r1.weight=1"],
    "toy_wgan_gp": TOY + ["loss=wgan", "loss.weight_clip=null", "train.d_steps=2", "penalty=wgan_gp"],
    "toy_r2": TOY + ["penalty=r2"],
    "toy_dragan": TOY + ["penalty=dragan"],
    "toy_relativistic_sim": TOY + ["loss=relativistic", "train.schedule=simultaneous"],
    "toy_lsgan_ema": TOY + ["loss=lsgan", "train.ema_decay=0.9", "train.ema_start=1"],
    "toy_minimax_pack2": TOY + ["loss=minimax", "model.discriminator.pack=2"],
    "dcgan": ["experiment=fashion_mnist_dcgan", *IMAGE],
    "resnet_projection": CONDITIONAL,
    "resnet_acgan": CONDITIONAL + ["model.conditioning=acgan", "model.class_loss_weight=1.0"],
    "resnet_augment_r1": CONDITIONAL
    + ["augment.policy=[color,translation,cutout]", "penalty=r1", "penalty.r1.weight=1"],
}
IN_MAKE_TEST = {"toy_wgan_gp", "resnet_acgan", "resnet_augment_r1"}


def first_steps(overrides: list[str]) -> list[dict[str, float]]:
    """The metrics of the first STEPS steps, images fed fixed random batches (seeded by step)."""
    cfg = compose_config(overrides)
    images = cfg.dataset.name == "fashion_mnist"
    dataset = ImageDataset("fashion_mnist", (28, 28, 1), num_classes=10) if images else None
    parts = parts_lib.build(cfg, dataset)
    state = step.init_state(parts, 0)
    batch = cfg.train.batch_size
    train_step = jax.jit(partial(step.train_step, parts, batch, None))
    rows = []
    for s in range(STEPS):
        if images:
            rng = np.random.default_rng(s)
            real = {
                "images": rng.uniform(-1, 1, (parts.d_steps, batch, 28, 28, 1)).astype(np.float32),
                "labels": rng.integers(0, 10, (parts.d_steps, batch)).astype(np.int32),
            }
            state, metrics = train_step(state, real)
        else:
            state, metrics = train_step(state)
        rows.append({k: float(v) for k, v in metrics.items()})
    return rows


@pytest.mark.parametrize("name", [n if n in IN_MAKE_TEST else pytest.param(n, marks=pytest.mark.slow) for n in CASES])
def test_first_steps_are_the_pinned_ones(name):
    pinned = json.loads(FIXTURE.read_text())[name]
    rows = first_steps(CASES[name])
    toy = name.startswith("toy_")
    for i, (was, now) in enumerate(zip(pinned, rows, strict=True)):
        for key, value in was.items():
            if toy:
                assert now[key] == value, (name, i, key, now[key], value)
            else:
                np.testing.assert_allclose(now[key], value, rtol=1e-5 if i == 0 else 5e-3, atol=1e-7, err_msg=key)


if __name__ == "__main__" and "--write" in sys.argv:
    FIXTURE.write_text(json.dumps({name: first_steps(o) for name, o in CASES.items()}, indent=1))
