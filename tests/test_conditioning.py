"""Conditioning channels: image padding + mask, interpolation slots, noise augmentation."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from emu_jax import conditioning as C


def test_image_condition_layout():
    img = jax.random.normal(jax.random.key(0), (2, 4, 4, 3))
    cond = C.image_condition(img, 5)
    assert cond.shape == (2, 5, 4, 4, 4)
    np.testing.assert_array_equal(cond[:, 0, ..., :3], img)
    assert float(jnp.abs(cond[:, 1:, ..., :3]).max()) == 0.0
    np.testing.assert_array_equal(cond[0, :, 0, 0, 3], [1, 0, 0, 0, 0])


def test_image_condition_bad_shape():
    with pytest.raises(ValueError, match=r"\(2, 3, 4, 4, 3\)"):
        C.image_condition(jnp.zeros((2, 3, 4, 4, 3)), 5)


def test_drop_condition_zeroes_only_dropped():
    cond = jnp.ones((3, 2, 2, 2, 4))
    out = C.drop_condition(cond, jnp.array([True, False, True]))
    assert float(out[1].sum()) == 0 and float(out[0].sum()) == cond[0].size


def test_default_slot_layout():
    lay = C.SlotLayout()
    assert lay.num_slots == 37
    assert lay.given_slots.tolist() == list(range(4, 33, 4))
    assert np.flatnonzero(lay.mask()).tolist() == list(range(4, 33, 4))


def test_interleave_and_given_frames_roundtrip():
    lay = C.SlotLayout()
    frames = jnp.arange(1, 9, dtype=jnp.float32)[None, :, None, None, None] * jnp.ones((1, 8, 2, 2, 3))
    cond = C.interpolation_condition(frames, lay)
    assert cond.shape == (1, 37, 2, 2, 4)
    expected = np.zeros(37)
    expected[4:33:4] = np.arange(1, 9)
    np.testing.assert_array_equal(cond[0, :, 0, 0, 0], expected)
    np.testing.assert_array_equal(cond[0, :, 0, 0, 3], lay.mask())
    np.testing.assert_array_equal(C.given_frames(cond[..., :3], lay), frames)


def test_bad_frame_count_is_clear():
    with pytest.raises(ValueError, match=r"takes 8 given frames .*got 7"):
        C.interpolation_condition(jnp.zeros((1, 7, 2, 2, 3)), C.SlotLayout())
    with pytest.raises(ValueError, match="num_given >= 2"):
        C.SlotLayout(num_given=1)


def test_other_factor():
    lay = C.SlotLayout(num_given=4, factor=2, pad=1)
    assert lay.num_slots == 9 and lay.given_slots.tolist() == [1, 3, 5, 7]


def test_stitch_16_to_65_keeps_each_given_frame_once_in_order():
    lay = C.SlotLayout()
    video = jnp.arange(16, dtype=jnp.float32) + 1.0  # frame k has value k+1
    halves = [C.interleave(video[None, 8 * h : 8 * h + 8, None, None, None], lay) for h in range(2)]
    out = C.stitch_halves(*halves, lay)[0, :, 0, 0, 0]
    assert out.shape == (65,)
    given = np.asarray(out)[np.asarray(out) > 0]
    np.testing.assert_array_equal(given, np.arange(1, 17))  # once each, in order
    pos = C.stitched_given_positions(lay)
    np.testing.assert_array_equal(np.asarray(out)[pos], np.arange(1, 17))
    assert np.all(np.diff(pos) == 4)  # uniform 16 fps spacing across the seam


def test_noise_augment_level_zero_is_identity_and_levels_grow():
    ac = jnp.cumprod(1 - jnp.linspace(1e-3, 2e-2, 1000))
    x = jax.random.normal(jax.random.key(0), (3, 2, 4, 4, 2))
    out = C.noise_augment(x, jnp.array([0, 100, 900]), ac, jax.random.key(1))
    np.testing.assert_array_equal(out[0], x[0])
    err = [float(jnp.abs(out[i] - x[i]).mean()) for i in range(3)]
    assert 0 < err[1] < err[2]
    np.testing.assert_allclose(C.augmentation_alpha_bar(ac, jnp.array([0, 1, 100])), [1.0, ac[0], ac[99]])
