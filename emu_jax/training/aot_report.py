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


FIT_FRACTION = 0.9  # a sampling program "fits" at <= 90% of HBM: headroom for the runtime and fragmentation


@dataclasses.dataclass
class SampleProgram:
    """One compiled program of a sampling stage. Its `report` counts what cost_analysis counts: a loop body
    once (a denoising step; a decode chunk), so the batch runs `repeat` times the report's FLOPs / bytes."""

    name: str
    report: AotReport
    repeat: int = 1
    param_bytes: int = 0  # per device, of the params among the arguments (resident across programs)


@dataclasses.dataclass
class SampleReport:
    """Per-device memory and per-video cost of sampling: `stages` maps a stage to its programs."""

    topology: str
    devices: int
    chips: int
    mesh: dict
    per_device_batch: int
    videos_per_batch: int
    steps: int
    mfu: float
    stages: dict[str, list[SampleProgram]]
    resident_param_bytes: int = 0  # per device, every model's params (F and I stay on the chips)
    notes: tuple[str, ...] = ()

    def _programs(self, stage: str | None = None) -> list[SampleProgram]:
        return [p for s, ps in self.stages.items() if stage in (None, s) for p in ps]

    def peak_bytes(self, stage: str | None = None) -> int:
        """Per-device peak of a stage's programs; for the video (None), with every model's params resident."""
        ps = self._programs(stage)
        if stage is not None:
            return max(p.report.total_bytes for p in ps)
        return max(p.report.total_bytes - p.param_bytes for p in ps) + self.resident_param_bytes

    @property
    def hbm_bytes(self) -> int:
        return self._programs()[0].report.hbm_bytes

    @property
    def fits(self) -> bool:
        return self.peak_bytes() <= FIT_FRACTION * self.hbm_bytes

    def _sum(self, stage: str | None, field: str) -> float:
        """Per device, per batch: sum of repeat x the reports' `field`."""
        return sum(p.repeat * getattr(p.report, field) for p in self._programs(stage))

    def per_video(self, stage: str | None = None) -> dict[str, float]:
        """FLOPs and chip-seconds of one video (`stage` or the whole pipeline)."""
        scale = self.devices / self.videos_per_batch  # per-device totals -> per video
        model = self._sum(stage, "model_flops") * scale
        peak_chip = self._programs()[0].report.peak_flops_per_s * self.devices / self.chips
        roof = self._sum(stage, "roofline_seconds") * self.chips / self.videos_per_batch
        return {
            "compiled_flops": self._sum(stage, "compiled_flops") * scale,
            "xla_flops": self._sum(stage, "flops") * scale,
            "model_flops": model,
            "bytes_accessed": self._sum(stage, "bytes_accessed") * scale,
            "chip_seconds_roofline": roof,
            "chip_seconds_at_mfu": model / (self.mfu * peak_chip) if peak_chip else 0.0,
        }

    def chip_hours(self, videos: int = 10_000) -> dict[str, float]:
        v = self.per_video()
        return {
            "roofline": videos * v["chip_seconds_roofline"] / 3600,
            "at_mfu": videos * v["chip_seconds_at_mfu"] / 3600,
        }

    def summary(self) -> dict:
        stages = {
            s: dict(
                peak_bytes=self.peak_bytes(s),
                hbm_fraction=self.peak_bytes(s) / self.hbm_bytes,
                per_video=self.per_video(s),
                programs=[
                    dict(name=p.name, repeat=p.repeat, param_bytes=p.param_bytes, **p.report.summary()) for p in ps
                ],
            )
            for s, ps in self.stages.items()
        }
        head = {k: v for k, v in dataclasses.asdict(self).items() if k != "stages"}
        return dict(
            head,
            program="sample",
            stages=stages,
            peak_bytes=self.peak_bytes(),
            hbm_bytes=self.hbm_bytes,
            hbm_fraction=self.peak_bytes() / self.hbm_bytes,
            fits=self.fits,
            per_video=self.per_video(),
            chip_hours_per_10000_videos=self.chip_hours(),
        )

    def table(self) -> str:
        g = lambda b: f"{b / GiB:6.2f} GiB"  # noqa: E731
        lines = [
            f"{self.topology}: {self.devices} devices, mesh {self.mesh}, {self.per_device_batch} per device "
            f"({self.videos_per_batch} videos per batch), {self.steps} steps per stage",
            f"{'stage / program':<18} {'repeat':>6} {'arguments':>11} {'temporaries':>11} {'total':>11} "
            f"{'XLA FLOP':>9} {'model FLOP':>10} {'roofline s':>10}",
        ]
        for s, ps in self.stages.items():
            for p in ps:
                r = p.report
                lines.append(
                    f"{s + '/' + p.name:<18} {p.repeat:>6} {g(r.argument_bytes)} {g(r.temp_bytes)} "
                    f"{g(r.total_bytes)} {r.flops:9.2e} {r.model_flops:10.2e} {r.roofline_seconds:10.4f}"
                )
        lines.append("per video (FLOPs over the slice; chip-seconds = slice seconds x chips):")
        for s in list(self.stages) + [None]:
            v, peak = self.per_video(s), self.peak_bytes(s)
            lines.append(
                f"  {s or 'whole video':<12} peak {g(peak)} ({100 * peak / self.hbm_bytes:3.0f}% HBM)"
                f"  compiled {v['compiled_flops']:.3e}  model {v['model_flops']:.3e} FLOP  "
                f"roofline {v['chip_seconds_roofline']:.2f} chip-s  at {100 * self.mfu:.0f}% MFU "
                f"{v['chip_seconds_at_mfu']:.2f} chip-s"
            )
        h = self.chip_hours()
        lines.append(
            f"fits ({100 * FIT_FRACTION:.0f}% of {g(self.hbm_bytes).strip()}): {'yes' if self.fits else 'NO'}; "
            f"chip-hours per 10,000 videos: {h['roofline']:.1f} at the roofline, {h['at_mfu']:.1f} at "
            f"{100 * self.mfu:.0f}% MFU"
        )
        lines += [f"note: {n}" for n in self.notes]
        return "\n".join(lines)
