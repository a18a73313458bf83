"""Moving-shapes generator: deterministic, inside the frame, attributes readable back from pixels."""

import numpy as np
import pytest

from emu_jax.data import shapes


def test_same_rng_same_attributes_and_frames():
    a = shapes.sample_attributes(np.random.default_rng([3, 0, 7]))
    b = shapes.sample_attributes(np.random.default_rng([3, 0, 7]))
    assert a == b
    np.testing.assert_array_equal(shapes.render_clip(a, 6, 16, 8), shapes.render_clip(b, 6, 16, 8))
    assert a != shapes.sample_attributes(np.random.default_rng([3, 0, 8]))


def test_caption_grammar():
    a = shapes.ShapeAttrs("circle", "red", "black", "left", 0.5, 0.3, 0.9, 0.2)
    assert shapes.caption(a) == "a red circle moving left on a black background"


@pytest.mark.parametrize("seed", range(12))
def test_shape_stays_inside_and_attributes_read_back(seed):
    attrs = shapes.sample_attributes(np.random.default_rng(seed))
    frames = shapes.render_clip(attrs, 8, 32, 8)
    assert frames.shape == (8, 32, 32, 3) and frames.dtype == np.uint8
    bg = np.asarray(shapes.BACKGROUNDS[attrs.background])
    for f in frames:  # The border stays background: the whole shape is inside the frame.
        border = np.concatenate([f[0], f[-1], f[:, 0], f[:, -1]])
        assert np.abs(border.astype(int) - bg).max() <= 1
        found = shapes.analyse_frame(f)
        assert (found["background"], found["color"]) == (attrs.background, attrs.color)
    assert shapes.analyse_direction(frames) == attrs.direction


def test_static_clip_has_no_direction():
    a = shapes.ShapeAttrs("square", "blue", "white", "up", 0.0, 0.3, 0.5, 0.5)
    frames = shapes.render_clip(a, 4, 16)
    assert np.all(frames == frames[0]) and shapes.analyse_direction(frames) is None


def test_invalid_attributes_name_the_field():
    with pytest.raises(ValueError, match="color='pink'"):
        shapes.ShapeAttrs("circle", "pink", "black", "left", 0.5, 0.3, 0.9, 0.2)
    with pytest.raises(ValueError, match="start_x"):
        shapes.ShapeAttrs("circle", "red", "black", "left", 0.5, 0.3, 0.1, 0.2)


def test_data_configs_load_with_the_shared_layout():
    from emu_jax.config import load_config

    tiny = load_config("data/moving_shapes_tiny.py")
    stage2 = load_config("data/video_folder.py:512")
    assert sorted(tiny) == sorted(stage2)
    assert (tiny.resolution, tiny.num_frames, tiny.fps) == (32, 8, 8.0)
    assert (stage2.name, stage2.resolution, stage2.fps) == ("video_text_folder", 512, 4.0)
    with pytest.raises(ValueError, match="stage '1024'"):
        load_config("data/video_folder.py:1024")
