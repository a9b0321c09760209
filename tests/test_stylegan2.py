"""StyleGAN2 (gan_jax.models.stylegan2) against NVIDIA's own networks: the fixtures in
tests/data/stylegan2 are NVIDIA's training/networks.py run on perturbed random weights
(make_fixtures.py, commit in its README); gan_jax loads the same state dicts with
load_nvidia and must give the same images and logits to 1e-4 relative."""

from __future__ import annotations

import json
from functools import partial
from pathlib import Path

import jax
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
    "experiment=fashion_mnist_dcgan",
    "model=stylegan2",
    "dataset.image_size=16",
    "model.latent_dim=16",
    "model.w_dim=16",
    "model.mapping.layers=2",
    "model.generator.channel_base=64",
    "model.generator.channel_max=8",
    "model.discriminator.channel_base=64",
    "model.discriminator.channel_max=8",
    "train.batch_size=8",
    "train.ema_start=1",
]


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


@pytest.mark.parametrize("name", ["d_uncond", "d_cond"])
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


@pytest.mark.parametrize("conditioning", ["none", pytest.param("projection", marks=pytest.mark.slow)])
def test_a_training_step_moves_the_average_of_w(conditioning):
    overrides = [f"model.conditioning={conditioning}", "model.discriminator.mapping_layers=2"]
    cfg = compose_config(TINY_STYLEGAN2 + overrides)
    validate(cfg, 1)
    parts = parts_lib.build(cfg, ImageDataset("fashion_mnist", (16, 16, 1), num_classes=10))
    state = step.init_state(parts, 0)
    batch = cfg.train.batch_size
    train_step = jax.jit(partial(step.train_step, parts, batch, None))
    rng = np.random.default_rng(0)
    real = {
        "images": rng.uniform(-1, 1, (parts.d_steps, batch, 16, 16, 1)).astype(np.float32),
        "labels": rng.integers(0, 10, (parts.d_steps, batch)).astype(np.int32),
    }
    new_state, metrics = train_step(state, real)
    assert all(np.isfinite(float(v)) for v in metrics.values())
    w_avg = lambda s: np.asarray(s.generator.model_state["w_average"]["mapping"]["w_avg"])  # noqa: E731
    assert not np.allclose(w_avg(new_state), w_avg(state))
    assert new_state.generator.model_state["noise_const"] is not None
