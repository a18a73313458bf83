"""Video file I/O with PyAV: probe, decode at timestamps (seeking), encode H.264 mp4, write GIF.

Sources are either a path or the encoded bytes of a file (what the TFDS
builders store), so the same decode path serves files on disk and records.
"""

from __future__ import annotations

import dataclasses
import io
import os
from typing import Sequence

import av
import numpy as np

Source = str | os.PathLike | bytes


class VideoDecodeError(ValueError):
    """A video could not be opened or decoded (corrupt, truncated, no video stream, unknown codec)."""


@dataclasses.dataclass(frozen=True)
class VideoInfo:
    """What a full decode found: frame count, mean fps, duration (s), size, codec."""

    num_frames: int
    fps: float
    duration: float
    width: int
    height: int
    codec: str


def open_container(src: Source, **kwargs) -> av.container.InputContainer:
    """Opens a path or encoded bytes with PyAV; VideoDecodeError when it is not a readable container."""
    try:
        return av.open(io.BytesIO(src) if isinstance(src, (bytes, bytearray)) else os.fspath(src), **kwargs)
    except (av.error.FFmpegError, UnicodeDecodeError) as e:  # garbage, truncated header, unknown format
        raise VideoDecodeError(f"cannot open video {_name(src)}: {e}") from e


def _name(src: Source) -> str:
    return f"<{len(src)} bytes>" if isinstance(src, (bytes, bytearray)) else os.fspath(src)


def video_stream(container, src: Source):
    """The first video stream; VideoDecodeError when there is none."""
    if not container.streams.video:
        raise VideoDecodeError(f"no video stream in {_name(src)}")
    return container.streams.video[0]


def _frame_time(frame, stream) -> float:
    """Seconds since the stream start (edit lists and non-zero start times removed)."""
    if frame.pts is None:  # some containers leave pts unset; the decoder's best-effort time is next best
        return float(frame.time or 0.0)
    start = stream.start_time or 0
    return float((frame.pts - start) * stream.time_base)


def probe(src: Source, *, decode: bool = True) -> VideoInfo:
    """Returns the video's `VideoInfo`.

    With `decode=True` every frame is decoded (not converted to RGB), so a
    truncated or corrupt file is caught here rather than mid-training: fewer
    decoded frames than the header promises raises `VideoDecodeError`.
    """
    with open_container(src) as container:
        stream = video_stream(container, src)
        stream.thread_type = "AUTO"
        codec = stream.codec_context.name
        if not decode:
            rate = float(stream.average_rate or stream.guessed_rate or 0)
            n = stream.frames or (
                int(round(float(stream.duration * stream.time_base) * rate)) if stream.duration else 0
            )
            return VideoInfo(n, rate, n / rate if rate else 0.0, stream.width, stream.height, codec)
        times = []
        width = height = 0
        try:
            for frame in container.decode(stream):
                times.append(_frame_time(frame, stream))
                width, height = frame.width, frame.height
        except av.error.FFmpegError as e:
            raise VideoDecodeError(f"decode failed in {_name(src)} after {len(times)} frames: {e}") from e
        if not times:
            raise VideoDecodeError(f"no decodable frames in {_name(src)} (codec {codec!r})")
        if stream.frames and len(times) < stream.frames:
            raise VideoDecodeError(f"truncated video {_name(src)}: decoded {len(times)} of {stream.frames} frames")
    n = len(times)
    # Mean frame interval from the timestamps, so variable-rate files get a sensible fps.
    fps = (n - 1) / (times[-1] - times[0]) if n > 1 and times[-1] > times[0] else float(stream.average_rate or 1)
    return VideoInfo(n, float(fps), n / fps, width, height, codec)


def decode_at_times(src: Source, times: Sequence[float], *, seek: bool = True) -> np.ndarray:
    """Decodes the frames nearest to each timestamp (seconds, ascending) -> uint8 (T, H, W, 3).

    With `seek=True` the container seeks to the keyframe before `times[0]` and
    decodes forward only until `times[-1]`, so a short clip from a long video
    costs a GOP plus the clip rather than the whole file. Past the last frame
    the last frame is repeated.
    """
    times = np.asarray(times, np.float64)
    if times.ndim != 1 or len(times) == 0 or np.any(np.diff(times) < 0):
        raise ValueError(f"times must be a non-empty ascending 1-D sequence, got {times}")
    out: list[np.ndarray | None] = [None] * len(times)
    with open_container(src) as container:
        stream = video_stream(container, src)
        stream.thread_type = "AUTO"
        if seek and times[0] > 0:
            start = stream.start_time or 0
            container.seek(int(times[0] / stream.time_base) + start, stream=stream, backward=True, any_frame=False)
        k, prev, prev_t = 0, None, -np.inf
        last = [None, None]  # (frame, RGB): only picked frames are converted, each once (the costly part)

        def pick(f):
            if last[0] is not f:
                last[:] = [f, f.to_ndarray(format="rgb24")]
            return last[1]

        try:
            for frame in container.decode(stream):
                t = _frame_time(frame, stream)
                # Each target takes the nearer of the frames on either side of it.
                while k < len(times) and t >= times[k]:
                    use_prev = prev is not None and (times[k] - prev_t) <= (t - times[k])
                    out[k] = pick(prev if use_prev else frame)
                    k += 1
                if k == len(times):
                    break
                prev, prev_t = frame, t
        except av.error.FFmpegError as e:
            raise VideoDecodeError(f"decode failed in {_name(src)}: {e}") from e
        if prev is None and out[0] is None:
            raise VideoDecodeError(f"no frames decoded from {_name(src)} at times {times[:3]}...")
        for i in range(len(out)):
            if out[i] is None:  # past the end: repeat the last frame
                out[i] = pick(prev) if prev is not None else out[i - 1]
    return np.stack(out)


def decode_all(src: Source) -> np.ndarray:
    """Decodes every frame sequentially -> uint8 (N, H, W, 3); the naive reference path."""
    with open_container(src) as container:
        stream = video_stream(container, src)
        stream.thread_type = "AUTO"
        return np.stack([f.to_ndarray(format="rgb24") for f in container.decode(stream)])


def encode_mp4(
    frames_THWC: np.ndarray,
    fps: float,
    *,
    crf: int = 18,
    preset: str = "medium",
    gop: int | None = None,
    pix_fmt: str = "yuv420p",
) -> bytes:
    """Encodes uint8 (T, H, W, 3) frames as H.264 (libx264) mp4 bytes.

    yuv420p (the default, what every player decodes) needs even sizes; odd heights / widths are padded by
    repeating the last row / column. yuv444p keeps colour at full resolution (High 4:4:4 profile).
    `gop` sets the keyframe interval (default: x264's). The same frames give the same bytes.
    """
    if pix_fmt not in ("yuv420p", "yuv444p"):
        raise ValueError(f"pix_fmt must be 'yuv420p' or 'yuv444p', got {pix_fmt!r}")
    frames = np.asarray(frames_THWC)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise ValueError(f"frames must be uint8 (T, H, W, 3), got {frames.dtype} {frames.shape}")
    if fps <= 0:
        raise ValueError(f"fps must be positive, got {fps}")
    pad_h, pad_w = (frames.shape[1] % 2, frames.shape[2] % 2) if pix_fmt == "yuv420p" else (0, 0)
    if pad_h or pad_w:
        frames = np.pad(frames, ((0, 0), (0, pad_h), (0, pad_w), (0, 0)), mode="edge")
    buf = io.BytesIO()
    with av.open(buf, mode="w", format="mp4") as container:
        from fractions import Fraction

        rate = Fraction(fps).limit_denominator(1001)
        stream = container.add_stream("libx264", rate=rate)
        stream.width, stream.height = frames.shape[2], frames.shape[1]
        stream.pix_fmt = pix_fmt
        # mbtree off: on small frames (32 px) x264's macroblock-tree lookahead made the bitstream differ from
        # run to run for the same frames, so a dataset built twice from one seed differed in its pixels.
        options = {"crf": str(crf), "preset": preset, "x264-params": "mbtree=0"}
        if gop:
            options["g"] = str(gop)
        stream.options = options
        for frame in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return buf.getvalue()


def write_mp4(path: str | os.PathLike, frames_THWC: np.ndarray, fps: float, **kwargs) -> None:
    """Writes `encode_mp4(frames, fps)` to `path`."""
    with open(path, "wb") as f:
        f.write(encode_mp4(frames_THWC, fps, **kwargs))


def write_gif(path: str | os.PathLike, frames_THWC: np.ndarray, fps: float, *, loop: int = 0) -> None:
    """Writes uint8 (T, H, W, 3) frames as an animated GIF (PIL) at `fps`, looping forever by default."""
    from PIL import Image

    frames = np.asarray(frames_THWC)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8 or len(frames) == 0:
        raise ValueError(f"frames must be non-empty uint8 (T, H, W, 3), got {frames.dtype} {frames.shape}")
    images = [Image.fromarray(f) for f in frames]
    images[0].save(
        path, save_all=True, append_images=images[1:], duration=max(1, round(1000 / fps)), loop=loop, optimize=False
    )
