"""Grain pipeline: deterministic order, disjoint complete shards, exact resume through Orbax."""

import itertools

import ml_collections
import numpy as np
import pytest

from emu_jax.data import builders, pipeline, video_io
from emu_jax.demo import analyse, shapes
from emu_jax.demo.dataset import MovingShapes

NUM_TRAIN = 26


@pytest.fixture(scope="module")
def cfg(tmp_path_factory):
    data_dir = str(tmp_path_factory.mktemp("tfds"))
    builders.prepare(
        MovingShapes(resolution=16, num_frames=8, fps=8, num_train=NUM_TRAIN, num_test=4, data_dir=data_dir)
    )
    return ml_collections.ConfigDict(
        dict(
            name="moving_shapes",
            data_dir=data_dir,
            resolution=16,
            num_frames=4,
            fps=4.0,
            clip_seconds=None,
            resize_method="bicubic",
            worker_count=0,
            read_threads=1,
            prefetch_batches=2,
            text_max_length=80,
            subset_file="",
        )
    )


def keys(loader, n):
    return [list(b["key"]) for b in itertools.islice(loader, n)]


def test_batch_layout(cfg):
    batch = next(pipeline.make_loader(cfg, split="train", seed=0, shard_index=0, shard_count=1, batch_size=3))
    assert batch["video"].shape == (3, 4, 16, 16, 3) and batch["video"].dtype == np.float32
    assert -1.0 <= batch["video"].min() and batch["video"].max() <= 1.0
    assert batch["text_ids"].shape == (3, 80) and batch["text_ids"].dtype == np.int32
    assert batch["text_mask"].dtype == bool
    for i in range(3):
        caption = batch["caption"][i]
        assert batch["text_mask"][i].sum() == len(caption.encode()) + 2  # bos + bytes + eos
        attrs = shapes.ShapeAttrs.from_dict({k: v[i] for k, v in batch.items() if k not in pipeline.EXAMPLE_FIELDS})
        assert shapes.caption(attrs) == caption
        frame = np.asarray(np.round((batch["video"][i, 0] + 1) * 127.5), np.uint8)
        assert analyse.analyse_frame(frame)["background"] == attrs.background


def test_text_false_leaves_captions_untokenised(cfg, recwarn):
    """The autoencoder's loader: same clips, no token ids, and no truncation warning for long captions."""
    short = cfg.copy_and_resolve_references()
    short.text_max_length = 4  # every caption is longer: tokenising would warn for each one
    kw = dict(split="train", seed=0, shard_index=0, shard_count=1, batch_size=3)
    plain = next(pipeline.make_loader(short, text=False, **kw))
    assert "text_ids" not in plain and "text_mask" not in plain and len(plain["caption"]) == 3
    assert not [w for w in recwarn if "truncated" in str(w.message)]
    next(pipeline.make_loader(short, **kw))
    assert [w for w in recwarn if "truncated" in str(w.message)]  # the warning text=False avoids
    with_text = next(pipeline.make_loader(cfg, **kw))
    np.testing.assert_array_equal(plain["video"], with_text["video"])
    assert list(plain["key"]) == list(with_text["key"])


def test_same_seed_same_order_other_seed_other_order(cfg):
    kw = dict(split="train", shard_index=0, shard_count=1, batch_size=4)
    a = keys(pipeline.make_loader(cfg, seed=1, **kw), 6)
    b = keys(pipeline.make_loader(cfg, seed=1, **kw), 6)
    c = keys(pipeline.make_loader(cfg, seed=2, **kw), 6)
    assert a == b and a != c
    first_epoch = sum(a, [])
    assert len(set(first_epoch)) == 24  # 6 batches of 4 from 26 examples, no repeats within the epoch


def test_clip_placement_changes_with_epoch_not_with_rebuild(cfg):
    kw = dict(split="train", seed=3, shard_index=0, shard_count=1, batch_size=NUM_TRAIN, shuffle=False)
    a = list(itertools.islice(pipeline.make_loader(cfg, **kw), 2))
    b = next(pipeline.make_loader(cfg, **kw))
    np.testing.assert_array_equal(a[0]["video"], b["video"])
    assert list(a[0]["key"]) == list(a[1]["key"])  # no shuffle: same order each epoch
    assert not np.array_equal(a[0]["video"], a[1]["video"])  # ...but new clip starts


@pytest.mark.parametrize("count", [2, 4])
def test_shards_disjoint_and_complete(cfg, count):
    seen = []
    for index in range(count):
        loader = pipeline.make_loader(
            cfg, split="train", seed=5, shard_index=index, shard_count=count, batch_size=1, num_epochs=1
        )
        seen.append([k for batch in loader for k in batch["key"]])
    flat = sum(seen, [])
    assert len(flat) == len(set(flat)) == NUM_TRAIN - NUM_TRAIN % count
    assert all(len(s) == NUM_TRAIN // count for s in seen)


def test_finite_epochs_stop(cfg):
    loader = pipeline.make_loader(cfg, split="test", seed=0, shard_index=0, shard_count=1, batch_size=2, num_epochs=2)
    assert len(list(loader)) == 4 and loader.epoch == 2


def _checkpoint_roundtrip(loader, directory, fresh):
    import orbax.checkpoint as ocp

    with ocp.CheckpointManager(directory) as manager:
        manager.save(1, args=ocp.args.Composite(data=pipeline.iterator_checkpoint_args(loader)))
        manager.wait_until_finished()
    with ocp.CheckpointManager(directory) as manager:
        manager.restore(1, args=ocp.args.Composite(data=pipeline.iterator_checkpoint_args(fresh, restore=True)))
    return fresh


@pytest.mark.slow
@pytest.mark.parametrize("workers,k", [(0, 0), (0, 5), (2, 0), (2, 2)])
def test_exact_resume_through_orbax(cfg, tmp_path, workers, k):
    kw = dict(split="train", seed=7, shard_index=0, shard_count=1, batch_size=4)
    total = 8  # crosses the epoch boundary at 6 batches
    reference = list(itertools.islice(pipeline.make_loader(cfg, **kw), total if workers == 0 else k + 2))
    run_cfg = ml_collections.ConfigDict(cfg.to_dict())
    run_cfg.worker_count = workers
    loader = pipeline.make_loader(run_cfg, **kw)
    head = list(itertools.islice(loader, k))
    fresh = _checkpoint_roundtrip(loader, tmp_path / "ckpt", pipeline.make_loader(run_cfg, **kw))
    state = fresh.get_state()
    assert (state["epoch"], state["position_in_epoch"]) == divmod(k, 6)
    tail = list(itertools.islice(fresh, len(reference) - k))
    loader.close()
    fresh.close()
    for got, want in zip(head + tail, reference, strict=True):
        assert list(got["key"]) == list(want["key"])
        np.testing.assert_array_equal(got["video"], want["video"])


def test_restoring_a_foreign_state_is_an_error(cfg):
    a = pipeline.make_loader(cfg, split="train", seed=1, shard_index=0, shard_count=1, batch_size=4)
    b = pipeline.make_loader(cfg, split="train", seed=2, shard_index=0, shard_count=1, batch_size=4)
    with pytest.raises(ValueError, match="seed"):
        b.set_state(a.get_state())


def test_bad_arguments_are_rejected_before_reading(cfg):
    kw = dict(split="train", seed=0, shard_index=0, shard_count=1)
    with pytest.raises(ValueError, match="fewer than batch_size"):
        pipeline.make_loader(cfg, batch_size=100, **kw)
    with pytest.raises(ValueError, match="shard_index"):
        pipeline.make_loader(cfg, split="train", seed=0, shard_index=2, shard_count=2, batch_size=1)
    bad = ml_collections.ConfigDict(cfg.to_dict())
    bad.clip_seconds = 2.0
    with pytest.raises(ValueError, match="clip_seconds"):
        pipeline.make_loader(bad, batch_size=1, **kw)
    bad.clip_seconds, bad.name = None, "webvid"
    with pytest.raises(ValueError, match="webvid"):
        pipeline.make_loader(bad, batch_size=1, **kw)
    with pytest.raises(FileNotFoundError, match="emu-video data build"):
        pipeline.open_source("video_text_folder", cfg.data_dir, "train")


def test_tokenizer_mapping_output_is_padded_and_truncated():
    ids, mask = pipeline.tokenize(lambda t: {"input_ids": [5, 6, 7, 8], "attention_mask": [1, 1, 1, 0]}, "x", 3)
    np.testing.assert_array_equal(ids, [5, 6, 7])
    np.testing.assert_array_equal(mask, [True, True, True])
    ids, mask = pipeline.tokenize(lambda t: [ord(c) for c in t], "ab", 4)
    np.testing.assert_array_equal(ids, [97, 98, 0, 0])
    np.testing.assert_array_equal(mask, [True, True, False, False])
    ids, mask = pipeline.tokenize(pipeline.default_tokenizer(), "ab", 5)  # bos, a, b, eos, pad
    np.testing.assert_array_equal(ids, [257, 97, 98, 258, 256])
    np.testing.assert_array_equal(mask, [True, True, True, True, False])


def test_stored_video_is_h264_of_the_rendered_clip(cfg):
    source = pipeline.open_source("moving_shapes", cfg.data_dir, "test")
    record = source[0]
    attrs = shapes.ShapeAttrs.from_dict(record)
    decoded = video_io.decode_all(record["video"])
    rendered = shapes.render_clip(attrs, 8, 16, 8)
    assert decoded.shape == rendered.shape
    assert np.abs(decoded.astype(int) - rendered).mean() < 6
    assert analyse.analyse_video(decoded)["direction"] == attrs.direction


def test_keep_frames_gives_the_first_frames_of_the_same_clips(cfg):
    """keep_frames=1: each example is the first frame of the clip the full loader would have sampled (a
    keyframe model then sees what the video model is conditioned on); out-of-range values are named."""
    kw = dict(split="train", seed=3, shard_index=0, shard_count=1, batch_size=4)
    full = list(itertools.islice(pipeline.make_loader(cfg, **kw), 3))
    first = ml_collections.ConfigDict({**cfg.to_dict(), "keep_frames": 1})
    kept = list(itertools.islice(pipeline.make_loader(first, **kw), 3))
    for a, b in zip(full, kept):
        assert b["video"].shape == (4, 1, 16, 16, 3)
        assert list(a["key"]) == list(b["key"])
        np.testing.assert_array_equal(a["video"][:, :1], b["video"])
    first.keep_frames = 5
    with pytest.raises(ValueError, match=r"data.keep_frames=5 must be in \[0, data.num_frames=4\]"):
        pipeline.make_loader(first, **kw)
