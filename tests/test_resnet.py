"""The ResNet GAN of Miyato et al. 2018, class-conditional GANs (projection, ACGAN) and DiffAugment."""

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
from conftest import ROOT, compose_config, metrics_rows

from gan_jax import augment, feed, loop, step
from gan_jax.config import ConfigError, validate
from gan_jax.models import resnet

# A tiny conditional ResNet on the tests' Fashion-MNIST-like data, every augmentation on.
TINY_RESNET = [
    "experiment=fashion_mnist_conditional",
    "logger=none",
    "train.progress_bar=false",
    "model.generator.width=4",
    "model.discriminator.width=4",
    "model.latent_dim=8",
    "train.batch_size=8",
    "train.d_steps=1",
    "train.steps=2",
    "train.log_every=1",
    "eval.every=2",
    "train.sample_every=2",
    "train.checkpoint_every=2",
    "eval.num_samples=40",
    "eval.batch_size=40",
    "eval.reference_num_samples=128",
    "train.ema_decay=null",
    "augment.policy=[color,translation,cutout]",
]


def _params(module, *inputs):
    shapes = jax.eval_shape(lambda: module.init(jax.random.PRNGKey(0), *inputs))["params"]
    flat = {jax.tree_util.keystr(path): tuple(leaf.shape) for path, leaf in jax.tree_util.tree_leaves_with_path(shapes)}
    return flat, sum(int(np.prod(shape)) for shape in flat.values())


def _conv(k: int, c_in: int, c_out: int) -> int:
    return k * k * c_in * c_out + c_out  # kernel + bias


def test_cifar10_resnet_has_miyatos_layer_shapes_and_parameter_counts():
    z, ch_g, ch_d = 128, 256, 128
    g_shapes, g_count = _params(resnet.Generator((32, 32, 3), ch_g), jnp.zeros((1, z)))
    d_shapes, d_count = _params(resnet.Discriminator((32, 32, 3), ch_d, spectral_norm=True), jnp.zeros((1, 32, 32, 3)))
    # G: linear z -> 4x4x256; 3 up-sampling blocks (BN, conv3x3, BN, conv3x3, 1x1 shortcut); BN, conv3x3 to RGB.
    g_block = 2 * (2 * ch_g) + 2 * _conv(3, ch_g, ch_g) + _conv(1, ch_g, ch_g)
    assert g_count == (z * 4 * 4 * ch_g + 4 * 4 * ch_g) + 3 * g_block + 2 * ch_g + _conv(3, ch_g, 3) == 4_276_739
    assert g_shapes["['Dense_0']['kernel']"] == (z, 4 * 4 * ch_g)
    assert g_shapes["['GeneratorBlock_2']['Conv_2']['kernel']"] == (1, 1, ch_g, ch_g)
    assert g_shapes["['Conv_0']['kernel']"] == (3, 3, ch_g, 3)
    # D: optimised block (conv3x3 3->128, conv3x3, 1x1 shortcut), a down-sampling block with
    # a 1x1 shortcut, two plain blocks, linear 128 -> 1 after global sum pooling.
    optimised = _conv(3, 3, ch_d) + _conv(3, ch_d, ch_d) + _conv(1, 3, ch_d)
    plain = 2 * _conv(3, ch_d, ch_d)
    assert d_count == optimised + (plain + _conv(1, ch_d, ch_d)) + 2 * plain + (ch_d + 1) == 1_053_825
    assert d_shapes["['DiscriminatorBlock_0']['Conv_0']['kernel']"] == (3, 3, 3, ch_d)
    assert "['DiscriminatorBlock_2']['Conv_2']['kernel']" not in d_shapes  # identity shortcut
    assert d_shapes["['Dense_0']['kernel']"] == (ch_d, 1)


@pytest.mark.parametrize("size, channels", [(28, 1), (32, 3), (64, 3)])
def test_resnet_sizes_and_conditional_outputs(size, channels):
    labels = jnp.zeros((2,), jnp.int32)
    g = resnet.Generator((size, size, channels), 4, num_classes=10)
    images = jax.eval_shape(lambda: g.init_with_output(jax.random.PRNGKey(0), jnp.zeros((2, 8)), labels)[0])
    assert images.shape == (2, size, size, channels)
    for conditioning, width in (("projection", 1), ("acgan", 11)):
        d = resnet.Discriminator((size, size, channels), 4, True, conditioning, 10)
        out = jax.eval_shape(lambda d=d: d.init_with_output(jax.random.PRNGKey(0), jnp.zeros(images.shape), labels)[0])
        assert out.shape == (2, width)


# --- DiffAugment -------------------------------------------------------------------------


def _keys(count: int, seed: int = 0) -> jax.Array:
    return jax.vmap(jax.random.fold_in, (None, 0))(jax.random.PRNGKey(seed), jnp.arange(count))


@pytest.mark.parametrize("policy", [["translation"], ["color", "translation", "cutout"]])
def test_real_and_generated_images_pass_the_same_augmentation(policy):
    """Each transform is affine for a given key, T(x) = A x + c: with the same keys,
    T(real) - T(fake) = T(real - fake) - T(0) only if both went through the same A and c."""
    transform = augment.build(policy)
    real, fake = jax.random.uniform(jax.random.PRNGKey(1), (2, 6, 16, 16, 3), minval=-1, maxval=1)
    keys = _keys(6)
    np.testing.assert_allclose(
        transform(real, keys) - transform(fake, keys),
        transform(real - fake, keys) - transform(jnp.zeros_like(real), keys),
        atol=1e-5,
    )
    assert not np.allclose(transform(real, keys), transform(real, _keys(6, seed=1)))  # keys matter


def test_augmentations_have_gradients_and_the_papers_extents():
    x = jnp.ones((4, 16, 16, 1))
    keys = _keys(4)
    cut = augment.build(["cutout"])(x, keys)
    assert np.all((cut == 0).sum(axis=(1, 2, 3)) <= 8 * 8) and np.any(cut == 0)  # a square of half the size
    moved = augment.build(["translation"])(x, keys)
    assert np.all((moved == 0).sum(axis=(1, 2, 3)) <= 16 * 16 - 14 * 14)  # at most 1/8 of the size each way
    grads = jax.grad(lambda images: jnp.sum(augment.build(["color", "translation", "cutout"])(images, keys)))(x)
    assert float(jnp.abs(grads).sum()) > 0


# --- training ------------------------------------------------------------------------------


@pytest.mark.slow  # `make test`'s budget on 2 cores; `make test-all` runs it
def test_tiny_conditional_resnet_with_diffaugment_trains_logs_class_metrics_and_class_rows(fashion_mnist_dir, tmp_path):
    outputs = loop.run(compose_config(TINY_RESNET + [f"dataset.data_dir={fashion_mnist_dir}"]), tmp_path)
    assert outputs["status"] == "finished"
    rows = metrics_rows(tmp_path)
    train = [r for r in rows if "d_loss" in r]
    assert len(train) == 2
    for key in ("d_loss", "g_loss", "d_penalty", "g_grad_norm"):
        assert all(np.isfinite(r[key]) for r in train), key
    assert all(r["g_grad_norm"] > 0 for r in train)  # G's gradient flows back through the augmentations
    evaluation = [r for r in rows if "intra_fid" in r][-1]
    assert np.isfinite(evaluation["intra_fid"]) and 0 <= evaluation["class_accuracy"] <= 1
    from PIL import Image

    grid = Image.open(tmp_path / "samples" / "step_00000002.png")
    assert grid.size == (8 * 29 + 1, 10 * 29 + 1)  # one row per class, 8 samples each


@pytest.mark.parametrize(
    "loss, penalty, conditioning",
    [
        # One compile of the ResNet step costs ~20 s on 2 CPU cores: all in the slow set (make test-all).
        pytest.param("relativistic", "r2", "acgan", marks=pytest.mark.slow),
        pytest.param("hinge", "wgan_gp", "projection", marks=pytest.mark.slow),
        pytest.param("non_saturating", "dragan", "acgan", marks=pytest.mark.slow),
        pytest.param("wgan", "r1", "none", marks=pytest.mark.slow),
    ],
)
def test_resnet_composes_with_losses_penalties_and_conditioning(loss, penalty, conditioning, fashion_mnist_dir):
    extra = [f"loss={loss}", f"penalty={penalty}", f"model.conditioning={conditioning}"]
    extra += ["loss.weight_clip=null"] if loss == "wgan" else []
    extra += ["model.class_loss_weight=0.5"] if conditioning == "acgan" else []
    cfg = compose_config(TINY_RESNET + [f"dataset.data_dir={fashion_mnist_dir}", *extra])
    validate(cfg, num_devices=1)
    parts = loop.build_parts(cfg)
    real = jax.tree.map(lambda x: x[0], feed.chunk_batches(parts.data, [0], 0, 1, 1, 8, parts.models.conditional))
    state, metrics = jax.jit(partial(step.train_steps, parts, 8, None), static_argnums=1)(
        step.init_state(parts, 0), 1, real
    )
    for name, values in metrics.items():
        assert np.all(np.isfinite(values)), (name, values)
    assert np.all(metrics["d_penalty"] > 0)
    assert ("d_class_loss" in metrics) == (conditioning == "acgan")


_DEVICES_SCRIPT = """
import json, sys
sys.path.insert(0, {tests!r})
from pathlib import Path
from conftest import compose_config, training_rows
from gan_jax import loop
out = {{}}
for n in (1, 2):
    run_dir = Path({out_dir!r}) / str(n)
    loop.run(compose_config({overrides!r} + [f"train.num_devices={{n}}"]), run_dir)
    out[n] = [[r["d_loss"], r["g_loss"], r["d_penalty"]] for r in training_rows(run_dir)]
print(json.dumps(out))
"""


@pytest.mark.slow
def test_conditional_augmented_run_is_the_same_on_one_and_two_devices(fashion_mnist_dir, tmp_path):
    overrides = TINY_RESNET + [f"dataset.data_dir={fashion_mnist_dir}", "penalty=r1", "eval.metrics=[]"]
    script = _DEVICES_SCRIPT.format(tests=str(ROOT / "tests"), out_dir=str(tmp_path), overrides=overrides)
    env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=2")
    result = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    out = json.loads(result.stdout.strip().splitlines()[-1])
    one, two = np.array(out["1"]), np.array(out["2"])
    assert one.shape == (2, 3)
    np.testing.assert_allclose(two, one, rtol=1e-4, atol=1e-5)


# --- bad input -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "overrides, message",
    [
        (
            ["experiment=none", "dataset=ring_2d", "model=resnet", "model.conditioning=projection"],
            "model.conditioning=projection: dataset=ring_2d has no labels",
        ),
        (
            ["experiment=fashion_mnist_conditional", "model.num_classes=7"],
            "model.num_classes=7: dataset=fashion_mnist has 10 classes; set model.num_classes=10",
        ),
        (
            ["experiment=fashion_mnist_conditional", "augment.policy=[color,zoom]"],
            "augment.policy=['color', 'zoom']: must be a list of augmentation names (color, translation, cutout)",
        ),
        (
            ["experiment=none", "dataset=ring_2d", "augment.policy=[cutout]"],
            "augment.policy=['cutout']: the augmentation transforms images, and dataset=ring_2d is not one",
        ),
        (
            ["experiment=fashion_mnist_conditional", "model.conditioning=acgan"],
            "model.conditioning=acgan: set model.class_loss_weight",
        ),
        (
            ["experiment=fashion_mnist_conditional", "model.conditioning=bogus"],
            "model.conditioning='bogus': valid values are none, projection, acgan",
        ),
        (
            ["experiment=fashion_mnist_conditional", "dataset.image_size=48"],
            "dataset.image_size=48: model=resnet supports 28, 32, 64",
        ),
    ],
)
def test_bad_conditioning_or_augmentation_fails_at_start_leaving_no_run_directory(overrides, message, tmp_path):
    with pytest.raises(ConfigError) as error:
        loop.run(compose_config(overrides + ["logger=none"]), tmp_path / "run")
    assert message in str(error.value)
    assert not (tmp_path / "run").exists()


def test_class_count_of_a_named_tfds_dataset_is_checked_when_it_is_opened(fashion_mnist_dir, tmp_path):
    overrides = [
        "experiment=fashion_mnist_conditional",
        "logger=none",
        "dataset=tfds",
        "dataset.tfds_name=fashion_mnist",
        "dataset.image_size=28",
        f"dataset.data_dir={fashion_mnist_dir}",
        "model.num_classes=5",
    ]
    with pytest.raises(ConfigError, match="model.num_classes=5: dataset fashion_mnist has 10 classes"):
        loop.run(compose_config(overrides), tmp_path / "run")
    assert not (tmp_path / "run").exists()


def test_class_metrics_need_a_conditional_model(fashion_mnist_dir, tmp_path):
    overrides = [
        "experiment=fashion_mnist_dcgan",
        "logger=none",
        f"dataset.data_dir={fashion_mnist_dir}",
        "eval.metrics=[fid,intra_fid]",
    ]
    with pytest.raises(ConfigError, match="'intra_fid' does not apply to fashion_mnist with an unconditional model"):
        loop.run(compose_config(overrides), tmp_path / "run")
    assert not (tmp_path / "run").exists()


# --- class metrics ---------------------------------------------------------------------------


def test_intra_fid_and_class_accuracy_compare_class_by_class():
    from gan_jax.evaluators import EvalInputs, registered
    from gan_jax.metrics.distances import frechet_distance
    from gan_jax.metrics.feature_space import FeatureSpace, Reference

    rng = np.random.default_rng(0)
    real_labels = np.repeat([0, 1], 200)
    real = rng.normal(size=(400, 3)) + 4.0 * real_labels[:, None]  # class 1 sits 4 away on every axis
    labels = np.tile([0, 1], 150)
    fake = rng.normal(size=(300, 3)) + 4.0 * (1 - labels)[:, None]  # each class drawn like the other one
    logits = np.stack([labels == 1, labels == 0], axis=1).astype(float)  # the classifier sees the swap
    reference = Reference(real.astype(np.float32), real.mean(0), np.cov(real, rowvar=False), "test", "0")
    space = FeatureSpace(lambda x: (fake, logits), reference, "fashion_mnist", real_labels, classifies_dataset=True)
    inputs = EvalInputs(None, np.zeros((300, 1)), lambda x: x, space, labels)
    evaluators = registered()
    intra = evaluators.get("intra_fid").compute(inputs).scalars["intra_fid"]
    expected = np.mean([frechet_distance(fake[labels == c], real[real_labels == c]) for c in (0, 1)])
    assert intra == pytest.approx(expected, rel=1e-6) and intra > 40  # whole-set FID would be small
    accuracy = evaluators.get("class_accuracy").compute(inputs).scalars
    assert accuracy == {"class_accuracy": 0.0, "class_accuracy_min": 0.0}


def test_sngan_cifar10_preset_without_cifar10_fails_at_once_with_the_build_command(tmp_path):
    overrides = ["experiment=miyato2018_sngan_cifar10", "logger=none", "dataset.download=false"]
    with pytest.raises(ConfigError, match="tfds build cifar10 --file_format=array_record"):
        loop.run(compose_config(overrides + [f"dataset.data_dir={tmp_path / 'tfds'}"]), tmp_path / "run")
    assert not (tmp_path / "run").exists()
