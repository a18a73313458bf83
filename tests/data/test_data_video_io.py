"""PyAV I/O and clip sampling: nearest-timestamp frames at a target fps from 30 and 24 fps sources."""

import numpy as np
import pytest

from emu_jax.data import clips, video_io

BITS = 8


def index_video(num_frames: int, size: int = 32) -> np.ndarray:
    """Frame i shows i in binary as black/white vertical stripes (robust to lossy coding)."""
    frames = np.zeros((num_frames, size, size, 3), np.uint8)
    width = size // BITS
    for i in range(num_frames):
        for b in range(BITS):
            if (i >> b) & 1:
                frames[i, :, b * width : (b + 1) * width] = 255
    return frames


def read_indices(frames: np.ndarray) -> list[int]:
    width = frames.shape[2] // BITS
    row = frames[:, frames.shape[1] // 2].astype(np.float32).mean(-1)
    return [int(sum(1 << b for b in range(BITS) if f[b * width + width // 2] > 127)) for f in row]


@pytest.fixture(scope="module", params=[30, 24])
def source(request):
    fps = request.param
    return fps, video_io.encode_mp4(index_video(3 * fps), fps, gop=12)


def test_probe_reports_frames_and_fps(source):
    fps, data = source
    info = video_io.probe(data)
    assert (info.num_frames, info.width, info.height, info.codec) == (3 * fps, 32, 32, "h264")
    assert info.fps == pytest.approx(fps, rel=1e-3)


def test_decode_all_is_close_to_the_input(source):
    fps, data = source
    frames = video_io.decode_all(data)
    assert frames.shape == (3 * fps, 32, 32, 3)
    assert read_indices(frames) == list(range(3 * fps))


@pytest.mark.parametrize("target_fps,num_frames", [(4.0, 8), (8.0, 8), (8.0, 16)])
def test_clip_has_requested_frames_at_requested_fps(source, target_fps, num_frames):
    src_fps, data = source
    rng = np.random.default_rng(0)
    for _ in range(3):
        times = clips.clip_times(duration=3.0, src_fps=src_fps, num_frames=num_frames, fps=target_fps, rng=rng)
        frames = video_io.decode_at_times(data, times)
        assert frames.shape[0] == num_frames
        got = read_indices(frames)
        expected = [int(np.ceil(t * src_fps - 0.5)) for t in times]  # nearest frame, ties to the earlier
        assert got == expected, (times, got)
        assert got[-1] < 3 * src_fps


def test_seeking_decode_matches_sequential_decode(source):
    fps, data = source
    times = [2.0, 2.25, 2.5]
    seek = video_io.decode_at_times(data, times, seek=True)
    no_seek = video_io.decode_at_times(data, times, seek=False)
    np.testing.assert_array_equal(seek, no_seek)
    assert read_indices(seek) == [int(np.ceil(t * fps - 0.5)) for t in times]


def test_short_source_repeats_last_frame():
    data = video_io.encode_mp4(index_video(6), 30)
    times = clips.clip_times(duration=6 / 30, src_fps=30, num_frames=4, fps=8, rng=np.random.default_rng(1))
    assert times[0] == 0.0
    assert read_indices(video_io.decode_at_times(data, times)) == [0, 4, 5, 5]


def test_resize_center_crop_and_range():
    frames = np.zeros((2, 20, 40, 3), np.uint8)
    frames[:, :, 10:30] = 255  # the centre square of a 2:1 frame is white
    out = clips.resize_center_crop(frames, 10, "box")
    assert out.shape == (2, 10, 10, 3) and out.min() == 255
    x = clips.to_unit_range(out)
    assert x.dtype == np.float32 and x.max() == 1.0
    np.testing.assert_array_equal(clips.from_unit_range(x), out)
    with pytest.raises(ValueError, match="resize method"):
        clips.resize_center_crop(frames, 10, "nearest-ish")


def test_odd_sizes_are_padded_and_gif_written(tmp_path):
    frames = np.random.default_rng(0).integers(0, 255, (3, 9, 11, 3), dtype=np.uint8)
    info = video_io.probe(video_io.encode_mp4(frames, 10))
    assert (info.height, info.width, info.num_frames) == (10, 12, 3)
    video_io.write_gif(tmp_path / "a.gif", frames, fps=10)
    from PIL import Image

    with Image.open(tmp_path / "a.gif") as im:
        assert im.n_frames == 3 and im.size == (11, 9)


def test_garbage_raises_decode_error():
    with pytest.raises(video_io.VideoDecodeError):
        video_io.probe(b"this is not a video" * 10)


def test_encoding_is_deterministic_at_small_sizes():
    # A dataset built twice from one seed must hold the same pixels. Decoding between encodes churns the
    # heap as a dataset build does; with x264's mbtree on, most of 10 repeats of a clip differed.
    from emu_jax.demo import shapes

    rng = np.random.default_rng(0)
    videos = [
        shapes.render_clip(shapes.sample_attributes(rng, speed_range=(0.4, 0.4), start="free"), 40, 32, 16.0)
        for _ in range(3)
    ]
    seen = [set() for _ in videos]
    for _ in range(8):
        for v, out in zip(videos, seen):
            data = video_io.encode_mp4(v, 16.0)
            video_io.decode_all(data)
            out.add(data)
    assert [len(s) for s in seen] == [1, 1, 1]


def test_yuv444p_keeps_colour_at_full_resolution():
    # One-pixel colour detail: 4:2:0 halves chroma resolution and smears it, 4:4:4 keeps it.
    frames = np.full((4, 33, 31, 3), 128, np.uint8)
    frames[:, :, 10] = (255, 0, 0)
    err = {}
    for fmt in ("yuv420p", "yuv444p"):
        out = video_io.decode_all(video_io.encode_mp4(frames, 8.0, crf=0, pix_fmt=fmt))
        err[fmt] = np.abs(out[:, :33, :31].astype(int) - frames).max()
    assert out.shape == frames.shape and err["yuv444p"] < 8 < err["yuv420p"], err
    with pytest.raises(ValueError, match="pix_fmt must be 'yuv420p' or 'yuv444p', got 'rgb24'"):
        video_io.encode_mp4(frames, 8.0, pix_fmt="rgb24")
