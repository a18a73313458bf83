"""Clip decoding throughput: seek + decode only the clip (our pipeline) vs decoding whole files (naive).

Source videos are made here with the moving-shapes generator (default 10 s,
256 px, 30 fps, H.264). Each trial takes an 8-frame clip at 8 fps from a
uniformly random start. The naive reference decodes every frame of the file
with PyAV and then picks the nearest frames (imageio / OpenCV are not
installed; a whole-file PyAV decode is what they would do too). Both paths
then crop and normalise identically. Throughput is reported per wall second
and per CPU second of this process ("per core"), side by side, with the ratio.

  JAX_PLATFORMS=cpu python benchmarks/bench_data.py [--videos 4 --clips 24 --gops 250,30]

`--pipeline` instead measures the data-preparation steps on `--videos`
generated videos (use 200+): the per-video cost of probe (full decode),
motion score (motion-vector decode) and clip decode + stand-in encode (the
host side of cache-latents), then the wall time of `data build` and
`select-hq` serially and on the Beam DirectRunner with 1 and 2 worker
processes, interleaved over `--rounds`, with the load average printed
before each run (the machine is shared).

  JAX_PLATFORMS=cpu python benchmarks/bench_data.py --pipeline --videos 200 --rounds 2
  (--rounds 0: the per-video costs only)
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

import numpy as np

from emu_jax.data import clips, video_io
from emu_jax.demo import shapes


def make_sources(n: int, size: int, seconds: float, fps: int, gop: int) -> list[bytes]:
    rng = np.random.default_rng(0)
    out = []
    for _ in range(n):
        attrs = shapes.sample_attributes(rng)
        out.append(
            video_io.encode_mp4(
                shapes.render_clip(attrs, int(seconds * fps), size, fps), fps, gop=gop, preset="veryfast"
            )
        )
    return out


def naive_clip(data: bytes, times: np.ndarray, src_fps: float, resolution: int) -> np.ndarray:
    frames = video_io.decode_all(data)
    idx = np.minimum(np.ceil(times * src_fps - 0.5).astype(int), len(frames) - 1)
    return clips.to_unit_range(clips.resize_center_crop(frames[idx], resolution))


def seek_clip(data: bytes, times: np.ndarray, src_fps: float, resolution: int) -> np.ndarray:
    del src_fps
    return clips.to_unit_range(clips.resize_center_crop(video_io.decode_at_times(data, times), resolution))


def measure(fn, sources, trials, src_fps, n_src_frames, resolution, num_frames, fps) -> tuple[float, float]:
    """Returns (clips per wall second, clips per CPU second)."""
    rng = np.random.default_rng(1)
    jobs = [
        (
            sources[i % len(sources)],
            clips.clip_times(duration=n_src_frames / src_fps, src_fps=src_fps, num_frames=num_frames, fps=fps, rng=rng),
        )
        for i in range(trials)
    ]
    wall, cpu = time.perf_counter(), time.process_time()
    for data, times in jobs:
        out = fn(data, times, src_fps, resolution)
        assert out.shape == (num_frames, resolution, resolution, 3)
    return trials / (time.perf_counter() - wall), trials / (time.process_time() - cpu)


def measure_loader(sources, src_fps, n_src_frames, resolution, num_frames, fps, batches) -> tuple[float, float]:
    """End to end: video_text_folder build (ArrayRecord) + grain loader (in-process, 1 read thread), batch 4."""
    import ml_collections

    from emu_jax.data import builders, pipeline

    del n_src_frames  # the builder probes the files itself
    with tempfile.TemporaryDirectory() as d:
        os.makedirs(os.path.join(d, "videos"))
        for i, data in enumerate(sources):
            with open(os.path.join(d, "videos", f"{i}.mp4"), "wb") as f:
                f.write(data)
        with open(os.path.join(d, "captions.csv"), "w") as f:
            f.write("path,caption\n" + "".join(f"{i}.mp4,bench\n" for i in range(len(sources))))
        builders.prepare(
            builders.VideoTextFolder(
                videos_dir=os.path.join(d, "videos"),
                captions_file=os.path.join(d, "captions.csv"),
                data_dir=os.path.join(d, "tfds"),
            )
        )
        cfg = ml_collections.ConfigDict(
            dict(
                name="video_text_folder",
                data_dir=os.path.join(d, "tfds"),
                resolution=resolution,
                num_frames=num_frames,
                fps=float(fps),
                text_max_length=16,
                read_threads=1,
                worker_count=0,
            )
        )
        batch = min(4, len(sources))
        loader = pipeline.make_loader(cfg, split="train", seed=0, shard_index=0, shard_count=1, batch_size=batch)
        next(loader)  # warm-up
        wall, cpu = time.perf_counter(), time.process_time()
        for _ in range(batches):
            next(loader)
        return batches * batch / (time.perf_counter() - wall), batches * batch / (time.process_time() - cpu)


UNIQUE_VIDEOS = 20


def _write_folder(root: str, n: int, size: int, seconds: float, fps: int) -> tuple[str, str]:
    rng = np.random.default_rng(0)
    videos = os.path.join(root, "videos")
    os.makedirs(videos)
    rows, unique = [], []
    for i in range(n):
        if len(unique) < UNIQUE_VIDEOS:  # later files repeat these: same per-file work, far less set-up time
            attrs = shapes.sample_attributes(rng)
            unique.append(
                (
                    video_io.encode_mp4(
                        shapes.render_clip(attrs, int(seconds * fps), size, fps), fps, preset="veryfast"
                    ),
                    shapes.caption(attrs),
                )
            )
        data, text = unique[i % len(unique)]
        with open(os.path.join(videos, f"v{i:05d}.mp4"), "wb") as f:
            f.write(data)
        rows.append(f'v{i:05d}.mp4,"{text}"\n')
    captions = os.path.join(root, "captions.csv")
    with open(captions, "w") as f:
        f.write("path,caption\n" + "".join(rows))
    return videos, captions


def _per_video_costs(videos: str, data_dir: str, size: int) -> dict:
    """Seconds of CPU per video for each step over the distinct videos, serially in this process (median of 3
    passes)."""
    import jax
    import ml_collections

    from emu_jax.data import cli, motion, pipeline

    paths = sorted(os.path.join(videos, f) for f in os.listdir(videos))[:UNIQUE_VIDEOS]  # the distinct ones
    blobs = [open(p, "rb").read() for p in paths]
    cfg = ml_collections.ConfigDict(
        dict(name="video_text_folder", data_dir=data_dir, resolution=size, num_frames=8, fps=8.0, text_max_length=64)
    )
    source = pipeline.open_source("video_text_folder", data_dir, "train")
    prep = pipeline.preprocessor(cfg, seed=0, epoch_length=len(source))
    encode = jax.jit(cli.pool_encoder(8))
    encode(np.zeros((1, 8, size, size, 3), np.float32)).block_until_ready()  # compile outside the timing

    def clip_and_encode(i):
        encode(prep(i, source[i])["video"][None]).block_until_ready()

    steps = {
        "probe (full decode)": lambda i: video_io.probe(paths[i]),
        "motion score": lambda i: motion.motion_score(blobs[i]),
        "clip decode + pool encode": clip_and_encode,
    }
    out = {}
    for name, fn in steps.items():
        passes = []
        for _ in range(3):
            cpu = time.process_time()
            for i in range(len(paths)):
                fn(i)
            passes.append((time.process_time() - cpu) / len(paths))
        out[name] = float(np.median(passes))
    return out


def _timed(label: str, argv: list[str]) -> float:
    """Wall seconds of one `emu-video data ...` in a fresh process (so Beam workers start as a user's would)."""
    import subprocess
    import sys

    load = os.getloadavg()[0]
    t0 = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "emu_jax.cli", "data", *argv],
        check=True,
        capture_output=True,
        env=dict(os.environ, JAX_PLATFORMS="cpu"),
    )
    wall = time.perf_counter() - t0
    print(f"  {label:<28} {wall:8.1f} s   (load average before: {load:.1f})", flush=True)
    return wall


def bench_pipeline(n: int, size: int, seconds: float, fps: int, rounds: int) -> None:
    import shutil

    runs = {
        "serial": [],
        "beam 1 worker": ["--beam-options=--direct_num_workers=1"],
        "beam 2 workers": ["--beam-options=--direct_num_workers=2"],
    }
    with tempfile.TemporaryDirectory() as d:
        t0 = time.perf_counter()
        videos, captions = _write_folder(d, n, size, seconds, fps)
        print(
            f"{n} videos ({min(n, UNIQUE_VIDEOS)} distinct), {size}px, {seconds:g} s at {fps} fps (H.264), "
            f"made in {time.perf_counter() - t0:.0f} s; "
            f"cores visible: {os.cpu_count()}; load average: {os.getloadavg()[0]:.1f}"
        )
        walls = {("build", k): [] for k in runs} | {("select-hq", k): [] for k in runs}
        ref = os.path.join(d, "ref")
        if not rounds:  # costs only: one serial build to read clips from
            _timed(
                "build serial",
                ["build", "video_text_folder", "--videos", videos, "--captions", captions, "--data-dir", ref],
            )
        for r in range(rounds):
            print(f"round {r + 1}/{rounds}")
            for name, extra in runs.items():  # interleaved, so drifting load hits every variant alike
                out = os.path.join(d, "tfds")
                shutil.rmtree(out, ignore_errors=True)
                walls[("build", name)].append(
                    _timed(
                        f"build {name}",
                        [
                            "build",
                            "video_text_folder",
                            "--videos",
                            videos,
                            "--captions",
                            captions,
                            "--data-dir",
                            out,
                            *extra,
                        ],
                    )
                )
                if not os.path.isdir(ref):
                    shutil.copytree(out, ref)
                walls[("select-hq", name)].append(
                    _timed(
                        f"select-hq {name}",
                        ["select-hq", "--data-dir", ref, "--out", os.path.join(d, "hq.json"), *extra],
                    )
                )
        costs = _per_video_costs(videos, ref, size)
    print("\nper-video CPU cost, serial, this process (median of 3 passes):")
    for name, sec in costs.items():
        print(f"  {name:<28} {sec * 1e3:8.1f} ms")
    print("\nwall time, median over rounds (speed-up vs serial):")
    for step in ("build", "select-hq") if rounds else ():
        base = float(np.median(walls[(step, "serial")]))
        for name in runs:
            w = float(np.median(walls[(step, name)]))
            print(f"  {step:<10} {name:<16} {w:8.1f} s  {base / w:5.2f}x  ({n / w:.1f} videos/s)")


def vae_encode_flops(size: int, frames: int) -> float:
    """FLOPs per frame of the Emu VAE encoder (configs/models/vae_emu.py) at `size` px, from XLA's cost analysis
    of the lowered `encode_video` on abstract shapes (nothing runs; the accelerator time is then a projection)."""
    import jax
    import jax.numpy as jnp

    from emu_jax.config import load_config
    from emu_jax.models import autoencoder, vae_video

    cfg = autoencoder.VAEConfig(**load_config("configs/models/vae_emu.py").to_dict())
    params = jax.eval_shape(lambda: autoencoder.init_params(cfg, jax.random.PRNGKey(0), image_size=64))
    x = jax.ShapeDtypeStruct((1, frames, size, size, 3), jnp.float32)
    cost = jax.jit(lambda p, v: vae_video.encode_video(cfg, p, v, chunk=frames)).lower(params, x).cost_analysis()
    return float((cost if isinstance(cost, dict) else cost[0])["flops"]) / frames


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--videos", type=int, default=4)
    p.add_argument("--clips", type=int, default=24, help="clips per measured path")
    p.add_argument("--size", type=int, default=256)
    p.add_argument("--seconds", type=float, default=10.0)
    p.add_argument("--src-fps", type=int, default=30)
    p.add_argument("--num-frames", type=int, default=8)
    p.add_argument("--fps", type=float, default=8.0)
    p.add_argument("--gops", default="250,30", help="keyframe intervals to compare (x264 default 250)")
    p.add_argument("--pipeline", action="store_true", help="measure build / select-hq / encode steps instead")
    p.add_argument("--rounds", type=int, default=2, help="interleaved rounds of the --pipeline runs")
    p.add_argument(
        "--vae-flops",
        type=int,
        metavar="SIZE",
        help="print the Emu VAE encoder's FLOPs per frame at SIZE px (XLA cost analysis) and exit",
    )
    a = p.parse_args()
    if a.vae_flops:
        print(f"Emu VAE encoder at {a.vae_flops}px: {vae_encode_flops(a.vae_flops, 8) / 1e12:.3f} TFLOP per frame")
        return
    if a.pipeline:
        bench_pipeline(a.videos, a.size, a.seconds, a.src_fps, a.rounds)
        return
    n_src = int(a.seconds * a.src_fps)
    print(
        f"clips: {a.num_frames} frames at {a.fps} fps, {a.size}px, from {a.seconds:g} s {a.src_fps} fps H.264 "
        f"sources; {a.clips} clips per path; cores visible: {os.cpu_count()}"
    )
    print(f"{'gop':>5} {'path':<28} {'clips/s wall':>12} {'clips/s/core':>12}")
    for gop in (int(g) for g in a.gops.split(",")):
        t0 = time.perf_counter()
        sources = make_sources(a.videos, a.size, a.seconds, a.src_fps, gop)
        print(f"  (made {a.videos} sources, gop {gop}, in {time.perf_counter() - t0:.1f} s)")
        args = (a.src_fps, n_src, a.size, a.num_frames, a.fps)
        naive = measure(naive_clip, sources, max(4, a.clips // 4), *args)
        seek = measure(seek_clip, sources, a.clips, *args)
        loader = measure_loader(sources, *args, batches=max(1, a.clips // 4))
        for name, (w, c) in (
            ("naive whole-file decode", naive),
            ("seek + clip decode", seek),
            ("grain loader (seek)", loader),
        ):
            print(f"{gop:>5} {name:<28} {w:>12.2f} {c:>12.2f}")
        print(
            f"{gop:>5} ratio seek / naive: {seek[0] / naive[0]:.1f}x wall, {seek[1] / naive[1]:.1f}x per core; "
            f"loader / naive: {loader[0] / naive[0]:.1f}x wall, {loader[1] / naive[1]:.1f}x per core"
        )


if __name__ == "__main__":
    main()
