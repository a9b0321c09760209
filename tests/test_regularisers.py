"""Consistency regularisation (cr, bcr, zcr), top-k training and BigGAN's orthogonal penalty:
each against a hand computation on fixed numbers (a linear D and G given to the term as
functions), then trained through the config path on toy data and on images."""

from __future__ import annotations

import types
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import compose_config

from gan_jax import losses, step
from gan_jax import parts as parts_lib
from gan_jax.config import ConfigError, validate
from gan_jax.data.images import ImageDataset
from gan_jax.regularisers import consistency, orthogonal, topk
from gan_jax.terms import GENERATOR, DView, GView

KEYS = jax.vmap(jax.random.fold_in, (None, 0))(jax.random.PRNGKey(7), jnp.arange(3))
D_WEIGHTS = np.array([0.5, -1.0, 2.0, 0.25])  # D(x) = <x, w> on images [2, 2, 1] flattened
REAL = np.arange(12, dtype=np.float32).reshape(3, 2, 2, 1) / 10
FAKE = -np.arange(12, dtype=np.float32).reshape(3, 2, 2, 1) / 7
G_MATRIX = np.array([[1.0, -2.0, 0.5], [3.0, 0.0, -1.0]])  # G(z) = z A + b, latents [2]
ZCR: list[str] = []  # zcr's own defaults: both its D and its G term


def linear_d(x, labels=None):
    return jnp.reshape(x, (x.shape[0], -1)) @ jnp.asarray(D_WEIGHTS, jnp.float32)[:, None]


def d_np(x):
    return np.reshape(x, (x.shape[0], -1)) @ D_WEIGHTS[:, None]


def flip_and_halve(images, keys, seen=None):
    """A stand-in for T: deterministic, so the expected value is a hand computation."""
    if seen is not None:
        seen.append(np.asarray(keys))
    return images[:, ::-1] * 0.5


def _d_view(**fields) -> DView:
    defaults = dict(
        real_out=jnp.array([[1.0], [-0.5], [2.0]]),
        fake_out=jnp.array([[0.3], [-1.5], [0.0]]),
        real_classes=None,
        fake_classes=None,
        real=None,
        fake=None,
        real_plain=jnp.asarray(REAL),
        fake_plain=jnp.asarray(FAKE),
        real_labels=None,
        fake_labels=None,
        d=linear_d,
        augment=flip_and_halve,
        keys=KEYS,
        step=jnp.zeros((), jnp.int32),
        mean_over_devices=lambda x: x,
    )
    return DView(**(defaults | fields))


def _g_view(**fields) -> GView:
    defaults = dict(
        fake_out=None,
        real_out=None,
        fake_classes=None,
        fake=None,
        latent=jnp.array([[0.2, -1.0], [1.5, 0.5], [-0.3, 0.8]]),
        labels=None,
        params=None,
        generate=lambda z, y: z @ jnp.asarray(G_MATRIX, jnp.float32) + 0.1,
        apply_generator=None,
        discriminate=None,
        keys=KEYS,
        step=jnp.zeros((), jnp.int32),
        mean_over_devices=lambda x: x,
    )
    return GView(**(defaults | fields))


# --- consistency regularisation -----------------------------------------------------


def test_cr_against_a_hand_computation():
    """10 * mean((D(x) as judged - D(T(x_plain)))^2) on real images only."""
    view = _d_view()
    expected = 10.0 * np.mean((np.asarray(view.real_out) - d_np(REAL[:, ::-1] * 0.5)) ** 2)
    result = consistency.cr_term("cr", 10.0).fn(view, None)
    assert float(result.value) == pytest.approx(expected, rel=1e-6)


def test_bcr_against_a_hand_computation():
    """lambda_real * CR on real + lambda_fake * CR on generated, each logged unweighted."""
    seen: list = []
    view = _d_view(augment=partial(flip_and_halve, seen=seen))
    real = np.mean((np.asarray(view.real_out) - d_np(REAL[:, ::-1] * 0.5)) ** 2)
    fake = np.mean((np.asarray(view.fake_out) - d_np(FAKE[:, ::-1] * 0.5)) ** 2)
    result = consistency.bcr_term("bcr", 10.0, 4.0).fn(view, None)
    assert float(result.value) == pytest.approx(10.0 * real + 4.0 * fake, rel=1e-6)
    assert float(result.metrics["bcr_real"]) == pytest.approx(real, rel=1e-6)
    assert float(result.metrics["bcr_fake"]) == pytest.approx(fake, rel=1e-6)
    # T's keys: one per example, fresh for real and for generated images.
    real_keys, fake_keys = seen
    assert len(real_keys) == len(fake_keys) == 3 and not np.array_equal(real_keys, fake_keys)


def test_cr_without_an_augmentation_pipeline_says_what_to_set():
    with pytest.raises(ConfigError, match="augment.policy"):
        consistency.cr_term("cr", 10.0).fn(_d_view(augment=None), None)


def test_latent_noise_is_normal_with_sigma_and_drawn_per_example():
    keys = jax.vmap(jax.random.fold_in, (None, 0))(jax.random.PRNGKey(0), jnp.arange(4096))
    noise = np.asarray(consistency.latent_noise(keys, (8,), 0.03))
    assert noise.shape == (4096, 8)
    assert abs(noise.mean()) < 1e-3 and noise.std() == pytest.approx(0.03, rel=0.03)
    np.testing.assert_array_equal(np.asarray(consistency.latent_noise(keys[:3], (8,), 0.03)), noise[:3])


def test_zcr_generator_term_against_a_hand_computation():
    """-0.5 * mean((G(z) - G(z + dz))^2) over examples and elements; for G(z) = z A + b the
    difference is -dz A."""
    view = _g_view()
    noise = np.asarray(consistency.latent_noise(consistency.folded_keys(KEYS, consistency.LATENT_NOISE), (2,), 0.03))
    expected = -0.5 * np.mean((noise @ G_MATRIX) ** 2)
    result = consistency.zcr_g_term("zcr", 0.5, 0.03).fn(view, None)
    assert float(result.value) == pytest.approx(expected, rel=1e-4)
    assert float(result.value) < 0


@pytest.mark.parametrize("augmented", [False, True])
def test_zcr_discriminator_term_against_a_hand_computation(augmented):
    """5 * mean((D(G(z)) - D(G(z + dz)))^2), with D(G(z)) as judged; with augmentation both
    images get the same transform (here T(x) = 2x + 1, the same for every key)."""
    z = np.array([[0.2, -1.0], [1.5, 0.5], [-0.3, 0.8]], np.float32)
    a = np.array([[1.0, -2.0, 0.5, 0.0], [3.0, 0.0, -1.0, 1.0]])  # G's images: [n, 2, 2, 1]
    generate = lambda latent, labels: jnp.reshape(latent @ jnp.asarray(a, jnp.float32), (-1, 2, 2, 1))  # noqa: E731
    fake_plain = (z @ a).reshape(-1, 2, 2, 1)
    fake_out = np.array([[0.4], [-0.2], [1.0]], np.float32)
    view = types.SimpleNamespace(
        fake_out=jnp.asarray(fake_out),
        fake_plain=jnp.asarray(fake_plain),
        fake_labels=None,
        latent=jnp.asarray(z),
        generate=generate,
        d=linear_d,
        augment=(lambda x, keys: 2 * x + 1) if augmented else None,
        keys=KEYS,
    )
    noise = np.asarray(consistency.latent_noise(consistency.folded_keys(KEYS, consistency.LATENT_NOISE), (2,), 0.03))
    perturbed = ((z + noise) @ a).reshape(-1, 2, 2, 1)
    if augmented:
        expected = 5.0 * np.mean((d_np(2 * fake_plain + 1) - d_np(2 * perturbed + 1)) ** 2)
    else:
        expected = 5.0 * np.mean((fake_out - d_np(perturbed)) ** 2)
    result = consistency.zcr_d_term("zcr", 5.0, 0.03).fn(view, None)
    assert float(result.value) == pytest.approx(expected, rel=1e-4)


# --- top-k --------------------------------------------------------------------------

FAKE_OUT = np.array([0.3, -1.2, 2.0, 0.7, -0.1, 1.5, -2.2, 0.9], np.float32)[:, None]
REAL_OUT = np.array([1.0, 0.2, -0.4, 0.8, 1.1, 0.0, 0.5, -0.3], np.float32)[:, None]


def softplus(x):
    return np.log1p(np.exp(-np.abs(x))) + np.maximum(x, 0)


def test_k_decays_by_gamma_each_epoch_down_to_nu_of_the_batch():
    """k = int(max(gamma^epoch, nu) * n), the rule of the implementations that follow the paper."""
    for epoch in range(0, 120, 3):
        k = topk.annealed_k(jnp.int32(epoch * 10 + 7), 64, 0.99, 0.5, 10)
        assert int(k) == int(max(0.99**epoch, 0.5) * 64), epoch
    assert int(topk.annealed_k(jnp.int32(0), 64, 0.99, 0.5, 10)) == 64


@pytest.mark.parametrize(
    "epoch, k",
    [(0, 8), (30, 5), (1000, 4)],  # 0.99^30 = 0.740: floor(5.92) = 5; then nu * 8 = 4
)
def test_topk_against_a_hand_computation(epoch, k):
    """Non-saturating: mean(softplus(-D(G(z)))) over the k largest D(G(z))."""
    term = topk.topk_term("topk", losses.get("non_saturating"), gamma=0.99, nu=0.5, decay_every=100)
    view = _g_view(fake_out=jnp.asarray(FAKE_OUT), real_out=jnp.asarray(REAL_OUT), step=jnp.int32(epoch * 100 + 50))
    result = term.fn(view, None)
    top = np.sort(FAKE_OUT[:, 0])[::-1][:k]
    assert float(result.value) == pytest.approx(np.mean(softplus(-top)), rel=1e-6)
    assert float(result.metrics["topk_k"]) == k
    assert (term.name, term.player, term.kind) == ("adversarial", GENERATOR, "loss")


def test_topk_zeroes_the_gradient_of_the_samples_left_out():
    term = topk.topk_term("topk", losses.get("hinge"), gamma=0.99, nu=0.5, decay_every=1)
    grad = jax.grad(lambda f: term.fn(_g_view(fake_out=f, real_out=REAL_OUT, step=jnp.int32(10**6)), None).value)(
        jnp.asarray(FAKE_OUT)
    )
    kept = np.zeros(8)
    kept[np.argsort(-FAKE_OUT[:, 0])[:4]] = -1 / 4  # hinge's G: -mean over the 4 kept
    np.testing.assert_allclose(np.asarray(grad)[:, 0], kept, rtol=1e-6)


def test_topk_passes_the_real_outputs_to_a_relativistic_loss():
    """Relativistic G: mean(softplus(-(f - mean r))) + mean(softplus(r - mean f)) over the top k f."""
    term = topk.topk_term("topk", losses.get("relativistic"), gamma=0.99, nu=0.5, decay_every=1)
    result = term.fn(_g_view(fake_out=FAKE_OUT, real_out=REAL_OUT, step=jnp.int32(10**6)), None)
    f, r = np.sort(FAKE_OUT[:, 0])[::-1][:4], REAL_OUT[:, 0]
    expected = np.mean(softplus(-(f - r.mean()))) + np.mean(softplus(r - f.mean()))
    assert float(result.value) == pytest.approx(expected, rel=1e-6)


# --- orthogonal ---------------------------------------------------------------------


def off_diagonal_squares(gram):
    return np.sum((gram * (1 - np.eye(len(gram)))) ** 2)


def test_orthogonal_against_a_hand_computation():
    """beta * sum ||W^T W * (1 - I)||_F^2 over a Dense kernel [in, out], a Conv kernel
    reshaped to [kh * kw * in, out] and a class embedding (Gram over its classes); biases skipped."""
    dense = np.array([[1.0, 2.0], [0.5, -1.0], [3.0, 0.0]], np.float32)
    conv = np.arange(8, dtype=np.float32).reshape(2, 2, 1, 2) / 4 - 0.5
    embedding = np.array([[1.0, 0.0], [0.5, 2.0], [-1.0, 1.0]], np.float32)
    params = {
        "Dense_0": {"kernel": dense, "bias": np.ones(2, np.float32)},
        "Conv_0": {"kernel": conv, "bias": np.ones(2, np.float32)},
        "Norm_0": {"gain": {"embedding": embedding}, "scale": np.ones(2, np.float32)},
    }
    flat_conv = conv.reshape(-1, 2)
    expected = 1e-4 * (
        off_diagonal_squares(dense.T @ dense)
        + off_diagonal_squares(flat_conv.T @ flat_conv)
        + off_diagonal_squares(embedding @ embedding.T)
    )
    result = orthogonal.orthogonal_term("orthogonal", 1e-4, 1).fn(_g_view(params=params), None)
    assert float(result.value) == pytest.approx(expected, rel=1e-5)


def test_orthogonal_gradient_is_twice_biggan_pytorchs():
    """BigGAN-PyTorch's utils.ortho adds 2 beta (W W^T * (1 - I)) W for W [out, in] = our kernel^T:
    the gradient of beta / 2 ||.||_F^2, half of the paper's formula's."""
    kernel = np.array([[1.0, 2.0, -1.0], [0.5, -1.0, 0.0], [3.0, 0.0, 1.0], [0.0, 1.0, 1.0]], np.float32)
    grad = jax.grad(lambda k: orthogonal.orthogonal_penalty({"kernel": k}))(jnp.asarray(kernel))
    w = kernel.T
    ortho = 2 * ((w @ w.T) * (1 - np.eye(3))) @ w
    np.testing.assert_allclose(np.asarray(grad), 2 * ortho.T, rtol=1e-5)


# --- through the config: rules and training -------------------------------------------


@pytest.mark.parametrize(
    "overrides, message",
    [
        (
            ["experiment=fashion_mnist_conditional", "penalty=cr"],
            "penalty=cr: it compares D on plain and augmented images, with the transforms of augment=diffaugment",
        ),
        (["experiment=fashion_mnist_conditional", "penalty=bcr"], "augment=diffaugment, which is off"),
        (["experiment=none", "dataset=ring_2d", "penalty=cr"], "penalty=cr: it transforms images, and dataset=ring_2d"),
        (["experiment=none", "penalty=topk", "penalty.topk.weight=2"], "penalty.topk.weight=2.0: must be 1.0"),
        (["experiment=none", "penalty=topk", "penalty.topk.interval=4"], "topk reads the main update's outputs"),
        (["experiment=none", "penalty=topk", "penalty.topk.nu=0"], "penalty.topk.nu=0.0: must be a number in (0, 1]"),
        (
            ["experiment=none", "penalty=zcr", "penalty.zcr.weight_dis=0", "penalty.zcr.weight_gen=0"],
            "penalty.zcr.weight_dis=0, penalty.zcr.weight_gen=0: the regulariser would do nothing",
        ),
    ],
)
def test_options_that_do_not_fit_fail_at_start(overrides, message):
    with pytest.raises(ConfigError) as error:
        validate(compose_config(overrides), num_devices=1)
    assert message in str(error.value)


def _train(cfg, steps: int, images: bool) -> tuple[step.GANParts, list[dict[str, float]]]:
    validate(cfg, num_devices=1)
    dataset = ImageDataset("fashion_mnist", (28, 28, 1), num_classes=10) if images else None
    parts = parts_lib.build(cfg, dataset)
    state = step.init_state(parts, 0)
    batch = cfg.train.batch_size
    train_step = jax.jit(partial(step.train_step, parts, batch, None))
    rows = []
    for s in range(steps):
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
    return parts, rows


# k halves each iteration down to nu = 0.5 of the batch: 8, 4, 4 (images), 16, 8, 8 (toy).
FAST_TOPK = ["penalty.topk.gamma=0.5", "penalty.topk.decay_every=1"]


@pytest.fixture(scope="module")
def image_run():
    """Every regulariser at once on Fashion-MNIST-shaped batches: one compilation."""
    cfg = compose_config(
        [
            "experiment=fashion_mnist_conditional",
            "model.generator.width=8",
            "model.discriminator.width=8",
            "train.batch_size=8",
            "augment.policy=[translation]",
            "penalty=[cr,bcr,zcr,orthogonal,topk]",
            *ZCR,
            *FAST_TOPK,
        ]
    )
    return _train(cfg, 2, images=True)


@pytest.fixture(scope="module")
def toy_run():
    cfg = compose_config(
        [
            "experiment=none",
            "dataset=ring_2d",
            "model.generator.width=16",
            "model.discriminator.width=16",
            "train.batch_size=16",
            "penalty=[zcr,orthogonal,topk]",
            *ZCR,
            *FAST_TOPK,
        ]
    )
    return _train(cfg, 3, images=False)


@pytest.mark.parametrize("metric", ["d_cr", "d_bcr", "bcr_real", "bcr_fake", "g_orthogonal"])
def test_image_training_logs_each_regulariser_positive(image_run, metric):
    _, rows = image_run
    for row in rows:
        assert np.isfinite(row[metric]) and row[metric] > 0, (metric, row)
        assert np.isfinite(row["d_loss"]) and np.isfinite(row["g_loss"])


def test_image_training_logs_zcr_and_topk(image_run):
    _, rows = image_run
    assert [row["topk_k"] for row in rows] == [8, 4]
    assert all(np.isfinite(row["g_zcr"]) and row["g_zcr"] < 0 for row in rows)
    assert all(np.isfinite(row["d_zcr"]) and row["d_zcr"] > 0 for row in rows)
    assert all(row["d_penalty"] > 0 and row["g_penalty"] != 0 for row in rows)


def test_toy_training_with_zcr_orthogonal_and_topk(toy_run):
    parts, rows = toy_run
    assert [row["topk_k"] for row in rows] == [16, 8, 8]
    for row in rows:
        assert np.isfinite(row["g_orthogonal"]) and row["g_orthogonal"] > 0
        assert np.isfinite(row["g_zcr"]) and row["g_zcr"] < 0
        assert np.isfinite(row["g_loss"]) and np.isfinite(row["d_loss"])
    # top-k took the place of the loss's own G term: one "adversarial", first among G's terms.
    g_terms = [t for t in parts.terms if t.player == GENERATOR]
    assert [t.name for t in g_terms][0] == "adversarial"
    assert sum(t.name == "adversarial" for t in g_terms) == 1
    assert "topk_term" in g_terms[0].fn.__qualname__


def test_orthogonal_may_be_lazy():
    cfg = compose_config(["experiment=none", "dataset=ring_2d", "penalty=orthogonal", "penalty.orthogonal.interval=4"])
    validate(cfg, num_devices=1)
    (term,) = [t for t in parts_lib.build(cfg).terms if t.name == "orthogonal"]
    assert term.player == GENERATOR and term.lazy and term.interval == 4
