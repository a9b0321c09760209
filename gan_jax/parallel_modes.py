"""The ways the step can be compiled over the devices (`train.parallel`; gan_jax/parallel.py).

Apart from parallel.py so that the config schema can list them without importing the
compiled step. Imports nothing of gan_jax.
"""

MODES = ("shard_map", "pmap")
