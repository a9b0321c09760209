"""PacGAN's packing (model.discriminator.pack): D judges runs of consecutive examples."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import ROOT, compose_config

from gan_jax import loop, losses, penalties, step
from gan_jax.config import ConfigError, validate
from gan_jax.models import dcgan
from gan_jax.models.layers import pack_examples

SMALL = [
    "experiment=none",
    "dataset=grid_2d",
    "model.generator.width=16",
    "model.discriminator.width=16",
    "train.batch_size=8",
]


def test_vectors_are_packed_by_concatenating_consecutive_examples():
    x = jnp.arange(12.0).reshape(6, 2)
    packed = pack_examples(x, 3)
    assert packed.shape == (2, 6)
    np.testing.assert_array_equal(packed[1], jnp.concatenate([x[3], x[4], x[5]]))


def test_images_are_packed_along_the_channels():
    x = jax.random.normal(jax.random.PRNGKey(0), (4, 5, 5, 3))
    packed = pack_examples(x, 2)
    assert packed.shape == (2, 5, 5, 6)
    np.testing.assert_array_equal(packed[1], jnp.concatenate([x[2], x[3]], axis=-1))


def test_a_batch_that_is_not_whole_packs_is_refused():
    with pytest.raises(ValueError, match="pack=3"):
        pack_examples(jnp.zeros((4, 2)), 3)


@pytest.mark.parametrize("pack", [1, 2, 4])
def test_mlp_discriminator_gives_one_output_per_pack(pack):
    cfg = compose_config(SMALL + [f"model.discriminator.pack={pack}"])
    parts = loop.build_parts(cfg)
    state = step.init_state(parts, 0)
    out, _ = step.apply_model(parts.models.discriminator, state.discriminator, jnp.zeros((8, 2)))
    assert out.shape == (8 // pack, 1)
    assert state.discriminator.params["net"]["Dense_0"]["kernel"].shape[0] == 2 * pack


def test_dcgan_discriminator_gives_one_output_per_pack():
    d = dcgan.Discriminator((28, 28, 1), width=4, norm="layer", pack=2)
    x = jnp.zeros((6, 28, 28, 1))
    variables = d.init(jax.random.PRNGKey(0), x)
    assert d.apply(variables, x).shape == (3, 1)
    assert variables["params"]["Conv_0"]["kernel"].shape[2] == 2  # input channels: 2 images


def test_penalty_gradient_is_taken_per_pack():
    """A packed linear D(x1, x2) = w.[x1, x2]: each pack's gradient is w, of norm 5."""
    w = jnp.array([3.0, 0.0, 0.0, -4.0])
    d_fn = lambda x: pack_examples(x, 2) @ w[:, None]  # noqa: E731
    real = jax.random.normal(jax.random.PRNGKey(0), (8, 2))
    keys = jax.vmap(jax.random.fold_in, (None, 0))(jax.random.PRNGKey(1), jnp.arange(8))
    assert float(penalties.build("r1", 2.0, (1.0, 1.0))(d_fn, real, real, keys)) == pytest.approx(25.0)
    assert float(penalties.build("wgan_gp", 1.0, (1.0, 1.0))(d_fn, real, real + 1, keys)) == pytest.approx(16.0)


# Each loss once, each regulariser of toy data at least once, all with pack=2.
LOSS_PENALTY = [
    ("minimax", "none"),
    ("non_saturating", "r1"),
    ("wgan", "wgan_gp"),
    ("hinge", "dragan"),
    ("lsgan", "r2"),
    ("relativistic", "lecam"),
    ("rpgan", "r1"),
    ("minimax", "zcr"),
    ("hinge", "orthogonal"),
    ("non_saturating", "topk"),
]


def _loss_overrides(loss: str, penalty: str) -> list[str]:
    extra = [f"loss={loss}", f"penalty={penalty}"]
    if penalty != "none":
        extra.append(f"penalty.{penalty}.weight=1.0")
    if loss == "wgan" and penalty == "wgan_gp":
        extra.append("loss.weight_clip=null")
    return extra


def test_the_pairs_cover_every_loss_and_penalty():
    assert {loss for loss, _ in LOSS_PENALTY} == set(losses.LOSSES.names())
    part = penalties.PENALTIES.get
    on_toy_data = {
        n
        for n in penalties.names()
        if not (part(n).needs_images or part(n).needs_augment or part(n).needs_generator_methods)
    }
    assert {p for _, p in LOSS_PENALTY} == {"none"} | on_toy_data


# One pair (a loss and a gradient penalty) by default; the rest with -m slow.
@pytest.mark.parametrize(
    ("loss", "penalty"),
    [pytest.param(*pair, marks=() if pair == ("wgan", "wgan_gp") else pytest.mark.slow) for pair in LOSS_PENALTY],
)
def test_every_loss_and_penalty_trains_packed(loss, penalty):
    cfg = compose_config(SMALL + ["model.discriminator.pack=2", *_loss_overrides(loss, penalty)])
    validate(cfg, 1)
    parts = loop.build_parts(cfg)
    state, metrics = jax.jit(partial(step.train_steps, parts, 8, None), static_argnums=1)(step.init_state(parts, 0), 3)
    for key, values in metrics.items():
        assert np.all(np.isfinite(values)), (key, values)
    assert all(bool(jnp.all(jnp.isfinite(leaf))) for leaf in jax.tree.leaves(state.discriminator.params))


@pytest.mark.slow
def test_a_population_of_packed_gans_equals_its_separate_runs():
    cfg = compose_config(SMALL + ["model.discriminator.pack=4"])
    parts = loop.build_parts(cfg)
    run = partial(step.train_steps, parts, 8, None, num_steps=2)
    _, together = jax.jit(jax.vmap(run))(step.init_population(parts, [0, 1]))
    for index, seed in enumerate((0, 1)):
        _, alone = jax.jit(run)(step.init_state(parts, seed))
        np.testing.assert_allclose(together["d_loss"][index], alone["d_loss"], rtol=1e-5)


@pytest.mark.parametrize(
    ("overrides", "devices", "message"),
    [
        (["model.discriminator.pack=0"], 1, "model.discriminator.pack=0: must be an integer >= 1"),
        (["model.discriminator.pack=3"], 1, "model.discriminator.pack=3: each device's batch (8"),
        (["model.discriminator.pack=4"], 4, "model.discriminator.pack=4: each device's batch (2"),
        (["dataset=gaussian_1d", "model.discriminator.pack=2"], 1, "model.discriminator.pack=2: 1-D data"),
        (["model.discriminator.activation=maxout"], 1, "set model.discriminator.maxout_pieces"),
        (["model.generator.maxout_pieces=5"], 1, "model.generator.maxout_pieces=5 has no effect"),
    ],
)
def test_bad_packing_and_maxout_settings_fail_at_start_naming_the_key(overrides, devices, message):
    with pytest.raises(ConfigError) as error:
        validate(compose_config(SMALL + overrides), devices)
    assert message in str(error.value)


@pytest.mark.slow
def test_one_and_two_devices_give_the_same_numbers(tmp_path):
    """Packs are consecutive examples of each device's share: the same packs on 1 and 2 devices."""
    script = f"""
import json, sys
sys.path.insert(0, {str(ROOT / "tests")!r})
from pathlib import Path
from conftest import compose_config, training_rows
from gan_jax import loop
out = {{}}
for n in (1, 2):
    cfg = compose_config({SMALL!r} + ["model.discriminator.pack=2", "train.batch_size=16", "logger=none",
        "train.progress_bar=false", "train.steps=10", "train.log_every=1", "train.steps_per_call=5",
        "eval.every=10", "eval.num_samples=100", f"train.num_devices={{n}}"])
    loop.run(cfg, Path({str(tmp_path)!r}) / str(n))
    out[n] = [[r["d_loss"], r["g_loss"]] for r in training_rows(Path({str(tmp_path)!r}) / str(n))]
print(json.dumps(out))
"""
    env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=2")
    result = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    losses_by_devices = {int(k): np.array(v) for k, v in json.loads(result.stdout.strip().splitlines()[-1]).items()}
    assert losses_by_devices[1].shape == (10, 2)
    np.testing.assert_allclose(losses_by_devices[2], losses_by_devices[1], atol=1e-4)


@pytest.mark.parametrize("experiment", ["lin2018_pacgan_grid", "lin2018_pacgan_ring"])
def test_the_papers_2d_setting_builds_its_networks(experiment):
    """G: 4 x 400 (batch norm, no hidden bias); D: 3 LinearMaxout layers of 200 units x 5 pieces."""
    cfg = compose_config([f"experiment={experiment}", "model.discriminator.pack=3", "train.batch_size=300"])
    validate(cfg, 1)
    parts = loop.build_parts(cfg)
    state = step.init_state(parts, 0)
    g, d = state.generator.params["net"], state.discriminator.params["net"]
    assert [g[f"Dense_{i}"]["kernel"].shape for i in range(5)] == [(2, 400), *[(400, 400)] * 3, (400, 2)]
    assert "bias" not in g["Dense_0"] and "bias" in g["Dense_4"]
    assert [d[f"Dense_{i}"]["kernel"].shape for i in range(4)] == [(6, 1000), (200, 1000), (200, 1000), (200, 1)]
    assert state.generator.model_state["batch_stats"]["net"]["BatchNorm_3"]["mean"].shape == (400,)
