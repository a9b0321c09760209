"""StyleGAN2's path-length regularisation (gan_jax/regularisers/path_length.py): by hand on a
linear generator whose Jacobian is known, in a real StyleGAN2 run as G's lazy phase, and
refused at start for a generator without map_latents / synthesise."""

from __future__ import annotations

from functools import partial

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import TINY, compose_config
from test_stylegan2 import TINY_STYLEGAN2

from gan_jax import loop, step
from gan_jax import parts as parts_lib
from gan_jax.config import validate
from gan_jax.data.images import ImageDataset
from gan_jax.errors import ConfigError
from gan_jax.regularisers.path_length import image_noise, path_length_term
from gan_jax.terms import GView

Z_DIM, W_DIM, NUM_WS, IMAGE_SHAPE = 3, 4, 2, (4, 4, 2)
LAZY_STYLEGAN2 = TINY_STYLEGAN2 + ["penalty=[r1,path_length]", "penalty.r1.interval=16"]
LAZY_STYLEGAN2 += ["penalty.path_length.interval=4"]


class LinearGenerator(nn.Module):
    """w = z A on every layer; images[b, h, w, c] = sum_k,j ws[b, k, j] M[k, j, h, w, c], so J^T y = M . y."""

    a: np.ndarray  # [Z_DIM, W_DIM]
    m: np.ndarray  # [NUM_WS, W_DIM, *IMAGE_SHAPE]

    def setup(self) -> None:
        self.mapping_matrix = self.param("a", lambda _: jnp.asarray(self.a))
        self.synthesis_matrix = self.param("m", lambda _: jnp.asarray(self.m))

    def map_latents(self, z, labels=None, update_stats=False, axis_name=None, example_keys=None):
        w = z @ self.mapping_matrix
        return jnp.broadcast_to(w[:, None, :], (z.shape[0], NUM_WS, W_DIM))

    def synthesise(self, ws, update_stats=False, axis_name=None, labels=None, example_keys=None):
        return jnp.einsum("bkj,kjhwc->bhwc", ws, self.synthesis_matrix)

    def __call__(self, z, update_stats=False, axis_name=None, labels=None):
        return self.synthesise(self.map_latents(z, labels))


def _g_view(module: nn.Module, params, latent, keys) -> GView:
    def apply_generator(method, *args, labels=None, **kwargs):
        conditioned = {} if labels is None else {"labels": labels}
        variables = {"params": params}
        return module.apply(
            variables, *args, update_stats=False, axis_name=None, method=method, **conditioned, **kwargs
        )

    return GView(
        fake_out=None,
        real_out=None,
        fake_classes=None,
        fake=module.apply({"params": params}, latent),
        latent=latent,
        labels=None,
        params=params,
        generate=lambda z, y: module.apply({"params": params}, z),
        apply_generator=apply_generator,
        discriminate=lambda x, y: None,
        keys=keys,
        step=jnp.zeros((), jnp.int32),
        mean_over_devices=lambda x: x,
    )


def test_path_length_against_a_linear_generator_by_hand():
    """6 latents, shrink 2: the first 3 and their keys; l_i = sqrt(mean_k sum_j (M . y_i)^2),
    a <- 0.5 + 0.01 (mean l - 0.5), value 2 mean (l - a)^2."""
    rng = np.random.default_rng(0)
    a, m = rng.normal(size=(Z_DIM, W_DIM)), rng.normal(size=(NUM_WS, W_DIM, *IMAGE_SHAPE))
    module = LinearGenerator(a.astype(np.float32), m.astype(np.float32))
    latent = jnp.asarray(rng.normal(size=(6, Z_DIM)), jnp.float32)
    params = module.init(jax.random.key(0), latent)["params"]
    keys = jax.random.split(jax.random.key(1), 6)
    term = path_length_term("path_length", weight=2.0, decay=0.01, batch_shrink=2, interval=4)
    result = term.fn(_g_view(module, params, latent, keys), {"pl_mean": jnp.float32(0.5)})

    y = np.asarray(image_noise(keys[:3], IMAGE_SHAPE), np.float64)
    assert y.shape == (3, *IMAGE_SHAPE)
    jacobian_transpose_y = np.einsum("kjhwc,bhwc->bkj", m, y)
    lengths = np.sqrt(np.mean(np.sum(jacobian_transpose_y**2, axis=2), axis=1))
    pl_mean = 0.5 + 0.01 * (lengths.mean() - 0.5)
    assert float(result.state["pl_mean"]) == pytest.approx(pl_mean, rel=1e-5)
    assert float(result.value) == pytest.approx(2.0 * np.mean((lengths - pl_mean) ** 2), rel=1e-4)
    # y is drawn from the kept examples' keys: the other three give another value.
    other = term.fn(_g_view(module, params, latent, keys[::-1]), {"pl_mean": jnp.float32(0.5)})
    assert float(other.value) != pytest.approx(float(result.value), rel=1e-3)
    assert float(term.init()["pl_mean"]) == 0.0


class NoisyLinearGenerator(LinearGenerator):
    """The linear generator with a draw of its own in training: each example's image scaled by 1 + u,
    u ~ U(0, 1) from its example key (as StyleGAN2's per-layer noise comes from it)."""

    def synthesise(self, ws, update_stats=False, axis_name=None, labels=None, example_keys=None):
        if example_keys is None:
            return super().synthesise(ws)
        scale = 1 + jax.vmap(jax.random.uniform)(example_keys)
        return super().synthesise(ws) * scale[:, None, None, None]


def test_path_length_draws_gs_own_randomness_from_the_terms_keys():
    """As NVIDIA's Greg phase runs G with its style mixing and random noise: the images the
    lengths are taken on have G's draws from fold_in(key, 1) of each kept example's key."""
    rng = np.random.default_rng(0)
    a, m = rng.normal(size=(Z_DIM, W_DIM)), rng.normal(size=(NUM_WS, W_DIM, *IMAGE_SHAPE))
    module = NoisyLinearGenerator(a.astype(np.float32), m.astype(np.float32))
    latent = jnp.asarray(rng.normal(size=(4, Z_DIM)), jnp.float32)
    params = module.init(jax.random.key(0), latent)
    keys = jax.random.split(jax.random.key(1), 4)
    term = path_length_term("path_length", weight=2.0, decay=0.01, batch_shrink=2, interval=4)
    result = term.fn(_g_view(module, params["params"], latent, keys), {"pl_mean": jnp.float32(0.5)})

    y = np.asarray(image_noise(keys[:2], IMAGE_SHAPE), np.float64)
    scale = 1 + np.asarray(jax.vmap(lambda k: jax.random.uniform(jax.random.fold_in(k, 1)))(keys[:2]), np.float64)
    lengths = scale * np.sqrt(np.mean(np.sum(np.einsum("kjhwc,bhwc->bkj", m, y) ** 2, axis=2), axis=1))
    pl_mean = 0.5 + 0.01 * (lengths.mean() - 0.5)
    assert float(result.state["pl_mean"]) == pytest.approx(pl_mean, rel=1e-5)
    assert float(result.value) == pytest.approx(2.0 * np.mean((lengths - pl_mean) ** 2), rel=1e-4)


@pytest.mark.slow  # make test's budget; lazy phases: tests/test_phases.py
def test_a_stylegan2_run_regularises_g_every_4_iterations():
    cfg = compose_config(LAZY_STYLEGAN2)
    parts = parts_lib.build(cfg, ImageDataset("fashion_mnist", (16, 16, 1), num_classes=10))
    state = step.init_state(parts, 0)
    batch = cfg.train.batch_size
    train_step = jax.jit(partial(step.train_step, parts, batch, None))
    rng = np.random.default_rng(0)
    rows = []
    for _ in range(9):
        real = {
            "images": rng.uniform(-1, 1, (parts.d_steps, batch, 16, 16, 1)).astype(np.float32),
            "labels": rng.integers(0, 10, (parts.d_steps, batch)).astype(np.int32),
        }
        state, metrics = train_step(state, real)
        rows.append({k: float(v) for k, v in metrics.items()})

    def changed(key):
        return [s for s in range(9) if rows[s][key] != (rows[s - 1][key] if s else 0.0)]

    assert changed("g_path_length") == [0, 4, 8]
    assert changed("path_length_pl_mean") == [0, 4, 8]
    assert changed("d_r1") == [0]
    assert 0 < rows[0]["path_length_pl_mean"] < rows[4]["path_length_pl_mean"] < rows[8]["path_length_pl_mean"]
    assert int(state.generator.opt_state[0].count) == 9 + 3
    assert int(state.discriminator.opt_state[0].count) == 9 + 1


def test_d_and_g_may_have_different_lazy_intervals():
    validate(compose_config(LAZY_STYLEGAN2), 1)


def test_a_generator_without_map_latents_is_refused_at_start(tmp_path):
    cfg = compose_config(TINY + ["experiment=none", "penalty=path_length"])
    message = (
        r"penalty=path_length: it calls the generator's map_latents, synthesise, which model=mlp has not; .*stylegan2"
    )
    with pytest.raises(ConfigError, match=message):
        loop.run(cfg, tmp_path / "run")
    assert not (tmp_path / "run").exists()  # refused before the run directory is touched
