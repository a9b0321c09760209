"""BigGAN's orthogonal regularisation of G (Brock et al. 2019, Sec. 3.1, the off-diagonal form):

    R = weight * sum_W ||W^T W * (1 - I)||_F^2

over G's weight matrices W [fan_in, out] (a Dense kernel as it is, a Conv kernel [kh, kw,
in, out] reshaped to [kh * kw * in, out]; `*` elementwise): the inner products of different
output filters are pushed towards 0, their norms left free. Like BigGAN-PyTorch's
`utils.ortho` (each parameter viewed as [shape[0], -1], the Gram of its rows: PyTorch's
output units), it skips parameters with fewer than two axes (biases, norm gains) and takes
the Gram of every other one's outputs: a Flax kernel's last axis; for a class embedding table
[classes, features] (PyTorch's nn.Embedding layout, unchanged in Flax) its rows, the
classes. BigGAN's shared class embedding (a module named `shared`) is left out, as its
train_fns.py passes G.shared's parameters to utils.ortho's blacklist. weight = beta = 1e-4
(the paper's setting).

BigGAN-PyTorch adds the gradient 2 beta (W W^T * (1 - I)) W directly (W [out, fan_in]),
which is the gradient of beta / 2 * ||.||_F^2: with the same beta, its regularisation is
half of the paper's formula, which this module implements. It reads only G's parameters,
so it may be lazy (`interval` N > 1).
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from gan_jax.penalties import BuildContext, PenaltyPart, register
from gan_jax.terms import GENERATOR, GView, Term, TermResult


def as_matrix(path: tuple[Any, ...], leaf: jax.Array) -> jax.Array:
    """A parameter as [rows, outputs]: kernels [..., out] -> [fan_in, out]; an embedding table
    [classes, features] -> [features, classes] (its classes are the outputs, as in PyTorch)."""
    last = path[-1] if path else None
    if getattr(last, "key", None) == "embedding":
        return leaf.reshape(leaf.shape[0], -1).T
    return leaf.reshape(-1, leaf.shape[-1])


def off_diagonal_gram_penalty(matrix: jax.Array) -> jax.Array:
    """||W^T W * (1 - I)||_F^2: the squared inner products of distinct columns, in float32."""
    w = jnp.asarray(matrix, jnp.float32)
    gram = w.T @ w
    return jnp.sum((gram * (1 - jnp.eye(gram.shape[0], dtype=gram.dtype))) ** 2)


SKIPPED_MODULES = ("shared",)  # BigGAN's shared class embedding (BigGAN-PyTorch's blacklist)


def orthogonal_penalty(params: Any) -> jax.Array:
    """The sum of `off_diagonal_gram_penalty` over every parameter with at least two axes,
    bar those under a module in SKIPPED_MODULES."""
    total = jnp.zeros((), jnp.float32)
    for path, leaf in jax.tree_util.tree_leaves_with_path(params):
        skipped = any(getattr(k, "key", None) in SKIPPED_MODULES for k in path)
        if jnp.ndim(leaf) >= 2 and not skipped:
            total = total + off_diagonal_gram_penalty(as_matrix(path, leaf))
    return total


def orthogonal_term(name: str, weight: float, interval: int) -> Term:
    def fn(view: GView, state: None) -> TermResult:
        return TermResult(weight * orthogonal_penalty(view.params))

    return Term(name, GENERATOR, fn, interval=interval)


def _build(cfg: Any, context: BuildContext) -> tuple[Term, ...]:
    return (orthogonal_term(context.name, cfg.weight, cfg.interval),)


register(PenaltyPart("orthogonal", _build, may_be_lazy=True))
