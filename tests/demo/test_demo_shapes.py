"""Moving-shapes generator: deterministic, inside the frame, attributes readable back from pixels."""

import numpy as np
import pytest

from emu_jax.demo import analyse, shapes


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
        found = analyse.analyse_frame(f)
        assert (found["background"], found["color"]) == (attrs.background, attrs.color)
    assert analyse.analyse_video(frames)["direction"] == attrs.direction


def test_static_clip_has_no_direction():
    a = shapes.ShapeAttrs("square", "blue", "white", "up", 0.0, 0.3, 0.5, 0.5)
    frames = shapes.render_clip(a, 4, 16)
    assert np.all(frames == frames[0]) and analyse.analyse_video(frames)["direction"] is None


def test_invalid_attributes_name_the_field():
    with pytest.raises(ValueError, match="color='pink'"):
        shapes.ShapeAttrs("circle", "pink", "black", "left", 0.5, 0.3, 0.9, 0.2)
    with pytest.raises(ValueError, match="start_x"):
        shapes.ShapeAttrs("circle", "red", "black", "left", 0.5, 0.3, 0.1, 0.2)


def test_data_configs_load_with_the_shared_layout():
    from emu_jax.config import load_config

    tiny = load_config("demo/moving_shapes_tiny.py")
    stage2 = load_config("data/video_folder.py:512")
    assert sorted(tiny) == sorted(stage2)
    assert (tiny.resolution, tiny.num_frames, tiny.fps) == (32, 8, 8.0)
    assert (stage2.name, stage2.resolution, stage2.fps) == ("video_text_folder", 512, 4.0)
    with pytest.raises(ValueError, match="stage '1024'"):
        load_config("data/video_folder.py:1024")


def test_free_starts_say_nothing_about_the_direction():
    # The first frame must not stand in for the direction word: per direction, the same start range
    # and the same mean start, while the shape's centre stays in the frame and the motion reads back.
    rng = np.random.default_rng(0)
    draws = [shapes.sample_attributes(rng, speed_range=(0.4, 0.4), start="free") for _ in range(4000)]
    by_dir = {d: np.asarray([(a.start_x, a.start_y) for a in draws if a.direction == d]) for d in shapes.DIRECTIONS}
    means = np.stack([v.mean(axis=0) for v in by_dir.values()])
    assert np.abs(means - 0.5).max() < 0.03, means
    # Default starts give the direction away: a shape moving right starts left of the middle.
    default = [shapes.sample_attributes(np.random.default_rng(i)) for i in range(400)]
    assert np.mean([a.start_x for a in default if a.direction == "right"]) < 0.3
    edge = [a for a in draws if min(a.start_x, a.start_y) < 0.2][:40]  # paths that may leave the frame
    assert edge
    for a in edge:
        frames = shapes.render_clip(a, 8, 32)
        centres = [analyse.analyse_frame(f)["center"] for f in frames]
        assert all(c is not None and 0 <= c[0] < 32 and 0 <= c[1] < 32 for c in centres)
        assert analyse.analyse_video(frames)["direction"] == a.direction


def test_centre_and_fixed_size_starts():
    rng = np.random.default_rng(1)
    draws = [
        shapes.sample_attributes(rng, speed_range=(0.4, 0.4), size_range=(0.3, 0.3), start="centre") for _ in range(50)
    ]
    assert {(a.start_x, a.start_y, a.size, a.speed) for a in draws} == {(0.5, 0.5, 0.3, 0.4)}
    assert len({a.direction for a in draws}) == 8


def test_start_modes_reject_what_they_cannot_draw():
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match="start='middle' is not one of"):
        shapes.sample_attributes(rng, start="middle")
    with pytest.raises(ValueError, match="start='centre' needs speeds <= 0.5"):
        shapes.sample_attributes(rng, start="centre")  # the default speeds cross up to the whole path
    with pytest.raises(ValueError, match="start='free' needs speeds <="):
        shapes.sample_attributes(rng, speed_range=(0.9, 0.9), start="free")
    # Partly out of the frame is allowed, the centre out of it is not.
    shapes.ShapeAttrs("circle", "red", "black", "left", 0.4, 0.3, 0.2, 0.5)  # ends 0.2 past the free path
    with pytest.raises(ValueError, match="start_x=0.05 .* centre out of the frame"):
        shapes.ShapeAttrs("circle", "red", "black", "left", 0.5, 0.3, 0.05, 0.5)


def test_a_look_field_given_as_any_is_drawn():
    rng = np.random.default_rng(2)
    draws = [shapes.sample_attributes(rng, look=("any", "circle", "black")) for _ in range(200)]
    assert {(a.shape, a.background) for a in draws} == {("circle", "black")}
    assert {a.color for a in draws} == set(shapes.COLORS)  # every colour, still at random
    # All three `any` draws as no look does, so the default datasets are unchanged.
    assert shapes.sample_attributes(np.random.default_rng(9), look=("any",) * 3) == shapes.sample_attributes(
        np.random.default_rng(9)
    )
    with pytest.raises(ValueError, match="look colour='purple' is not 'any' or one of"):
        shapes.sample_attributes(rng, look=("purple", "any", "any"))


def test_shipped_word_tokenizer_is_the_caption_vocabulary():
    import warnings

    from emu_jax.models import tokenizers as tk

    tok = tk.load_tokenizer(shapes.tokenizer_dir())
    assert isinstance(tok, tk.WordTokenizer) and tok.vocab_size == len(shapes.VOCABULARY) + 4
    caps = [shapes.caption(shapes.sample_attributes(np.random.default_rng(i))) for i in range(100)]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # every caption word is in the vocabulary
        b = tok(caps, 12)
    assert (b.mask.sum(1) == [len(c.split()) + 2 for c in caps]).all()
    assert [tok.decode(row) for row in b.ids] == caps
    assert b.ids[:, 0].tolist() == [tok.bos_id] * 100 and tok.eos_id == tok.vocab_size - 1  # EOS largest
    # Attribute words get distinct ids; the same word gets the same id wherever it appears.
    attr = [tok.ids[w] for w in (*shapes.COLORS, *shapes.SHAPES, *shapes.DIRECTIONS, *shapes.BACKGROUNDS)]
    assert len(set(attr)) == len(attr)
    with pytest.warns(UserWarning, match=r"become <unk>: \['purple', 'hexagon'\]"):
        u = tok(["A PURPLE hexagon moving left"], 8)
    assert u.ids[0, :6].tolist() == [tok.bos_id, tok.ids["a"], 1, 1, tok.ids["moving"], tok.ids["left"]]
    # The bundled model ships the same vocabulary (its emu_jax.json names the folder).
    from emu_jax.demo.evaluate import default_checkpoint

    for folder in ("tokenizer", "interp/tokenizer"):
        assert tk.load_tokenizer(f"{default_checkpoint()}/{folder}").words == tok.words
