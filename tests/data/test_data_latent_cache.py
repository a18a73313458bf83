"""Latent cache: encode clips once with a stand-in encoder, then train-read latents instead of pixels."""

import ml_collections
import numpy as np
import pytest

from emu_jax.data import builders, cli, latent_cache, pipeline
from emu_jax.demo.dataset import MovingShapes


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    d = str(tmp_path_factory.mktemp("tfds"))
    builders.prepare(MovingShapes(resolution=16, num_frames=6, fps=8, num_train=5, num_test=0, data_dir=d))
    return d


def test_cached_latents_equal_encoding_of_centred_clips(data_dir):
    import jax.numpy as jnp

    src_cfg = ml_collections.ConfigDict(
        dict(name="moving_shapes", data_dir=data_dir, resolution=16, num_frames=4, fps=8.0, text_max_length=64)
    )
    calls = []

    def encode_fn(video_BTHWC):  # a jnp function, like a bound VAE encode
        calls.append(video_BTHWC.shape)
        return cli.pool_encoder(4)(jnp.asarray(video_BTHWC))

    latent_cache.build_latent_cache(src_cfg, encode_fn, data_dir=data_dir, batch_size=2)
    assert calls == [(2, 4, 16, 16, 3)] * 3  # 5 clips in batches of 2, the last one padded

    lat_cfg = ml_collections.ConfigDict(src_cfg.to_dict())
    lat_cfg.name = "latents"
    batch = next(
        pipeline.make_loader(lat_cfg, split="train", seed=0, shard_index=0, shard_count=1, batch_size=5, shuffle=False)
    )
    pixels = next(
        pipeline.make_loader(
            src_cfg, split="train", seed=0, shard_index=0, shard_count=1, batch_size=5, shuffle=False, random_clip=False
        )
    )
    assert batch["latents"].shape == (5, 4, 4, 4, 3) and "video" not in batch
    row = {k: i for i, k in enumerate(pixels["key"])}  # TFDS orders records by key hash: match by key
    order = [row[k.removesuffix("#0")] for k in batch["key"]]
    assert sorted(order) == list(range(5))
    expected = np.asarray(cli.pool_encoder(4)(pixels["video"]))[order]
    np.testing.assert_allclose(batch["latents"], expected, atol=1e-6)
    assert list(batch["color"]) == list(pixels["color"][order])
    assert list(batch["caption"]) == list(pixels["caption"][order])
    np.testing.assert_array_equal(batch["text_ids"], pixels["text_ids"][order])


@pytest.mark.parametrize(
    "extra,match",
    [
        (
            ["--batch-size", "3", "--coordinator", "127.0.0.1:1", "--num-processes", "2", "--process-id", "0"],
            "--batch-size 3 must be a multiple of --num-processes 2",
        ),
        (["--shard-batches", "0"], "--shard-batches and --clips-per-video must be >= 1"),
        (["--encoder", "pool:x"], "expected 'pool:F'"),
    ],
)
def test_cache_latents_flags_checked_before_any_work(tmp_path, capsys, extra, match):
    from emu_jax import cli as emu_cli
    from emu_test_utils import REPO

    args = [
        "data",
        "cache-latents",
        "--config",
        str(REPO / "configs/demo/moving_shapes_tiny.py"),
        "--data-dir",
        str(tmp_path / "out"),
        *(["--encoder", "pool:4"] if "--encoder" not in extra else []),
        *extra,
    ]
    assert emu_cli.main(args) == 2
    err = capsys.readouterr().err.strip()
    assert match in err and len(err.splitlines()) == 1, err
    assert not (tmp_path / "out").exists()
