"""Data parallelism: the per-device step (gan_jax/step.py) compiled over local devices.

Two ways to compile the same per-device function, chosen by `train.parallel`:

- shard_map (default): `jax.jit` of `jax.shard_map` over a one-axis `Mesh`. The state is
  one global array per leaf, replicated on every device; image batches are global arrays
  [replicas, steps, d_steps, global batch, H, W, C] (and their labels, [..., global batch])
  split along the batch axis.
- pmap: `jax.pmap`. The state carries a leading device axis (one copy per device) and
  batches are stacked per device, [devices, replicas, steps, d_steps, batch / devices, ...].

Either way each device runs every replica (a population of independent GANs, vmapped)
on its contiguous share of the global batch and averages gradients and metrics over
AXIS with `lax.pmean`, so the two give the same numbers (tests/test_parallel.py). A
`DataParallel` places states and batches for its mode; the loop reads states back with
`unreplicate` and never sees the difference.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from gan_jax import step
from gan_jax.errors import ConfigError

AXIS = "devices"
MODES = ("shard_map", "pmap")

# Batches [replicas, steps, d_steps, batch, ...] are split along the batch axis.
_BATCH_SPEC = PartitionSpec(None, None, None, AXIS)


def select_devices(num_devices: int | None) -> list:
    available = jax.local_devices()
    if num_devices is None:
        return available
    if num_devices > len(available):
        raise ConfigError(
            f"train.num_devices={num_devices}: only {len(available)} local "
            f"{available[0].platform} device(s); valid values are null or 1..{len(available)}"
        )
    return available[:num_devices]


@dataclass(frozen=True)
class DataParallel:
    """Where the state and the batches live: `devices`, compiled with `mode` (one of MODES)."""

    devices: tuple
    mode: str = "shard_map"

    @property
    def mesh(self) -> Mesh:
        return Mesh(np.asarray(self.devices), (AXIS,))

    def replicate(self, tree: Any) -> Any:
        """A (host or single-device) state, copied onto every device."""
        if self.mode == "pmap":  # host copies with a leading device axis; the first call places them
            return jax.tree.map(lambda x: np.stack([np.asarray(x)] * len(self.devices)), tree)
        # From fresh copies: device_put reuses a buffer already on the device, and leaves
        # sharing one (G's EMA starts as G's parameters) would then be donated twice.
        replicated = NamedSharding(self.mesh, PartitionSpec())
        return jax.tree.map(lambda x: jax.device_put(jnp.array(x, copy=True), replicated), tree)

    def unreplicate(self, tree: Any) -> Any:
        """The first device's copy, as arrays of their own: the next call donates `tree`."""
        if self.mode == "pmap":
            return jax.tree.map(lambda x: x[0], tree)
        return jax.tree.map(lambda x: jnp.array(x.addressable_shards[0].data, copy=True), tree)

    def shard_batches(self, batches: Any) -> Any:
        """Each leaf of `batches` (images, labels), [replicas, steps, d_steps, global batch, ...],
        on the devices, split along the batch."""
        if self.mode == "pmap":
            return jax.tree.map(lambda leaf: shard_batches_per_device(leaf, list(self.devices)), batches)
        return jax.device_put(batches, NamedSharding(self.mesh, _BATCH_SPEC))


def shard_batches_per_device(batches: np.ndarray, devices: list) -> jax.Array:
    """[replicas, steps, d_steps, global batch, ...] -> [devices, replicas, steps, d_steps,
    batch / devices, ...], device i holding examples i * batch / devices onwards."""
    replicas, steps, d_steps, batch = batches.shape[:4]
    split = batches.reshape(replicas, steps, d_steps, len(devices), batch // len(devices), *batches.shape[4:])
    split = np.moveaxis(split, 3, 0)
    mesh = Mesh(np.asarray(devices), (AXIS,))
    return jax.device_put(split, NamedSharding(mesh, PartitionSpec(AXIS)))


def _population_steps(parts: step.GANParts, per_device: int, state, num_steps: int, real_batches=None):
    """The per-device program: every replica's `num_steps` steps on this device's examples."""

    def one_replica(replica_state, replica_batches):
        return step.train_steps(parts, per_device, AXIS, replica_state, num_steps, replica_batches)

    return jax.vmap(one_replica)(state, real_batches)


def compile_train_steps(
    parts: step.GANParts, global_batch_size: int, placement: DataParallel
) -> Callable[..., tuple[Any, dict]]:
    """(state, num_steps, real_batches) -> (state, metrics [replicas, num_steps]).

    `state` and `real_batches` are placed by `placement` (`real_batches` is None for toy
    data); the state's buffers are donated.
    """
    per_device = global_batch_size // len(placement.devices)
    per_device_steps = partial(_population_steps, parts, per_device)
    if placement.mode == "pmap":
        pmapped = jax.pmap(
            per_device_steps,
            axis_name=AXIS,
            devices=list(placement.devices),
            static_broadcasted_argnums=(1,),
            donate_argnums=(0,),
        )

        def pmap_steps(state, num_steps: int, real_batches=None):
            state, metrics = pmapped(state, num_steps, real_batches)
            # Identical on every device after the pmean.
            return state, jax.tree.map(lambda m: m[0], metrics)

        return pmap_steps

    def sharded_steps(state, num_steps: int, real_batches=None):
        return jax.shard_map(
            lambda s, r: per_device_steps(s, num_steps, r),
            mesh=placement.mesh,
            in_specs=(PartitionSpec(), _BATCH_SPEC),
            out_specs=PartitionSpec(),
            # With check_vma, the gradient of a replicated parameter arrives already summed
            # over the devices; without it, each device differentiates its own share, as
            # under pmap, and step.py's pmean averages (the two then agree).
            check_vma=False,
        )(state, real_batches)

    return jax.jit(sharded_steps, static_argnums=(1,), donate_argnums=(0,))


def replica(tree: Any, index: int) -> Any:
    """One member of a population (leading axis) as a state of its own."""
    return jax.tree.map(lambda x: x[index], tree)
