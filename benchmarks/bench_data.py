"""Clip decoding throughput: seek + decode only the clip (our pipeline) vs decoding whole files (naive).

Source videos are made here with the moving-shapes generator (default 10 s,
256 px, 30 fps, H.264). Each trial takes an 8-frame clip at 8 fps from a
uniformly random start. The naive reference decodes every frame of the file
with PyAV and then picks the nearest frames (imageio / OpenCV are not
installed; a whole-file PyAV decode is what they would do too). Both paths
then crop and normalise identically. Throughput is reported per wall second
and per CPU second of this process ("per core"), side by side, with the ratio.

  JAX_PLATFORMS=cpu python benchmarks/bench_data.py [--videos 4 --clips 24 --gops 250,30]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

import numpy as np

from emu_jax.data import clips, shapes, video_io


def make_sources(n: int, size: int, seconds: float, fps: int, gop: int) -> list[bytes]:
    rng = np.random.default_rng(0)
    out = []
    for _ in range(n):
        attrs = shapes.sample_attributes(rng)
        out.append(video_io.encode_mp4(shapes.render_clip(attrs, int(seconds * fps), size, fps), fps, gop=gop,
                                       preset="veryfast"))
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
    jobs = [(sources[i % len(sources)], clips.clip_times(duration=n_src_frames / src_fps, src_fps=src_fps,
                                                         num_frames=num_frames, fps=fps, rng=rng))
            for i in range(trials)]
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
        builders.prepare(builders.VideoTextFolder(videos_dir=os.path.join(d, "videos"),
                                                  captions_file=os.path.join(d, "captions.csv"),
                                                  data_dir=os.path.join(d, "tfds")))
        cfg = ml_collections.ConfigDict(dict(name="video_text_folder", data_dir=os.path.join(d, "tfds"),
                                             resolution=resolution, num_frames=num_frames, fps=float(fps),
                                             text_max_length=16, read_threads=1, worker_count=0))
        batch = min(4, len(sources))
        loader = pipeline.make_loader(cfg, split="train", seed=0, shard_index=0, shard_count=1, batch_size=batch)
        next(loader)  # warm-up
        wall, cpu = time.perf_counter(), time.process_time()
        for _ in range(batches):
            next(loader)
        return batches * batch / (time.perf_counter() - wall), batches * batch / (time.process_time() - cpu)


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
    a = p.parse_args()
    n_src = int(a.seconds * a.src_fps)
    print(f"clips: {a.num_frames} frames at {a.fps} fps, {a.size}px, from {a.seconds:g} s {a.src_fps} fps H.264 "
          f"sources; {a.clips} clips per path; cores visible: {os.cpu_count()}")
    print(f"{'gop':>5} {'path':<28} {'clips/s wall':>12} {'clips/s/core':>12}")
    for gop in (int(g) for g in a.gops.split(",")):
        t0 = time.perf_counter()
        sources = make_sources(a.videos, a.size, a.seconds, a.src_fps, gop)
        print(f"  (made {a.videos} sources, gop {gop}, in {time.perf_counter() - t0:.1f} s)")
        args = (a.src_fps, n_src, a.size, a.num_frames, a.fps)
        naive = measure(naive_clip, sources, max(4, a.clips // 4), *args)
        seek = measure(seek_clip, sources, a.clips, *args)
        loader = measure_loader(sources, *args, batches=max(1, a.clips // 4))
        for name, (w, c) in (("naive whole-file decode", naive), ("seek + clip decode", seek),
                             ("grain loader (seek)", loader)):
            print(f"{gop:>5} {name:<28} {w:>12.2f} {c:>12.2f}")
        print(f"{gop:>5} ratio seek / naive: {seek[0] / naive[0]:.1f}x wall, {seek[1] / naive[1]:.1f}x per core; "
              f"loader / naive: {loader[0] / naive[0]:.1f}x wall, {loader[1] / naive[1]:.1f}x per core")


if __name__ == "__main__":
    main()
