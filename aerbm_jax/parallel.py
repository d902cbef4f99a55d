"""Many devices and many hosts: a device mesh, sharded placement, `jax.distributed` set-up.

The mesh has two named axes, `("seeds", "chains")`. Functions that take `mesh=` shard their
batch axis over it and leave the maths to XLA's sharding propagation under `jit`, so a sharded
call returns what the unsharded call returns (bit for bit where no sum crosses devices):

- `sampling.sample`, `tempering.sample_pt`, `partition.ais_log_partition`: chains over every
  device (both axes);
- `train.fit`: each minibatch split over every device (data parallel; the gradient's batch
  mean becomes an all-reduce);
- `train.fit_many`: seeds over `"seeds"`, each seed's minibatch over `"chains"`.

The same code runs on several hosts once `initialize` has connected the processes: the mesh
then spans every process's devices.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

__all__ = [
  "SEEDS",
  "CHAINS",
  "ALL",
  "make_mesh",
  "n_shards",
  "batch_sharding",
  "replicated",
  "shard_batch",
  "place_chains",
  "constrain",
  "check_divisible",
  "minibatch_shardings",
  "distributed_settings",
  "initialize",
]

SEEDS, CHAINS = "seeds", "chains"
ALL = (SEEDS, CHAINS)  # both axes flattened: every device


def make_mesh(seeds: int = 1, devices: list | None = None) -> Mesh:
  """A `(seeds, chains)` mesh over `devices` (default: all, across hosts).

  `seeds` devices split the seed axis of `fit_many`; the rest split chains and minibatches.
  """
  devices = jax.devices() if devices is None else list(devices)
  if seeds < 1 or len(devices) % seeds:
    raise ValueError(f"seeds={seeds} must divide the {len(devices)} devices")
  grid = np.asarray(devices, dtype=object).reshape(seeds, len(devices) // seeds)
  return Mesh(grid, ALL)


def n_shards(mesh: Mesh, axes: str | tuple[str, ...] = ALL) -> int:
  """How many pieces an axis sharded over `axes` is cut into."""
  axes = (axes,) if isinstance(axes, str) else axes
  return int(np.prod([mesh.shape[a] for a in axes]))


def batch_sharding(mesh: Mesh, ndim: int, dim: int = 0, axes: str | tuple[str, ...] = ALL
                   ) -> NamedSharding:
  """Sharding of an `ndim`-D array whose axis `dim` is split over the mesh `axes`."""
  spec = [None] * ndim
  spec[dim] = axes
  return NamedSharding(mesh, P(*spec))


def replicated(mesh: Mesh) -> NamedSharding:
  """A copy on every device (parameters, shared data)."""
  return NamedSharding(mesh, P())


def check_divisible(size: int, mesh: Mesh, what: str, axes: str | tuple[str, ...] = ALL) -> None:
  """ValueError unless `size` splits evenly over the mesh `axes`."""
  k = n_shards(mesh, axes)
  if size % k:
    raise ValueError(f"{what}={size} must be divisible by the {k} devices it is sharded over; "
                     f"use a multiple of {k}")


def minibatch_shardings(mesh: Mesh, batch_size: int, n_chains: int | None,
                        axes: str | tuple[str, ...]) -> tuple[NamedSharding, NamedSharding]:
  """Shardings `(minibatch, chains)` of data-parallel training: `(batch, n)` minibatches and
  `(chains, n)` PCD chains, both split on their first axis over the mesh `axes`.

  A ValueError if `batch_size` (or `n_chains`, when not None) does not divide evenly.
  """
  check_divisible(batch_size, mesh, "batch_size", axes)
  if n_chains is not None:
    check_divisible(n_chains, mesh, "n_persistent", axes)
  return batch_sharding(mesh, 2, axes=axes), batch_sharding(mesh, 2, axes=axes)


def shard_batch(tree: Any, mesh: Mesh, dim: int = 0, axes: str | tuple[str, ...] = ALL) -> Any:
  """Place every array of `tree` with axis `dim` split over `axes`."""
  return jax.tree.map(
    lambda x: jax.device_put(x, batch_sharding(mesh, np.ndim(x), dim, axes)), tree)


def place_chains(shared: Any, chains: Any, n_chains: int, mesh: Mesh | None,
                 what: str = "n_chains") -> tuple[Any, Any, NamedSharding | None]:
  """`shared` (parameters) replicated and `chains` (leading chain axis, or None) split over
  every device; also the sharding of a `(chains, units)` array. No mesh: all unchanged, None."""
  if mesh is None:
    return shared, chains, None
  check_divisible(n_chains, mesh, what)
  shared = jax.device_put(shared, replicated(mesh))
  chains = None if chains is None else shard_batch(chains, mesh)
  return shared, chains, batch_sharding(mesh, 2)


def constrain(x: jax.Array, sharding: NamedSharding | None) -> jax.Array:
  """Inside `jit`: keep `x` on `sharding`; None leaves it to sharding propagation."""
  return x if sharding is None else jax.lax.with_sharding_constraint(x, sharding)


# ---------------------------------------------------------------------------- multi-host

ENV = {"coordinator_address": "JAX_COORDINATOR_ADDRESS", "num_processes": "JAX_NUM_PROCESSES",
       "process_id": "JAX_PROCESS_ID"}


def distributed_settings(
  coordinator_address: str | None = None,
  num_processes: int | None = None,
  process_id: int | None = None,
  *,
  auto: bool = False,
  environ: Mapping[str, str] | None = None,
) -> dict[str, Any] | None:
  """Arguments for `jax.distributed.initialize`, from flags, else the environment.

  Environment: `JAX_COORDINATOR_ADDRESS` (`host:port` of process 0), `JAX_NUM_PROCESSES`,
  `JAX_PROCESS_ID`. With `auto`, missing values are left to JAX's cluster detection (SLURM,
  Open MPI, TPU pod slices, Kubernetes). Returns None when nothing asks for more than one
  process; raises ValueError naming a missing or malformed setting.
  """
  environ = os.environ if environ is None else environ
  given = {"coordinator_address": coordinator_address, "num_processes": num_processes,
           "process_id": process_id}
  for name, var in ENV.items():
    if given[name] is None and environ.get(var):
      value = environ[var]
      if name != "coordinator_address":
        try:
          value = int(value)
        except ValueError:
          raise ValueError(f"{var}={value!r} is not an integer") from None
      given[name] = value
  if all(v is None for v in given.values()):
    return {} if auto else None
  address = given["coordinator_address"]
  if address is not None and (":" not in address or not address.rsplit(":", 1)[1].isdigit()):
    raise ValueError(f"coordinator address {address!r} must be host:port, e.g. 10.0.0.1:1234")
  n, i = given["num_processes"], given["process_id"]
  if n is not None and n < 1:
    raise ValueError(f"num_processes must be >= 1, got {n}")
  if i is not None and n is not None and not 0 <= i < n:
    raise ValueError(f"process_id must lie in [0, {n}), got {i}")
  missing = [k for k, v in given.items() if v is None]
  if missing and not auto:
    flags = ", ".join("--" + k.replace("_", "-") for k in missing)
    raise ValueError(f"multi-process runs need {flags} (or {', '.join(ENV[k] for k in missing)}),"
                     " or --distributed auto on a cluster JAX detects")
  return {k: v for k, v in given.items() if v is not None}


def initialize(settings: dict[str, Any] | None) -> None:
  """Connect this process to the others (`jax.distributed.initialize`); None does nothing.

  Call it before anything touches a device. On CPU the processes talk through gloo.
  """
  if settings is None:
    return
  jax.config.update("jax_cpu_collectives_implementation", "gloo")  # CPU devices only
  jax.distributed.initialize(**settings)
