"""ADA (gan_jax/ada.py): the pipeline's transforms, p = 0 as the identity, the controller of p,
the config's rules, and a few training steps through the config path."""

from __future__ import annotations

from functools import cache, partial
from types import SimpleNamespace

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import TINY_DCGAN, compose_config, training_rows

from gan_jax import ada, augment, loop, step
from gan_jax import parts as parts_lib
from gan_jax.config import ConfigError, validate
from gan_jax.data.images import ImageDataset


@cache
def _pipeline(*overrides: str) -> augment.Augmentation:
    """augment=ada with `overrides`, its apply jitted once for the file (eager, each op would be
    dispatched alone; the tests share shapes so that each pipeline compiles once or twice)."""
    cfg = compose_config(["augment=ada", *overrides])
    pipeline = augment.from_config(cfg.augment, {"batch_size": 8})
    assert pipeline is not None
    return augment.Augmentation(jax.jit(pipeline.apply), pipeline.terms)


def _images(shape: tuple[int, ...], seed: int = 0) -> jax.Array:
    return jnp.asarray(np.random.default_rng(seed).uniform(-1, 1, shape).astype(np.float32))


def _keys(n: int, seed: int = 0) -> jax.Array:
    return jax.random.split(jax.random.key(seed), n)


def _states(p: float) -> dict:
    return {ada.NAME: {**ada.initial_state(), "p": jnp.float32(p)}}


def test_p_zero_is_exactly_the_identity():
    images, keys = _images((8, 8, 8, 3)), _keys(8)
    assert bool(jnp.all(_pipeline().apply(images, keys, {ada.NAME: ada.initial_state()}) == images))  # p from 0
    assert bool(jnp.all(_pipeline("augment.p=0").apply(images[..., :1], keys, {}) == images[..., :1]))


def test_p_one_changes_every_example_and_g_gets_a_gradient():
    pipeline, images, keys = _pipeline(), _images((8, 8, 8, 3)), _keys(8)
    out = pipeline.apply(images, keys, _states(1.0))
    assert out.shape == images.shape and bool(jnp.all(jnp.isfinite(out)))
    assert all(bool(jnp.any(out[i] != images[i])) for i in range(8))
    grad = jax.grad(lambda x: jnp.sum(pipeline.apply(x, keys, _states(1.0)) ** 2))(images)
    assert bool(jnp.all(jnp.isfinite(grad))) and float(jnp.abs(grad).sum()) > 0


def test_blit_transforms_move_pixels_exactly():
    images, keys = _images((32, 8, 8, 1)), _keys(32)
    flipped = _pipeline("augment.transforms=[xflip]").apply(images, keys, _states(1.0))
    for out, image in zip(flipped, images, strict=True):
        assert bool(jnp.all(out == image)) or bool(jnp.all(out == image[:, ::-1]))
    assert not bool(jnp.all(flipped == images))
    rotated = _pipeline("augment.transforms=[rotate90]").apply(images, keys, _states(1.0))
    quarters = [
        [bool(jnp.all(out == jnp.rot90(image, k))) for k in range(4)]
        for out, image in zip(rotated, images, strict=True)
    ]
    assert all(any(q) for q in quarters) and len({q.index(True) for q in quarters}) == 4


def test_each_transform_is_drawn_with_probability_p():
    images = _images((4000, 1, 1, 1))
    out = _pipeline("augment.transforms=[brightness]").apply(images, _keys(4000), _states(0.3))
    changed = float(jnp.mean(jnp.any(out != images, axis=(1, 2, 3))))
    assert abs(changed - 0.3) < 0.03


def test_colour_on_grey_and_on_rgb():
    images, keys = _images((8, 8, 8, 1)), _keys(8)
    flipped = _pipeline("augment.transforms=[lumaflip]").apply(images, keys, _states(1.0))
    assert all(
        bool(jnp.allclose(o, i, atol=1e-6) or jnp.allclose(o, -i, atol=1e-6))
        for o, i in zip(flipped, images, strict=True)
    )
    assert bool(jnp.all(_pipeline("augment.transforms=[hue,saturation]").apply(images, keys, _states(1.0)) == images))
    grey_rgb = jnp.repeat(images, 3, axis=-1)  # hue and saturation leave the luma axis alone
    out = _pipeline("augment.transforms=[hue,saturation]").apply(grey_rgb, keys, _states(1.0))
    assert bool(jnp.allclose(out, grey_rgb, atol=1e-5))
    coloured = _images((8, 8, 8, 3))
    assert not bool(jnp.allclose(_pipeline("augment.transforms=[hue]").apply(coloured, keys, _states(1.0)), coloured))


def test_the_numbers_do_not_depend_on_the_batch_split():
    pipeline, images, keys = _pipeline(), _images((8, 8, 8, 3)), _keys(8)
    whole = pipeline.apply(images, keys, _states(0.7))
    halves = [pipeline.apply(images[i : i + 4], keys[i : i + 4], _states(0.7)) for i in (0, 4)]
    np.testing.assert_allclose(whole, jnp.concatenate(halves), atol=1e-6)


def _run_controller(term, state, steps, sign, calls_per_step=1):
    """Feeds the monitor D's outputs of one sign; returns the state and each step's logged p and r_t."""
    logged = []
    for s in steps:
        for _ in range(calls_per_step):
            view = SimpleNamespace(
                real_out=jnp.full((8, 1), sign), step=jnp.int32(s), mean_over_devices=lambda v: v, settings={}
            )
            result = term.fn(view, state)
            state = result.state
        logged.append((float(result.metrics["ada_p"]), float(result.metrics["ada_rt"])))
    return state, logged


@pytest.mark.parametrize("calls_per_step", [1, 2])
def test_controller_moves_p_every_interval_by_the_batch_over_ada_kimg(calls_per_step):
    rate = ada.adjustment(batch_size=8, interval=4, ada_kimg=500)
    assert rate == pytest.approx(8 * 4 / 500_000)
    term = ada.controller_term(interval=4, target=0.6, rate=rate, fixed_p=None)
    state, logged = _run_controller(term, ada.initial_state(), range(12), 0.5, calls_per_step)  # r_t = 1 > 0.6
    expected = [0.0] * 4 + [rate] * 4 + [2 * rate] * 4
    np.testing.assert_allclose([p for p, _ in logged], expected, rtol=1e-6)
    assert all(rt == 1.0 for _, rt in logged)
    assert float(ada.adapted_p(state, 0.6, rate)) == pytest.approx(3 * rate)  # what iteration 12 applies
    state, logged = _run_controller(term, state, range(12, 20), -0.5, calls_per_step)  # r_t = -1 < 0.6
    np.testing.assert_allclose([p for p, _ in logged], [3 * rate] * 4 + [2 * rate] * 4, rtol=1e-5)
    assert float(ada.adapted_p(state, 0.6, rate)) == pytest.approx(rate, rel=1e-4)


def test_controller_keeps_p_in_zero_one():
    term = ada.controller_term(interval=2, target=0.6, rate=0.7, fixed_p=None)
    state, logged = _run_controller(term, ada.initial_state(), range(6), 1.0)
    assert [p for p, _ in logged] == pytest.approx([0.0, 0.0, 0.7, 0.7, 1.0, 1.0])
    state, logged = _run_controller(term, ada.initial_state(), range(6), -1.0)
    assert [p for p, _ in logged] == [0.0] * 6
    fixed = ada.controller_term(interval=2, target=0.6, rate=0.7, fixed_p=0.25)
    _, logged = _run_controller(fixed, ada.initial_state(), range(4), 1.0)
    assert [p for p, _ in logged] == [0.25] * 4


def test_rules_refuse_toy_data_and_bad_settings():
    toy = compose_config(["experiment=none", "dataset=ring_2d", "augment=ada"])
    with pytest.raises(ConfigError, match=r"augment=ada: the augmentation transforms images, and dataset=ring_2d"):
        validate(toy, 1)
    bad = compose_config(
        ["experiment=fashion_mnist_conditional", "augment=ada", "augment.transforms=[blit,xflip]", "augment.p=1.5"]
    )
    with pytest.raises(ConfigError) as error:
        validate(bad, 1)
    assert "augment.transforms" in str(error.value) and "augment.p" in str(error.value)
    validate(compose_config(["experiment=fashion_mnist_conditional", "augment=ada"]), 1)


TINY_IMAGES = ["experiment=fashion_mnist_conditional", "model.generator.width=8", "model.discriminator.width=8"]
TINY_IMAGES += ["model.latent_dim=16", "train.batch_size=8"]


def _train(overrides: list[str], steps: int):
    cfg = compose_config(TINY_IMAGES + overrides)
    parts = parts_lib.build(cfg, ImageDataset("fashion_mnist", (28, 28, 1), num_classes=10))
    state, batch = step.init_state(parts, 0), cfg.train.batch_size
    train_step = jax.jit(partial(step.train_step, parts, batch, None))
    rows = []
    for s in range(steps):
        rng = np.random.default_rng(s)
        real = {
            "images": rng.uniform(-1, 1, (parts.d_steps, batch, 28, 28, 1)).astype(np.float32),
            "labels": rng.integers(0, 10, (parts.d_steps, batch)).astype(np.int32),
        }
        state, metrics = train_step(state, real)
        rows.append({k: float(v) for k, v in metrics.items()})
    return state, rows


def test_training_with_ada_logs_p_and_rt():
    state, rows = _train(["augment=ada", "augment.interval=1", "augment.ada_kimg=0.004"], 3)
    assert rows[0]["ada_p"] == 0.0  # p moves by 8 / 4 = 2 each iteration: it is 0 or 1 after the first
    for row in rows:
        assert row["ada_p"] in (0.0, 1.0) and -1 <= row["ada_rt"] <= 1
        assert all(np.isfinite(v) for v in row.values())
    assert set(state.terms[ada.NAME]) == {"p", "sign_sum", "updates", "window", "closed"}


@pytest.mark.slow
def test_steps_with_p_fixed_at_zero_are_those_without_augmentation():
    # Bit for bit (the adaptive p is 0 too until iteration 4, the unit tests check its pipeline).
    ada_state, ada_rows = _train(["augment=ada", "augment.p=0"], 3)
    plain_state, plain_rows = _train(["augment=none"], 3)
    for ada_row, plain_row in zip(ada_rows, plain_rows, strict=True):
        assert {k: v for k, v in ada_row.items() if not k.startswith("ada_")} == plain_row
    same = jax.tree.map(lambda a, b: bool(jnp.all(a == b)), ada_state.generator.params, plain_state.generator.params)
    assert all(jax.tree.leaves(same))


@pytest.mark.slow
def test_a_resumed_run_continues_with_the_checkpointed_p(fashion_mnist_dir, tmp_path):
    """Stopped at step 3 (its checkpoint) and continued: the uninterrupted run's rows, ada_p
    included (p moves by 16 / 32 = 0.5 an iteration here; it would restart from 0)."""
    base = TINY_DCGAN + [f"dataset.data_dir={fashion_mnist_dir}", "train.d_steps=2", "augment=ada"]
    base += ["augment.interval=1", "augment.ada_kimg=0.032"]
    loop.run(compose_config(base), tmp_path / "whole")
    loop.run(compose_config(base + ["train.steps=3"]), tmp_path / "split")
    assert loop.run(compose_config(base), tmp_path / "split")["resumed_from_step"] == 3
    whole, split = training_rows(tmp_path / "whole"), training_rows(tmp_path / "split")
    assert split == whole
    assert any(row["ada_p"] > 0 for row in whole if row["step"] > 3)  # p was not 0 at the split
