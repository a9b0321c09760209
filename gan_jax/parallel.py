"""Data parallelism: the per-device step compiled with `jax.pmap` over local devices."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from gan_jax import step
from gan_jax.errors import ConfigError

AXIS = "devices"


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


def compile_train_steps(parts: step.GANParts, global_batch_size: int, devices: list) -> Callable[..., tuple[Any, dict]]:
    """(state [devices, replicas, ...], num_steps, real_batches) -> (state, metrics
    [devices, replicas, num_steps]).

    Each device runs every replica (a population of independent GANs, vmapped) on its
    share of the global batch; the state's buffers are donated. `real_batches` is None
    for toy data, else [devices, replicas, num_steps, d_steps, per-device batch, H, W, C].
    """
    per_device = global_batch_size // len(devices)

    def population_steps(state, num_steps: int, real_batches=None):
        def one_replica(replica_state, replica_batches):
            return step.train_steps(parts, per_device, AXIS, replica_state, num_steps, replica_batches)

        return jax.vmap(one_replica)(state, real_batches)

    return jax.pmap(
        population_steps,
        axis_name=AXIS,
        devices=devices,
        static_broadcasted_argnums=(1,),
        donate_argnums=(0,),
    )


def shard_batches(batches: np.ndarray, devices: list) -> jax.Array:
    """[replicas, steps, d_steps, global batch, ...] -> on the devices, split along the batch:
    [devices, replicas, steps, d_steps, batch / devices, ...]."""
    replicas, steps, d_steps, batch = batches.shape[:4]
    split = batches.reshape(replicas, steps, d_steps, len(devices), batch // len(devices), *batches.shape[4:])
    split = np.moveaxis(split, 3, 0)
    mesh = Mesh(np.asarray(devices), (AXIS,))
    return jax.device_put(split, NamedSharding(mesh, PartitionSpec(AXIS)))


def replicate(tree: Any, num_devices: int) -> Any:
    """Host copies with a leading device axis; the first pmap call places them."""
    return jax.tree.map(lambda x: np.stack([np.asarray(x)] * num_devices), tree)


def unreplicate(tree: Any) -> Any:
    return jax.tree.map(lambda x: x[0], tree)


def replica(tree: Any, index: int) -> Any:
    """One member of a population (leading axis) as a state of its own."""
    return jax.tree.map(lambda x: x[index], tree)
