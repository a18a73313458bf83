"""Device mesh and logical-axis sharding: the one place that maps names to devices.

Model code names the axes of its parameters and activations with logical
names ('embed', 'heads', 'activation_batch', ...). This module turns a mesh
config into a `Mesh` with axes ('data', 'fsdp', 'tensor') and resolves the
logical names to `NamedSharding`s with rules that live in the config, so the
same model runs on one CPU, 8 simulated devices, a GPU node or a TPU pod.
"""

from __future__ import annotations

import contextlib
import math
from typing import Any, Iterable, Mapping, Sequence

import flax.linen as nn
import jax
import numpy as np
from flax.core import meta
from jax.experimental import mesh_utils
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

MESH_AXES = ("data", "fsdp", "tensor")

# Parameters are FSDP-sharded on their width dim; heads / MLP go over 'tensor';
# activations shard the batch over both data-parallel axes.
DEFAULT_RULES: tuple[tuple[str, Any], ...] = (
    ("activation_batch", ("data", "fsdp")),
    ("activation_heads", "tensor"),
    ("activation_mlp", "tensor"),
    ("activation_frames", None),
    ("activation_height", None),
    ("activation_width", None),
    ("activation_length", None),
    ("activation_embed", None),
    ("embed", "fsdp"),
    ("heads", "tensor"),
    ("mlp", "tensor"),
    ("kv", None),
    ("context", None),
    ("conv_in", None),
    ("vocab", None),
    ("norm", None),
    ("layers", None),
    ("kernel_t", None),
    ("kernel_h", None),
    ("kernel_w", None),
)


def resolve_mesh_shape(shape: Mapping[str, int], num_devices: int) -> dict[str, int]:
    """Fill in the one axis given as -1 so the product equals `num_devices`."""
    unknown = set(shape) - set(MESH_AXES)
    if unknown:
        raise ValueError(f"mesh axes {sorted(unknown)} are unknown; allowed: {MESH_AXES}")
    sizes = {a: int(shape.get(a, 1)) for a in MESH_AXES}
    free = [a for a, s in sizes.items() if s == -1]
    if len(free) > 1:
        raise ValueError(f"at most one mesh axis may be -1, got {free}")
    bad = {a: s for a, s in sizes.items() if s == 0 or s < -1}
    if bad:
        raise ValueError(f"mesh axis sizes must be positive or -1, got {bad}")
    fixed = math.prod(s for s in sizes.values() if s != -1)
    if free:
        if num_devices % fixed:
            raise ValueError(
                f"mesh {dict(shape)} cannot fill {num_devices} devices: {num_devices} is not divisible by {fixed}"
            )
        sizes[free[0]] = num_devices // fixed
    if math.prod(sizes.values()) != num_devices:
        raise ValueError(f"mesh {sizes} uses {math.prod(sizes.values())} devices but {num_devices} are available")
    return sizes


def make_mesh(shape: Mapping[str, int] | None = None, devices: Sequence[Any] | None = None) -> Mesh:
    """Mesh with axes ('data', 'fsdp', 'tensor'); -1 in `shape` takes the remaining devices."""
    devices = list(jax.devices() if devices is None else devices)
    sizes = resolve_mesh_shape(dict(shape or {"data": -1}), len(devices))
    dims = tuple(sizes[a] for a in MESH_AXES)
    try:
        grid = mesh_utils.create_device_mesh(dims, devices=devices)
    except Exception:  # CPU / uneven topologies: a plain reshape is as good as any.
        grid = np.asarray(devices).reshape(dims)
    return Mesh(grid, MESH_AXES)


def normalize_rules(rules: Iterable[Sequence[Any]] | None) -> tuple[tuple[str, Any], ...]:
    """Rules from a config (lists from JSON / ConfigDict) as hashable tuples."""
    if rules is None:
        return DEFAULT_RULES
    out = []
    for rule in rules:
        if len(rule) != 2:
            raise ValueError(f"a logical axis rule is (name, mesh_axes), got {rule!r}")
        name, axes = rule
        if isinstance(axes, (list, tuple)):
            axes = tuple(axes)
            bad = [a for a in axes if a not in MESH_AXES]
        else:
            bad = [axes] if axes is not None and axes not in MESH_AXES else []
        if bad:
            raise ValueError(f"rule {name!r} names mesh axes {bad}; allowed: {MESH_AXES}")
        out.append((str(name), axes))
    return tuple(out)


def _fit_spec(spec: P, shape: Sequence[int], mesh: Mesh) -> P:
    """Drop mesh axes that do not divide their dimension (replicate that dim instead)."""
    fitted = []
    for dim, axes in zip(shape, tuple(spec) + (None,) * (len(shape) - len(spec))):
        if axes is None:
            fitted.append(None)
            continue
        names = axes if isinstance(axes, tuple) else (axes,)
        kept, size = [], 1
        for a in names:
            if dim % (size * mesh.shape[a]) == 0:
                kept.append(a)
                size *= mesh.shape[a]
        fitted.append(tuple(kept) if len(kept) > 1 else (kept[0] if kept else None))
    return P(*fitted)


def logical_sharding(
    names: Sequence[str | None], shape: Sequence[int], mesh: Mesh, rules=DEFAULT_RULES
) -> NamedSharding:
    """NamedSharding for one array whose axes carry logical `names`."""
    spec = nn.logical_to_mesh_axes(tuple(names), normalize_rules(rules))
    return NamedSharding(mesh, _fit_spec(spec, shape, mesh))


def params_shardings(boxed_params: Any, mesh: Mesh, rules=DEFAULT_RULES) -> Any:
    """Pytree of NamedShardings for the *unboxed* params of a boxed (eval_shape'd) tree.

    Leaves without logical names (plain arrays) are replicated.
    """
    rules = normalize_rules(rules)

    def one(leaf):
        if isinstance(leaf, meta.Partitioned):
            return logical_sharding(leaf.names, leaf.value.shape, mesh, rules)
        return NamedSharding(mesh, P())

    return jax.tree.map(one, boxed_params, is_leaf=lambda x: isinstance(x, meta.Partitioned))


def replicated(mesh: Mesh) -> NamedSharding:
    return NamedSharding(mesh, P())


def batch_sharding(mesh: Mesh, ndim: int = 1) -> NamedSharding:
    """Leading (batch) dim over the data-parallel axes, the rest replicated."""
    return NamedSharding(mesh, P(("data", "fsdp"), *([None] * (ndim - 1))))


def data_parallel_size(mesh: Mesh) -> int:
    return mesh.shape["data"] * mesh.shape["fsdp"]


def shard_batch(batch: Any, mesh: Mesh) -> Any:
    """Global arrays from this process's slice of the batch (multi-host safe)."""

    def put(x):
        x = np.asarray(x)
        return jax.make_array_from_process_local_data(batch_sharding(mesh, x.ndim), x)

    return jax.tree.map(put, batch)


def sampling_mesh(
    batch_size: int, shape: Mapping[str, int] | None = None, devices: Sequence[Any] | None = None
) -> Mesh:
    """The inference mesh: `shape` (e.g. {'data': -1, 'tensor': 2}) over all devices; without one, in a
    single process, a data mesh over the most devices whose count divides `batch_size` (no padding rows)."""
    devices = list(jax.devices() if devices is None else devices)
    if shape is None and jax.process_count() == 1:
        d = max(n for n in range(1, len(devices) + 1) if batch_size % n == 0)
        return make_mesh({"data": d, "fsdp": 1, "tensor": 1}, devices[:d])
    mesh = make_mesh(dict(shape or {"data": -1}), devices)
    if data_parallel_size(mesh) % jax.process_count():
        raise ValueError(
            f"mesh {dict(mesh.shape)}: data x fsdp = {data_parallel_size(mesh)} must be a multiple "
            f"of the {jax.process_count()} processes, so each feeds its own rows"
        )
    return mesh


def local_batch_multiple(mesh: Mesh) -> int:
    """Rows each process feeds must be a multiple of this (its share of the data-parallel devices)."""
    return max(1, data_parallel_size(mesh) // jax.process_count())


def put_global(x: Any, sharding: NamedSharding) -> jax.Array:
    """A global array from a host value every process holds in full (params, constants): multi-host safe."""
    x = np.asarray(x)
    return jax.make_array_from_callback(x.shape, sharding, lambda idx: x[idx])


def local_rows(x: jax.Array) -> np.ndarray:
    """This process's rows of a batch-sharded array, in order (all of it in a single process)."""
    if x.is_fully_addressable:
        return np.asarray(x)
    rows: dict[int, Any] = {}
    for s in x.addressable_shards:
        rows.setdefault(s.index[0].start or 0, s.data)
    return np.concatenate([np.asarray(rows[k]) for k in sorted(rows)])


def constrain(x: jax.Array, names: Sequence[str | None]) -> jax.Array:
    """Logical sharding constraint on an activation, fitted to its shape.

    Dims that their mesh axes do not divide (batch 1 at init, a sampling batch
    smaller than the mesh) stay replicated instead of failing; outside a mesh
    this is a no-op.
    """
    mesh = jax.sharding.get_abstract_mesh()
    if mesh.empty:
        return x
    spec = nn.logical_to_mesh_axes(tuple(names), nn.get_logical_axis_rules())
    return jax.lax.with_sharding_constraint(x, _fit_spec(spec, x.shape, mesh))


@contextlib.contextmanager
def use_mesh(mesh: Mesh, rules=DEFAULT_RULES):
    """Activate `mesh` and the logical rules so `nn.with_logical_constraint` resolves."""
    with jax.set_mesh(mesh), nn.logical_axis_rules(normalize_rules(rules)):
        yield mesh
