"""StyleGAN2 (gan_jax.models.stylegan2) against NVIDIA's own networks: the fixtures in
tests/data/stylegan2 are NVIDIA's training/networks.py run on perturbed random weights
(make_fixtures.py, commit in its README); gan_jax loads the same state dicts with
load_nvidia and must give the same images and logits to 1e-4 relative. Then its training
randomness (per-example noise and style mixing from the step's example keys) and the
presets that train it."""

from __future__ import annotations

import json
from functools import partial
from operator import itemgetter
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import compose_config

from gan_jax import parts as parts_lib
from gan_jax import step
from gan_jax.config import ConfigError, validate
from gan_jax.data.images import ImageDataset
from gan_jax.metrics.torch_format import read_state_dict, save_state_dict
from gan_jax.models import stylegan2

FIXTURES = Path(__file__).parent / "data" / "stylegan2"
TOLERANCE = 1e-4  # max |ours - NVIDIA's| / max |NVIDIA's|
TINY_STYLEGAN2 = [
    "experiment=fashion_mnist_stylegan2",
    "dataset.image_size=16",
    "model.latent_dim=16",
    "model.w_dim=16",
    "model.mapping.layers=2",
    "model.generator.channel_base=64",
    "model.generator.channel_max=8",
    "model.discriminator.channel_base=64",
    "model.discriminator.channel_max=8",
    "train.batch_size=8",
]
PRESETS = ["fashion_mnist_stylegan2", "karras2020_stylegan2_ada_cifar10"]


def relative_error(ours, theirs: np.ndarray) -> float:
    return float(np.max(np.abs(np.asarray(ours) - theirs)) / np.max(np.abs(theirs)))


def fixture(name: str) -> tuple[dict[str, np.ndarray], dict]:
    """NVIDIA's inputs and outputs, and the architecture arguments (NVIDIA's names)."""
    arrays = dict(np.load(FIXTURES / f"{name}.npz"))
    arch = json.loads(str(arrays.pop("arch")))
    return arrays, {k: v for k, v in arch.items() if k in stylegan2.NVIDIA_DEFAULTS}


@pytest.mark.parametrize("name", ["g_uncond", "g_cond"])
def test_generator_gives_nvidias_images(name):
    arrays, arch = fixture(name)
    g = stylegan2.load_nvidia(FIXTURES / f"{name}.pt", "G", **arch)
    c = arrays["c"] if arch["c_dim"] else None
    z = arrays["z"]
    assert relative_error(g(z, c, truncation_psi=1.0, noise_mode="const"), arrays["images_psi1"]) < TOLERANCE
    assert relative_error(g(z, c, truncation_psi=0.7, noise_mode="const"), arrays["images_psi07"]) < TOLERANCE
    cut = g(z, c, truncation_psi=0.5, truncation_cutoff=2, noise_mode="const")
    assert relative_error(cut, arrays["images_psi05_cutoff2"]) < TOLERANCE
    labels = {} if c is None else {"labels": c}
    ws = g.module.apply(g.variables, z, **labels, method="map_latents")
    assert relative_error(ws, arrays["ws"]) < TOLERANCE
    # The noise path is live: without it the images differ.
    assert relative_error(g(z, c, noise_mode="none"), arrays["images_psi1"]) > 1e-3


def test_images_are_differentiable_in_w():
    arrays, arch = fixture("g_uncond")
    g = stylegan2.load_nvidia(FIXTURES / "g_uncond.pt", "G", **arch)

    def mean_image(ws):
        return g.module.apply(g.variables, ws, method="synthesise").mean()

    grads = jax.grad(mean_image)(arrays["ws"])
    assert grads.shape == arrays["ws"].shape and np.all(np.isfinite(grads)) and np.any(grads != 0)


def test_random_noise_is_drawn_from_the_noise_key():
    arrays, arch = fixture("g_uncond")
    g = stylegan2.load_nvidia(FIXTURES / "g_uncond.pt", "G", **arch)
    draw = jax.jit(lambda key: g.module.apply(g.variables, arrays["z"], noise_mode="random", rngs={"noise": key}))
    first, again, other = draw(jax.random.key(1)), draw(jax.random.key(1)), draw(jax.random.key(2))
    np.testing.assert_array_equal(first, again)
    assert relative_error(other, np.asarray(first)) > 1e-3
    assert relative_error(first, arrays["images_psi1"]) > 1e-3


@pytest.mark.parametrize("name", ["d_uncond", "d_cond", "d_orig"])
def test_discriminator_gives_nvidias_logits(name):
    arrays, arch = fixture(name)
    d = stylegan2.load_nvidia(FIXTURES / f"{name}.pt", "D", **arch)
    c = arrays["c"] if arch["c_dim"] else None
    assert relative_error(d(arrays["images"], c), arrays["logits"]) < TOLERANCE


def test_a_state_dict_of_another_architecture_names_the_first_bad_key(tmp_path):
    arrays, arch = fixture("g_uncond")
    state = read_state_dict(FIXTURES / "g_uncond.pt")
    state["synthesis.b8.conv1.weight"] = np.zeros((32, 16, 3, 3), np.float32)
    save_state_dict(state, tmp_path / "bad.pt")
    with pytest.raises(stylegan2.StateDictMismatch) as error:
        stylegan2.load_nvidia(tmp_path / "bad.pt", "G", **arch)
    assert str(error.value) == "synthesis.b8.conv1.weight: shape (32, 16, 3, 3), expected (32, 32, 3, 3)"
    # The first bad key in the file's order (NVIDIA's state dicts list the synthesis network first).
    message = r"^synthesis.b4.conv1.affine.weight: shape \(32, 32\), expected \(32, 16\)$"
    with pytest.raises(stylegan2.StateDictMismatch, match=message):
        stylegan2.load_nvidia(FIXTURES / "g_uncond.pt", "G", **{**arch, "w_dim": 16})
    del state["synthesis.b8.conv1.weight"]
    save_state_dict(state, tmp_path / "short.pt")
    with pytest.raises(stylegan2.StateDictMismatch, match=r"^synthesis.b8.conv1.weight: missing .* \(32, 32, 3, 3\)"):
        stylegan2.load_nvidia(tmp_path / "short.pt", "G", **arch)


def test_28_pixel_images_are_refused_with_the_size_to_use():
    with pytest.raises(ConfigError, match=r"dataset.image_size=28: .* set dataset.image_size=32"):
        validate(compose_config(["experiment=fashion_mnist_dcgan", "model=stylegan2"]), 1)


# The training config of the g_cond / d_cond fixtures' architecture (16x16 grey, 10 classes).
AS_THE_COND_FIXTURES = TINY_STYLEGAN2 + [
    "model.latent_dim=32",
    "model.w_dim=32",
    "model.conditioning=projection",
    "model.generator.channel_base=256",
    "model.generator.channel_max=32",
    "model.generator.conv_clamp=0.5",
    "model.discriminator.channel_base=256",
    "model.discriminator.channel_max=32",
    "model.discriminator.conv_clamp=0.5",
    "model.discriminator.mbstd_num_channels=2",
    "model.discriminator.mapping_layers=2",
]


def test_a_run_starts_from_nvidias_weights_when_given():
    init = [
        f"model.generator.init_from={FIXTURES / 'g_cond.pt'}",
        f"model.discriminator.init_from={FIXTURES / 'd_cond.pt'}",
    ]
    cfg = compose_config(AS_THE_COND_FIXTURES + init + ["train.num_seeds=2"])
    validate(cfg, 1)
    parts = parts_lib.build(cfg, ImageDataset("fashion_mnist", (16, 16, 1), num_classes=10))
    population = step.init_population(parts, [0, 1])
    for kind, player in (("G", population.generator), ("D", population.discriminator)):
        nvidia = stylegan2.load_nvidia(FIXTURES / f"{kind.lower()}_cond.pt", kind, **fixture(f"{kind.lower()}_cond")[1])
        for replica in (0, 1):  # every replica starts from the file
            ours = jax.tree.map(itemgetter(replica), {"params": player.params, **player.model_state})
            same = jax.tree.map(lambda a, b: bool(np.array_equal(a, b)), ours, dict(nvidia.variables))
            assert all(jax.tree.leaves(same)), kind
    np.testing.assert_array_equal(
        population.generator_ema["synthesis"]["b4"]["const"][0], nvidia_const(FIXTURES / "g_cond.pt")
    )


def nvidia_const(path: Path) -> np.ndarray:
    return np.transpose(read_state_dict(path)["synthesis.b4.const"], (1, 2, 0))


def test_weights_that_do_not_fit_the_config_fail_at_start_naming_the_key(tmp_path):
    wider = AS_THE_COND_FIXTURES + [f"model.generator.init_from={FIXTURES / 'g_cond.pt'}", "model.w_dim=16"]
    data = ImageDataset("fashion_mnist", (16, 16, 1), num_classes=10)
    message = r"init_from=.*g_cond.pt: does not fit the model the config gives: synthesis.b4.conv1.affine.weight: "
    message += r"shape \(32, 32\), expected \(32, 16\)$"
    with pytest.raises(ConfigError, match=message):
        parts_lib.build(compose_config(wider), data)
    colour = AS_THE_COND_FIXTURES + [f"model.generator.init_from={FIXTURES / 'g_uncond.pt'}", "model.conditioning=none"]
    message = r"g_uncond.pt: .*: synthesis.b4.torgb.weight: shape \(3, 32, 1, 1\), expected \(1, 32, 1, 1\)$"
    with pytest.raises(ConfigError, match=message):  # RGB weights, grey data
        parts_lib.build(compose_config(colour), data)
    missing = AS_THE_COND_FIXTURES + [f"model.discriminator.init_from={tmp_path / 'D.pt'}"]
    with pytest.raises(ConfigError, match=r"model.discriminator.init_from=.*D.pt: no such file; save one with NVIDIA"):
        parts_lib.build(compose_config(missing), data)
    (tmp_path / "D.pt").write_bytes(b"not a state dict")
    with pytest.raises(ConfigError, match=r"model.discriminator.init_from=.*D.pt: "):
        parts_lib.build(compose_config(missing), data)


def test_minibatch_std_groups_must_tile_each_devices_batch():
    message = r"mbstd_group_size=4: D takes 6 examples .* valid values are 1, 2, 3, 6 or any above 6"
    with pytest.raises(ConfigError, match=message):
        validate(compose_config(TINY_STYLEGAN2 + ["train.batch_size=12", "train.grad_accum=2"]), 1)
    with pytest.raises(ConfigError, match=r"mbstd_group_size=4: D takes 6 examples"):
        validate(compose_config(TINY_STYLEGAN2 + ["train.batch_size=12"]), 2)
    validate(compose_config(TINY_STYLEGAN2 + ["train.batch_size=12"]), 1)
    validate(compose_config(TINY_STYLEGAN2 + ["train.batch_size=3"]), 1)  # one group of all 3, as NVIDIA's


def train_one_iteration(overrides: list[str]) -> tuple[dict, step.GANState, step.GANState]:
    """One compiled iteration of the tiny preset on a fixed random batch: (metrics, before, after)."""
    cfg = compose_config(TINY_STYLEGAN2 + overrides)
    validate(cfg, 1)
    parts = parts_lib.build(cfg, ImageDataset("fashion_mnist", (16, 16, 1), num_classes=10))
    assert parts.models.generator_keys  # random noise and style mixing 0.9
    state = step.init_state(parts, 0)
    batch = cfg.train.batch_size
    rng = np.random.default_rng(0)
    real = {
        "images": rng.uniform(-1, 1, (parts.d_steps, batch, 16, 16, 1)).astype(np.float32),
        "labels": rng.integers(0, 10, (parts.d_steps, batch)).astype(np.int32),
    }
    new_state, metrics = jax.jit(partial(step.train_step, parts, batch, None))(state, real)
    assert all(np.isfinite(float(v)) for v in metrics.values())
    w_avg = lambda s: np.asarray(s.generator.model_state["w_average"]["mapping"]["w_avg"])  # noqa: E731
    assert not np.allclose(w_avg(new_state), w_avg(state))
    return metrics, state, new_state


def test_the_fashion_mnist_preset_trains_with_random_noise_style_mixing_and_lazy_r1():
    metrics, _, _ = train_one_iteration(["penalty=[r1]"])  # R1 runs at step 0 (lazy: 0, 16, ...)
    assert float(metrics["d_r1"]) > 0


@pytest.mark.slow
@pytest.mark.parametrize("conditioning", ["none", "projection"])
def test_the_fashion_mnist_preset_trains_with_path_length(conditioning):
    """Every phase of the preset (D, lazy R1, G, lazy path length) runs at step 0."""
    metrics, _, _ = train_one_iteration([f"model.conditioning={conditioning}", "model.discriminator.mapping_layers=2"])
    assert float(metrics["path_length_pl_mean"]) > 0


@pytest.mark.parametrize("preset", PRESETS)
def test_the_presets_compose_and_validate(preset):
    cfg = compose_config([f"experiment={preset}"])
    validate(cfg, 1)
    assert cfg.model.name == "stylegan2" and stylegan2.takes_example_keys(cfg.model)


def test_the_cifar10_preset_is_nvidias_cifar_config():
    """train.py cfg_specs['cifar'] (stylegan2-ada-pytorch d72cc7d) and its cifar-only changes."""
    cfg = compose_config(["experiment=karras2020_stylegan2_ada_cifar10"])
    m = cfg.model
    assert (m.latent_dim, m.w_dim, m.mapping.layers, m.mapping.style_mixing) == (512, 512, 2, 0.0)
    assert (m.generator.channel_base, m.generator.channel_max, m.discriminator.architecture) == (32768, 512, "orig")
    assert m.discriminator.mbstd_group_size == 32 and "path_length" not in cfg.penalty
    assert (cfg.penalty.r1.weight, cfg.penalty.r1.interval) == (0.01, 16)
    assert (cfg.optim.lr, cfg.optim.b1, cfg.optim.b2, cfg.train.batch_size) == (0.0025, 0.0, 0.99, 64)
    assert (cfg.optim.g_lr, cfg.optim.g_b2) == (0.002, pytest.approx(0.99 ** (4 / 5)))  # G_reg_interval=4
    assert (cfg.train.ema_kimg, cfg.train.ema_rampup, cfg.augment.name) == (500, 0.05, "ada")


def test_keys_are_taken_only_for_random_noise_or_mixing():
    cfg = compose_config(TINY_STYLEGAN2 + ["model.generator.noise_mode=const", "model.mapping.style_mixing=0"])
    assert not stylegan2.takes_example_keys(cfg.model)
    cfg = compose_config(TINY_STYLEGAN2 + ["model.generator.noise_mode=const"])
    assert stylegan2.takes_example_keys(cfg.model)


def nvidia_generator(**changes) -> tuple[stylegan2.NvidiaNetwork, np.ndarray]:
    """The fixture's G (perturbed noise strengths, so the noise shows), with `changes` to its module."""
    arrays, arch = fixture("g_uncond")
    g = stylegan2.load_nvidia(FIXTURES / "g_uncond.pt", "G", **arch)
    return stylegan2.NvidiaNetwork("G", g.module.clone(**changes), g.variables), arrays["z"]


def test_random_noise_follows_each_examples_key_whatever_the_batch_split():
    g, z = nvidia_generator(noise_mode="random")
    arrays, _ = fixture("g_uncond")
    keys = jax.random.split(jax.random.key(0), 4)
    run = jax.jit(lambda z, keys: g.module.apply(g.variables, z, example_keys=keys))
    whole = np.asarray(run(z, keys))
    # Examples 0 and 1 in another batch (as on another device): the same images.
    other_half = jax.random.split(jax.random.key(5), 2)
    moved = np.asarray(run(np.concatenate([z[:2], z[:2] + 1]), jnp.concatenate([keys[:2], other_half])))
    np.testing.assert_allclose(moved[:2], whole[:2], atol=1e-5)
    assert relative_error(run(z, jax.random.split(jax.random.key(1), 4)), whole) > 1e-3
    # One latent for every example: the images differ by their keys' noise alone.
    images = np.asarray(run(np.repeat(z[:1], 4, axis=0), keys))
    np.testing.assert_allclose(images[0], whole[0], atol=1e-5)
    assert relative_error(images[1], images[0]) > 1e-3
    # Without keys (evaluation) 'random' is the stored noise, as 'const': NVIDIA's const images.
    assert relative_error(jax.jit(g.module.apply)(g.variables, z), arrays["images_psi1"]) < TOLERANCE


def test_no_mixing_leaves_w_as_it_is():
    g, z = nvidia_generator(style_mixing=0.0)
    keys = jax.random.split(jax.random.key(0), 4)
    plain = g.module.apply(g.variables, z, method="map_latents")
    np.testing.assert_array_equal(g.module.apply(g.variables, z, example_keys=keys, method="map_latents"), plain)


def test_mixing_takes_the_second_latents_w_from_each_examples_cutoff_on():
    g, z = nvidia_generator(style_mixing=1.0)
    keys = jax.random.split(jax.random.key(3), 4)
    mixed = np.asarray(g.module.apply(g.variables, z, example_keys=keys, method="map_latents"))
    first = np.asarray(g.module.apply(g.variables, z, method="map_latents"))
    other = stylegan2.mixing_latents(keys, "normal", z.shape[1])
    second = np.asarray(g.module.apply(g.variables, other, method="map_latents"))
    cutoffs = np.asarray(stylegan2.mixing_cutoffs(keys, 1.0, mixed.shape[1]))
    assert np.all((cutoffs >= 1) & (cutoffs < mixed.shape[1]))
    for b, cut in enumerate(cutoffs):
        np.testing.assert_array_equal(mixed[b, :cut], first[b, :cut])
        np.testing.assert_array_equal(mixed[b, cut:], second[b, cut:])

    # The moving average of w moves with the first latents' w only (NVIDIA's skip_w_avg_update).
    def w_avg(example_keys):
        _, state = g.module.apply(
            g.variables, z, update_stats=True, example_keys=example_keys, method="map_latents", mutable=["w_average"]
        )
        return np.asarray(state["w_average"]["mapping"]["w_avg"])

    np.testing.assert_array_equal(w_avg(keys), w_avg(None))
    assert not np.allclose(w_avg(keys), g.variables["w_average"]["mapping"]["w_avg"])


def test_mixing_cutoffs_mix_with_the_probability_and_cover_every_layer():
    cutoffs = np.asarray(stylegan2.mixing_cutoffs(jax.random.split(jax.random.key(0), 4000), 0.9, 6))
    assert abs(np.mean(cutoffs < 6) - 0.9) < 0.02
    assert set(cutoffs[cutoffs < 6]) == {1, 2, 3, 4, 5}
    assert np.all(stylegan2.mixing_cutoffs(jax.random.split(jax.random.key(0), 8), 0.0, 6) == 6)
    ws, other = jnp.zeros((2, 6, 3)), jnp.ones((2, 6, 3))
    mixed = np.asarray(stylegan2.mix_styles(ws, other, jnp.array([2, 6])))
    assert mixed[0, :2].sum() == 0 and mixed[0, 2:].min() == 1 and mixed[1].sum() == 0
