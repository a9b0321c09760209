"""The built-in regularisers beyond the gradient penalties, one module each; importing
this package registers them with gan_jax.penalties.PENALTIES."""

from gan_jax.regularisers import consistency, lecam, orthogonal, path_length, topk

__all__ = ["consistency", "lecam", "orthogonal", "path_length", "topk"]
