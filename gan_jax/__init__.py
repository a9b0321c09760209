"""gan_jax: a JAX research framework for Generative Adversarial Networks."""

__version__ = "0.1.0"
