"""Mixed precision (`train.precision`): parameters stored in float32, computed in a lower dtype.

`compute_in(models, "bfloat16")` wraps G and D so that each application casts the
floating parameters and the input to bfloat16 (so every matmul, convolution and
activation inside runs in it) and casts the output back to float32. Losses are then
float32, gradients come back float32 through the casts, and parameters and optimiser
states never leave float32: what Flax's per-layer `dtype=bfloat16, param_dtype=float32`
does, for every model family without each one plumbing it. Other variable collections
(batch statistics, spectral norm's vectors) are passed through; a model computes its
batch statistics in float32 (dcgan.BatchNorm).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, cast

import flax.linen as nn
import jax
import jax.numpy as jnp

from gan_jax.models import GANModels

COMPUTE_DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16}


def cast_floats(tree: Any, dtype: Any) -> Any:
    """Floating-point leaves of `tree` in `dtype`; integer leaves as they are."""
    return jax.tree.map(lambda x: x.astype(dtype) if jnp.issubdtype(x.dtype, jnp.floating) else x, tree)


@dataclass(frozen=True)
class ComputeIn:
    """A Flax module (init/apply) whose float32 parameters are applied in `dtype`."""

    module: Any
    dtype: Any

    def init(self, *args: Any, **kwargs: Any) -> Any:
        return self.module.init(*args, **kwargs)

    def apply(self, variables: dict, x: jax.Array, **kwargs: Any) -> Any:
        variables = {**variables, "params": cast_floats(variables["params"], self.dtype)}
        result = self.module.apply(variables, x.astype(self.dtype), **kwargs)
        if kwargs.get("mutable"):
            out, model_state = result
            return cast_floats(out, jnp.float32), model_state
        return cast_floats(result, jnp.float32)


def compute_in(models: GANModels, precision: str) -> GANModels:
    """G and D computing in `precision` (a key of COMPUTE_DTYPES); float32 leaves them as they are."""
    dtype = COMPUTE_DTYPES[precision]
    if dtype == jnp.float32:
        return models
    # GANModels declares Flax modules; step.py needs only their init and apply.
    generator, discriminator = (cast(nn.Module, ComputeIn(m, dtype)) for m in (models.generator, models.discriminator))
    return dataclasses.replace(models, generator=generator, discriminator=discriminator)
