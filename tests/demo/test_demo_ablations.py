"""The ablation harness's in-memory loader: the recipe's clip timing, tokens and batch keys."""

import ml_collections
import numpy as np
import pytest

from emu_jax.demo import ablations, analyse, shapes
from emu_jax.models.tokenizers import load_tokenizer


def test_in_memory_loader_serves_ordered_clips_of_the_train_split():
    frames, captions = ablations.render_split(8, resolution=32, num_frames=40)
    assert frames.shape == (8, 40, 32, 32, 3) and frames.dtype == np.uint8
    first = shapes.sample_attributes(np.random.default_rng([0, 0, 0]))  # MovingShapes' train example 0
    assert captions[0] == shapes.caption(first)
    np.testing.assert_array_equal(frames[0], shapes.render_clip(first, 40, 32))

    tok = load_tokenizer(shapes.tokenizer_dir())
    cfg = ml_collections.ConfigDict(dict(num_frames=8, fps=4.0, text_max_length=16))
    it = ablations.in_memory_loader(frames, captions, src_fps=16.0)(
        cfg, split="train", seed=3, tokenizer=tok, batch_size=4
    )
    batch = next(it)
    assert batch["video"].shape == (4, 8, 32, 32, 3) and batch["video"].dtype == np.float32
    assert batch["video"].min() >= -1.0 and batch["video"].max() <= 1.0
    assert batch["text_ids"].shape == batch["text_mask"].shape == (4, 16)
    for video, caption, ids in zip(batch["video"], batch["caption"], batch["text_ids"]):
        caption = caption.decode() if isinstance(caption, bytes) else str(caption)
        assert tok.decode(ids) == caption
        reading = analyse.analyse_video(((video + 1.0) * 127.5).round().astype(np.uint8))
        assert caption.split(" moving ")[1].split(" ")[0] == reading["direction"]  # frames in time order
    state = it.get_state()  # checkpointable like the real pipeline
    nxt = next(it)
    it.set_state(state)
    np.testing.assert_array_equal(next(it)["video"], nxt["video"])


def test_run_arm_names_bad_arms_and_missing_vae(tmp_path):
    with pytest.raises(ValueError, match="unknown arm 'f_x'"):
        ablations.run_arm(tmp_path, "f_x", tmp_path / "out")
    with pytest.raises(FileNotFoundError, match="latent_scale.json is missing"):
        ablations.run_arm(tmp_path, "t2i_v", tmp_path / "out")
