"""TPU slices as `emu-video aot` names them: the chip table, slice name -> libtpu topology, its devices.

Slice names (`--topology`) map to libtpu topologies as Cloud TPU names them:
v4-N and v5p-N count TensorCores (2 per chip), v5e-N / v6e-N count chips, e.g.
v5p-8 = 2x2x1, v5p-128 = 64 chips = 4x4x4, v5e-256 = 16x16. A raw libtpu name
such as `v5p:2x2x2` is taken as is. libtpu describes the devices without the chips being there.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import math
import os
import re

from emu_jax.training.aot_report import GiB

__all__ = [
    "GENERATIONS",
    "Generation",
    "Topology",
    "chip_grid",
    "require_libtpu",
    "resolve_topology",
    "topology_devices",
]


@dataclasses.dataclass(frozen=True)
class Generation:
    libtpu: str  # libtpu's name for the chip
    hbm_gib: float  # HBM per chip
    cores_per_name_unit: int  # 2: slice names count TensorCores (v4, v5p); 1: they count chips
    ndim: int  # torus dimensions
    peak_tflops_bf16: float  # per chip, Cloud TPU's published dense bf16 peak
    hbm_gb_per_s: float  # per chip


GENERATIONS = {
    "v4": Generation("v4", 32, 2, 3, 275, 1228),
    "v5p": Generation("v5p", 95, 2, 3, 459, 2765),
    "v5e": Generation("v5e", 16, 1, 2, 197, 819),
    "v6e": Generation("v6e", 32, 1, 2, 918, 1640),
}
ALIASES = {"v5litepod": "v5e", "v5lite": "v5e", "v6": "v6e"}


@dataclasses.dataclass(frozen=True)
class Topology:
    name: str  # as given
    generation: str
    libtpu_name: str  # e.g. "v5p:4x4x4"
    num_chips: int

    @property
    def hbm_bytes_per_chip(self) -> int:
        return int(GENERATIONS[self.generation].hbm_gib * GiB)

    @property
    def chip(self) -> Generation:
        return GENERATIONS[self.generation]


def chip_grid(num_chips: int, ndim: int) -> tuple[int, ...]:
    """Cloud TPU's slice shape for `num_chips` (a power of two): from 2x2x1 (3D) or 1x1 (2D), double
    the smallest dim, the last one on ties: 64 -> 4x4x4, 128 -> 4x4x8, 256 chips (2D) -> 16x16."""
    if num_chips < 1 or num_chips & (num_chips - 1):
        raise ValueError(f"a TPU slice has a power-of-two number of chips, got {num_chips}")
    if ndim == 3 and num_chips < 4:
        raise ValueError(f"3D TPU slices (v4, v5p) start at 4 chips (2x2x1), got {num_chips}")
    dims = [2, 2, 1] if ndim == 3 else [1] * ndim
    while math.prod(dims) < num_chips:
        i = max(j for j, d in enumerate(dims) if d == min(dims))
        dims[i] *= 2
    return tuple(dims)


def resolve_topology(name: str) -> Topology:
    """`v5p-128` (Cloud name) or `v5p:4x4x4` (libtpu name) -> Topology; ValueError names what is allowed."""
    allowed = f"GEN-N or GEN:AxBxC with GEN in {sorted(GENERATIONS)} (e.g. v5p-128, v5e-256, v5p:2x2x2)"
    m = re.fullmatch(r"(v\d+[a-z]*)(?:-(\d+)|:(\d+(?:x\d+)+))", name.strip().lower())
    gen = ALIASES.get(m.group(1), m.group(1)) if m else None
    if gen not in GENERATIONS:
        raise ValueError(f"unknown TPU topology {name!r}; expected {allowed}")
    g = GENERATIONS[gen]
    if m.group(3):
        dims = tuple(int(d) for d in m.group(3).split("x"))
        if len(dims) != g.ndim:
            raise ValueError(f"{gen} slices have {g.ndim} torus dims, got {name!r}")
        return Topology(name, gen, f"{g.libtpu}:{m.group(3)}", math.prod(dims))
    n = int(m.group(2))
    if n % g.cores_per_name_unit:
        raise ValueError(f"{gen}-N counts TensorCores (2 per chip): N must be even, got {name!r}")
    chips = n // g.cores_per_name_unit
    if chips < 1 or chips & (chips - 1):
        raise ValueError(
            f"{name!r}: {chips} chips is not a power of two; allowed e.g. {gen}-"
            f"{4 * g.cores_per_name_unit}, {gen}-{64 * g.cores_per_name_unit}"
        )
    grid = chip_grid(chips, g.ndim)
    return Topology(name, gen, f"{g.libtpu}:{'x'.join(map(str, grid))}", chips)


def require_libtpu() -> None:
    if importlib.util.find_spec("libtpu") is None:
        raise RuntimeError(
            "emu-video aot needs libtpu to compile for TPU: pip install -e .[tpu]  "
            "(i.e. jax[tpu]; no TPU is needed, the CPU host compiles)"
        )


def topology_devices(topo: Topology) -> list:
    """The slice's TPU devices, described by libtpu (no chips needed)."""
    require_libtpu()
    os.environ.setdefault("TPU_WORKER_HOSTNAMES", "localhost")  # quiets libtpu's host discovery
    # No chip is opened, so a second AOT process (or a running job) need not hold libtpu's lockfile.
    os.environ.setdefault("ALLOW_MULTIPLE_LIBTPU_LOAD", "1")
    from jax.experimental import topologies

    try:
        return list(topologies.get_topology_desc(platform="tpu", topology_name=topo.libtpu_name).devices)
    except Exception as e:  # libtpu's message is long; keep its first line
        raise ValueError(
            f"libtpu rejected topology {topo.libtpu_name!r} (from {topo.name!r}): {str(e).splitlines()[0]}"
        ) from e
