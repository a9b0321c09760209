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

from dataclasses import dataclass
from functools import partial
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from gan_jax import distributed, step
from gan_jax.errors import ConfigError

AXIS = "devices"

# Batches [replicas, steps, d_steps, batch, ...] are split along the batch axis.
_BATCH_SPEC = PartitionSpec(None, None, None, AXIS)


def select_devices(num_devices: int | None, mode: str = "shard_map") -> list:
    """The devices a run uses: `num_devices` local ones, or every device of every process
    when the run spans processes (gan_jax/distributed.py; compiled with shard_map only)."""
    if jax.process_count() > 1:
        if mode == "pmap":
            raise ConfigError(
                f"train.parallel=pmap: a run over {jax.process_count()} processes is compiled with "
                "shard_map; valid values here are shard_map"
            )
        if num_devices not in (None, jax.device_count()):
            raise ConfigError(
                f"train.num_devices={num_devices}: a run over {jax.process_count()} processes uses "
                f"every device of each; valid values are null or {jax.device_count()}"
            )
        return jax.devices()
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
    """Where the state and the batches live: `devices`, compiled with `mode` (one of parallel_modes.MODES)."""

    devices: tuple
    mode: str = "shard_map"

    @property
    def mesh(self) -> Mesh:
        return Mesh(np.asarray(self.devices), (AXIS,))

    def replicate(self, tree: Any) -> Any:
        """A (host or single-device) state, copied onto every device."""
        if self.mode == "pmap":  # host copies with a leading device axis; the first call places them
            return jax.tree.map(lambda x: np.stack([np.asarray(x)] * len(self.devices)), tree)
        # Fresh buffers from host copies: device_put would reuse a buffer already on the
        # device, and leaves sharing one (G's EMA starts as G's parameters) would then be
        # donated twice. The callback form also reaches other processes' devices.
        replicated = NamedSharding(self.mesh, PartitionSpec())

        def place(x: Any) -> jax.Array:
            host = np.asarray(x)
            return jax.make_array_from_callback(host.shape, replicated, lambda index: host[index])

        return jax.tree.map(place, tree)

    def unreplicate(self, tree: Any) -> Any:
        """This process's first device's copy, as arrays of their own: the next call donates `tree`."""
        if self.mode == "pmap":
            return jax.tree.map(lambda x: x[0], tree)
        return jax.tree.map(lambda x: jnp.array(x.addressable_shards[0].data, copy=True), tree)

    def fetch(self, tree: Any) -> Any:
        """Replicated outputs (the step's metrics) as host arrays, read from a local device."""
        return jax.tree.map(lambda x: np.asarray(x.addressable_data(0)), tree)

    def process_share(self, global_batch_size: int) -> slice:
        """The examples of each global batch that this process's devices hold (all of them
        in one process): the process reads only these."""
        if self.mode == "pmap" or jax.process_count() == 1:
            return slice(0, global_batch_size)
        sharding = NamedSharding(self.mesh, PartitionSpec(AXIS))
        ranges = sorted(
            (index[0].start, index[0].stop)
            for index in sharding.addressable_devices_indices_map((global_batch_size,)).values()
            if index is not None
        )
        for (_, stop), (start, _) in zip(ranges, ranges[1:], strict=False):
            if stop != start:
                raise ConfigError(
                    f"this process's devices hold examples {ranges} of each batch, not one contiguous "
                    "share; the device order of the mesh must keep each process's devices together"
                )
        return slice(ranges[0][0], ranges[-1][1])

    def shard_batches(self, batches: Any, global_batch_size: int) -> Any:
        """This process's share of [replicas, steps, d_steps, global batch, ...] arrays
        (any pytree of them) -> global arrays on the devices, split along the batch."""
        if self.mode == "pmap":
            return jax.tree.map(lambda b: shard_batches_per_device(b, list(self.devices)), batches)
        sharding = NamedSharding(self.mesh, _BATCH_SPEC)

        def place(local: np.ndarray) -> jax.Array:
            global_shape = (*local.shape[:3], global_batch_size, *local.shape[4:])
            return jax.make_array_from_process_local_data(sharding, local, global_shape)

        return jax.tree.map(place, batches)


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


def compile_train_steps(parts: step.GANParts, global_batch_size: int, placement: DataParallel) -> Any:
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

    compiled = jax.jit(sharded_steps, static_argnums=(1,), donate_argnums=(0,))
    return AheadOfTime(compiled, barrier=jax.process_count() > 1)


class AheadOfTime:
    """A jitted step whose executable for a chunk size can be compiled before its first call
    (`compile`: the population's memory check reads its memory analysis; the loop then runs
    that executable, not a second compile). Over several processes every chunk size is
    compiled so, then a barrier: processes that take different times to compile would
    otherwise time out in the first collective."""

    def __init__(self, jitted: Any, barrier: bool = False):
        self.jitted, self.barrier = jitted, barrier
        self.executables: dict[int, Any] = {}

    def compile(self, state: Any, num_steps: int, real_batches: Any = None) -> Any:
        if num_steps not in self.executables:
            self.executables[num_steps] = self.jitted.lower(state, num_steps, real_batches).compile()
            if self.barrier:
                distributed.barrier(f"compiled-{num_steps}-steps")
        return self.executables[num_steps]

    def lower(self, state: Any, num_steps: int, real_batches: Any = None) -> Any:
        return self.jitted.lower(state, num_steps, real_batches)

    def __call__(self, state: Any, num_steps: int, real_batches: Any = None) -> tuple[Any, dict]:
        if self.barrier or num_steps in self.executables:
            return self.compile(state, num_steps, real_batches)(state, real_batches)
        return self.jitted(state, num_steps, real_batches)


def replica(tree: Any, index: int) -> Any:
    """One member of a population (leading axis) as a state of its own."""
    return jax.tree.map(lambda x: x[index], tree)
