"""Every loss x penalty composes with the models and data by config alone."""

from __future__ import annotations

from functools import partial

import jax
import numpy as np
import pytest
from conftest import TINY_DCGAN, compose_config

from gan_jax import feed, loop, losses, penalties, step
from gan_jax import parts as parts_lib
from gan_jax.config import ConfigError, validate
from gan_jax.data.images import ImageDataset

SMALL = [
    "experiment=none",
    "model.generator.width=16",
    "model.discriminator.width=16",
    "model.generator.depth=2",
    "model.discriminator.depth=2",
    "train.batch_size=32",
]


def _train(overrides: list[str], num_steps: int = 10, base: list[str] = SMALL):
    cfg = compose_config(base + overrides)
    validate(cfg, num_devices=1)
    parts = loop.build_parts(cfg)
    run = jax.jit(partial(step.train_steps, parts, cfg.train.batch_size, None), static_argnums=1)
    return run(step.init_state(parts, 0), num_steps)


def _loss_overrides(loss: str, penalty: str) -> list[str]:
    overrides = [f"loss={loss}", f"penalty={penalty}"]
    if loss == "wgan" and penalty == "wgan_gp":
        overrides.append("loss.weight_clip=null")
    return overrides


# Each loss once and each penalty once in `make test`; the full product with `make test-all`.
_PART = penalties.PENALTIES.get
REGULARISERS = tuple(  # those that train an MLP on toy data
    n
    for n in penalties.names()
    if not (_PART(n).needs_images or _PART(n).needs_augment or _PART(n).needs_generator_methods)
)
COVERING = sorted(
    {(loss, "none") for loss in losses.names()} | {("non_saturating", p) for p in REGULARISERS} | {("wgan", "wgan_gp")}
)
ALL_PAIRS = [(loss, penalty) for loss in losses.names() for penalty in ("none", *REGULARISERS)]
PAIRS = [pytest.param(*pair, marks=() if pair in COVERING else pytest.mark.slow) for pair in ALL_PAIRS]


@pytest.mark.parametrize("loss, penalty", PAIRS)
def test_every_loss_and_penalty_trains_ring_2d(loss, penalty):
    state, metrics = _train(["dataset=ring_2d", *_loss_overrides(loss, penalty)])
    assert int(state.step) == 10
    for name, values in metrics.items():
        assert np.all(np.isfinite(values)), (name, values)
    own = [k for k in (f"d_{penalty}", f"g_{penalty}", f"{penalty}_k") if k in metrics]
    assert bool(own) == (penalty != "none")  # a regulariser logs its value (top-k its k)
    if f"d_{penalty}" in metrics:
        assert np.all(metrics["d_penalty"] > 0)
    assert np.all((metrics["d_real"] > 0) & (metrics["d_real"] < 1))


IMAGE_COVERING = {("minimax", "none"), ("wgan", "wgan_gp"), ("relativistic", "r1")}
IMAGE_PAIRS = [pytest.param(*pair, marks=() if pair in IMAGE_COVERING else pytest.mark.slow) for pair in ALL_PAIRS]


@pytest.mark.parametrize("loss, penalty", IMAGE_PAIRS)
def test_every_loss_and_penalty_trains_fashion_mnist_dcgan(loss, penalty, fashion_mnist_dir):
    # Gradient penalties are per example: D normalises per example (layer norm) then.
    norm = "batch" if penalty == "none" else "layer"
    cfg = compose_config(
        TINY_DCGAN
        + [
            f"dataset.data_dir={fashion_mnist_dir}",
            f"model.discriminator.norm={norm}",
            *_loss_overrides(loss, penalty),
        ]
    )
    validate(cfg, num_devices=1)
    parts = loop.build_parts(cfg)
    batch = cfg.train.batch_size
    real = jax.tree.map(lambda x: x[0], feed.chunk_batches(parts.data, [0], 0, 3, cfg.train.d_steps, batch))
    run = jax.jit(partial(step.train_steps, parts, batch, None), static_argnums=1)
    state, metrics = run(step.init_state(parts, 0), 3, real)
    assert int(state.step) == 3
    for name, values in metrics.items():
        assert np.all(np.isfinite(values)), (name, values)
    assert (np.all(metrics["d_penalty"] > 0)) == (penalty != "none")


# Slow: one compile of the whole StyleGAN2 + ADA recipe is about 40 s on 2 cores (the StyleGAN2 tests cover it
# in `make test` one phase at a time).
@pytest.mark.slow
@pytest.mark.parametrize("loss", losses.names())
def test_every_loss_trains_stylegan2_with_ada_lazy_r1_and_path_length(loss):
    from test_stylegan2 import TINY_STYLEGAN2

    cfg = compose_config(TINY_STYLEGAN2 + [f"loss={loss}", "augment=ada", "augment.p=0.5", "penalty=[r1,path_length]"])
    validate(cfg, num_devices=1)
    parts = parts_lib.build(cfg, ImageDataset("fashion_mnist", (16, 16, 1), num_classes=10))
    real = {"images": np.random.default_rng(0).uniform(-1, 1, (1, 8, 16, 16, 1)).astype(np.float32)}
    state, metrics = jax.jit(partial(step.train_step, parts, 8, None))(step.init_state(parts, 0), real)
    assert int(state.step) == 1 and all(np.isfinite(float(v)) for v in metrics.values())
    assert float(metrics["d_r1"]) > 0 and float(metrics["path_length_pl_mean"]) > 0 and float(metrics["ada_p"]) == 0.5


@pytest.mark.parametrize("model", ["mlp", "dirac"])
def test_penalised_losses_train_1d_models(model):
    base = SMALL if model == "mlp" else ["experiment=none", "train.batch_size=32"]
    _, metrics = _train([f"model={model}", "dataset=gaussian_1d", "loss=hinge", "penalty=r1"], base=base)
    assert np.all(np.isfinite(metrics["d_loss"]))


def test_weight_clipping_bounds_every_critic_parameter():
    state, _ = _train(["dataset=ring_2d", "loss=wgan", "loss.weight_clip=0.01"])
    leaves = jax.tree.leaves(state.discriminator.params)
    assert max(float(np.abs(p).max()) for p in leaves) <= 0.01 + 1e-7
    assert max(float(np.abs(p).max()) for p in jax.tree.leaves(state.generator.params)) > 0.01


def test_spectral_norm_keeps_its_power_iteration_across_steps():
    state, _ = _train(["dataset=ring_2d", "loss=hinge", "model.discriminator.spectral_norm=true"], 60)
    stats = state.discriminator.model_state["batch_stats"]
    assert stats, "spectral norm keeps its vectors in the batch_stats collection"
    kernels = {
        path: leaf
        for path, leaf in jax.tree_util.tree_leaves_with_path(state.discriminator.params)
        if "kernel" in jax.tree_util.keystr(path)
    }
    sigmas = {
        jax.tree_util.keystr(path): float(leaf)
        for path, leaf in jax.tree_util.tree_leaves_with_path(stats)
        if "sigma" in jax.tree_util.keystr(path)
    }
    assert len(sigmas) == len(kernels) == 3
    for (_, kernel), sigma in zip(
        sorted(kernels.items(), key=lambda kv: jax.tree_util.keystr(kv[0])),
        [sigmas[k] for k in sorted(sigmas)],
        strict=True,
    ):
        assert sigma == pytest.approx(np.linalg.svd(np.asarray(kernel), compute_uv=False)[0], rel=0.05)


@pytest.mark.parametrize(
    "overrides, message",
    [
        (["train.schedule=simultaneous", "train.d_steps=5"], "train.d_steps=5: simultaneous updates"),
        (["model=dirac", "dataset=ring_2d"], "model=dirac: its generator is one number"),
        (["penalty=r1", "penalty.r1.weight=0"], "penalty.r1.weight=0.0: must be a number > 0 (penalty=none for no"),
        (["penalty=lecam", "penalty.lecam.interval=4"], "penalty.lecam.interval=4: lecam reads the main update's"),
        (["loss=wgan", "penalty=wgan_gp"], "the gradient penalty replaces weight clipping"),
        (["loss.name=wgan"], "loss.name='wgan': valid values are minimax, non_saturating, hinge"),
    ],
)
def test_options_that_do_not_fit_fail_at_start(overrides, message):
    with pytest.raises(ConfigError) as error:
        validate(compose_config(["experiment=none"] + overrides), num_devices=1)
    assert message in str(error.value)


def test_weight_clip_belongs_to_wgan_only():
    from hydra.errors import ConfigCompositionException

    with pytest.raises(ConfigCompositionException):
        compose_config(["loss=hinge", "loss.weight_clip=0.01"])


@pytest.mark.parametrize(
    "experiment, expected",
    [
        (
            "arjovsky2017_wgan",
            {
                "loss.name": "wgan",
                "loss.weight_clip": 0.01,
                "optim.name": "rmsprop",
                "optim.lr": 5e-5,
                "train.d_steps": 5,
                "penalty": {},
            },
        ),
        (
            "gulrajani2017_wgan_gp",
            {
                "loss.name": "wgan",
                "loss.weight_clip": None,
                "penalty.wgan_gp.weight": 10.0,
                "optim.lr": 1e-4,
                "optim.b1": 0.0,
                "optim.b2": 0.9,
                "train.d_steps": 5,
            },
        ),
        (
            "miyato2018_sngan_cifar10",
            {
                "dataset.name": "cifar10",
                "model.name": "resnet",
                "model.generator.width": 256,
                "model.discriminator.width": 128,
                "model.discriminator.spectral_norm": True,
                "loss.name": "hinge",
                "optim.lr": 2e-4,
                "optim.b1": 0.0,
                "optim.b2": 0.9,
                "train.d_steps": 5,
                "train.batch_size": 64,
            },
        ),
        (
            "fashion_mnist_conditional",
            {"dataset.name": "fashion_mnist", "model.name": "resnet", "model.conditioning": "projection"},
        ),
        (
            "miyato2018_sngan",
            {
                "loss.name": "hinge",
                "model.discriminator.spectral_norm": True,
                "optim.b1": 0.0,
                "optim.b2": 0.9,
                "train.d_steps": 5,
            },
        ),
    ],
)
def test_paper_presets(experiment, expected):
    from omegaconf import OmegaConf

    cfg = compose_config([f"experiment={experiment}"])
    validate(cfg, num_devices=1)
    assert {k: OmegaConf.select(cfg, k) for k in expected} == expected
