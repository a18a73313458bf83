"""The AOT report of one compiled train step: memory against HBM, FLOPs against the model, roofline.

All quantities are per device. `emu_jax.training.aot` fills it from the compiler's memory and
cost analyses and `emu_jax.models.flops`; this module only derives and formats.
"""

from __future__ import annotations

import dataclasses

GiB = 1024**3


@dataclasses.dataclass
class AotReport:
    topology: str
    devices: int
    mesh: dict
    global_batch: int
    per_device_batch: int
    remat: str
    argument_bytes: int  # per device
    output_bytes: int
    temp_bytes: int
    alias_bytes: int  # donated state: counted in arguments and outputs once
    hbm_bytes: int  # per device
    flops: float  # per device, from the compiled module (cost_analysis; Pallas kernels not included)
    microbatches: int = 1
    compile_seconds: float = 0.0  # lowering + compiling, wall
    host_temp_bytes: int = 0  # residuals offloaded to pinned host memory (remat='offload')
    bytes_accessed: float = 0.0  # per device, cost_analysis' HBM traffic estimate
    model_flops: float = 0.0  # per device, analytic (emu_jax.models.flops; U-Net + text encoders)
    kernel_flops: float = 0.0  # per device, analytic FLOPs of Pallas (splash) attention, not in `flops`
    peak_flops_per_s: float = 0.0  # per device
    hbm_bytes_per_s: float = 0.0  # per device

    @property
    def total_bytes(self) -> int:
        return self.argument_bytes + self.output_bytes + self.temp_bytes - self.alias_bytes

    @property
    def fits(self) -> bool:
        return self.total_bytes <= self.hbm_bytes

    @property
    def compiled_flops(self) -> float:
        """What the chip executes: XLA's count plus the Pallas kernels' analytic FLOPs."""
        return self.flops + self.kernel_flops

    @property
    def flops_ratio(self) -> float:
        """Compiled / model FLOPs: the recompute (remat) and any waste; 1.33 = one extra forward."""
        return self.compiled_flops / self.model_flops if self.model_flops else 0.0

    @property
    def roofline_seconds(self) -> float:
        """Lower bound on the step time: the slower of peak-FLOP/s compute and HBM traffic."""
        if not self.peak_flops_per_s:
            return 0.0
        compute = self.compiled_flops / self.peak_flops_per_s
        return max(compute, self.bytes_accessed / self.hbm_bytes_per_s if self.hbm_bytes_per_s else 0.0)

    @property
    def roofline_mfu(self) -> float:
        """Model FLOP/s utilisation at the roofline step time (an upper bound on MFU)."""
        t = self.roofline_seconds
        return self.model_flops / (t * self.peak_flops_per_s) if t else 0.0

    def summary(self) -> dict:
        return dict(
            dataclasses.asdict(self),
            total_bytes=self.total_bytes,
            fits=self.fits,
            hbm_fraction=self.total_bytes / self.hbm_bytes,
            compiled_flops=self.compiled_flops,
            flops_ratio=self.flops_ratio,
            roofline_seconds=self.roofline_seconds,
            roofline_mfu=self.roofline_mfu,
        )

    def table(self) -> str:
        g = lambda b: f"{b / GiB:.2f} GiB"  # noqa: E731
        rows = [
            ("topology", f"{self.topology} ({self.devices} devices, mesh {self.mesh})"),
            (
                "batch",
                f"{self.global_batch} global, {self.per_device_batch} per device, {self.microbatches} microbatch(es)",
            ),
            ("remat", self.remat),
            ("lower + compile", f"{self.compile_seconds:.0f} s"),
            ("arguments", g(self.argument_bytes)),
            ("outputs", g(self.output_bytes)),
            ("temporaries", g(self.temp_bytes)),
            ("aliased (donated)", g(self.alias_bytes)),
            (
                "total",
                f"{g(self.total_bytes)} of {g(self.hbm_bytes)} HBM "
                f"({100 * self.total_bytes / self.hbm_bytes:.0f}%, {'fits' if self.fits else 'DOES NOT FIT'})",
            ),
            ("host temporaries", f"{g(self.host_temp_bytes)} (offloaded, pinned host memory)"),
            ("FLOPs per step", f"{self.flops:.3e} per device compiled (XLA), {self.flops * self.devices:.3e} total"),
            ("kernel FLOPs", f"{self.kernel_flops:.3e} per device (Pallas attention, analytic)"),
            ("model FLOPs", f"{self.model_flops:.3e} per device (analytic); compiled / model = {self.flops_ratio:.2f}"),
            (
                "roofline",
                f"{self.roofline_seconds:.2f} s per step (compute {self.compiled_flops:.2e} FLOP at "
                f"{self.peak_flops_per_s / 1e12:.0f} TFLOP/s, HBM {self.bytes_accessed / 1e9:.0f} GB at "
                f"{self.hbm_bytes_per_s / 1e9:.0f} GB/s); MFU <= {100 * self.roofline_mfu:.0f}%",
            ),
        ]
        return "\n".join(f"{k:>18}: {v}" for k, v in rows)
