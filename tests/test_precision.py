"""train.precision=bfloat16: matmuls and convolutions in bfloat16; parameters, optimiser state and losses float32."""

from __future__ import annotations

from functools import partial

import jax
import jax.extend
import jax.numpy as jnp
import numpy as np
from conftest import TINY_DCGAN, compose_config

from gan_jax import loop, step


def _operand_dtypes(jaxpr, primitive: str) -> set[str]:
    """The dtypes of every `primitive`'s operands in `jaxpr`, nested calls included."""
    found = {str(v.aval.dtype) for e in jaxpr.eqns if e.primitive.name == primitive for v in e.invars}
    for sub in jax.extend.core.subjaxprs(jaxpr):
        found |= _operand_dtypes(sub, primitive)
    return found


def _float_dtypes(tree) -> set[str]:
    return {str(x.dtype) for x in jax.tree.leaves(tree) if jnp.issubdtype(x.dtype, jnp.floating)}


def test_bfloat16_step_computes_in_bfloat16_and_keeps_float32_state():
    cfg = compose_config(["experiment=none", "dataset=ring_2d", "train.precision=bfloat16"])
    parts = loop.build_parts(cfg)
    state = step.init_state(parts, 0)
    one_step = partial(step.train_step, parts, 32, None)
    assert _operand_dtypes(jax.make_jaxpr(one_step)(state).jaxpr, "dot_general") == {"bfloat16"}
    new_state, metrics = jax.jit(one_step)(state)
    assert _float_dtypes(new_state) == {"float32"}  # parameters, optimiser states
    assert {str(v.dtype) for v in metrics.values()} == {"float32"}
    assert all(np.isfinite(float(v)) for v in metrics.values())


def test_bfloat16_dcgan_trains_with_finite_losses(fashion_mnist_dir, tmp_path):
    overrides = TINY_DCGAN + [f"dataset.data_dir={fashion_mnist_dir}", "train.precision=bfloat16", "train.steps=4"]
    cfg = compose_config(overrides)
    parts = loop.build_parts(cfg)
    state = step.init_state(parts, 0)
    real = {"images": jnp.zeros((1, 16, 28, 28, 1))}
    jaxpr = jax.make_jaxpr(partial(step.train_step, parts, 16, None))(state, real).jaxpr
    assert _operand_dtypes(jaxpr, "conv_general_dilated") == {"bfloat16"}

    summary = loop.run(cfg, tmp_path)
    assert summary["status"] == "finished" and summary["steps_completed"] == 4
    assert all(np.isfinite(summary["final"][key]) for key in ("d_loss", "g_loss", "d_real", "d_fake"))
