"""Latent cache: encode every clip of a pixel dataset once with a VAE and store the latents as ArrayRecord.

Training on cached latents (`cfg.data.name = 'latents'`) skips video decode
and the frozen encoder each step. The encoder is any `encode_fn(video_BTHWC)
-> latents_BThwC` (e.g. a jitted `autoencoder.encode_video` with its params
bound), so this module does not depend on the model code.
"""

from __future__ import annotations

import io
import json
from typing import Callable, Iterator

import numpy as np
import tensorflow_datasets as tfds

from emu_jax.data import builders, pipeline

EncodeFn = Callable[[np.ndarray], np.ndarray]


def _npy_bytes(x: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, x, allow_pickle=False)
    return buf.getvalue()


class Latents(builders.LocalBuilder):
    """Cached latents of clips from another prepared dataset, with caption, key and attributes (JSON).

    Build-time keyword arguments: `source_cfg` (a `cfg.data`-style config of
    the pixel dataset), `encode_fn`, `splits`, `batch_size`, `clips_per_video`
    (1 = the centred clip; more = clips placed by `seed`), `dtype`.
    """

    VERSION = tfds.core.Version("1.0.0")

    def __init__(self, *, source_cfg=None, encode_fn: EncodeFn | None = None, splits=("train",),
                 batch_size: int = 8, clips_per_video: int = 1, seed: int = 0, dtype: str = "float32", **kwargs):
        if batch_size < 1 or clips_per_video < 1:
            raise ValueError(f"batch_size and clips_per_video must be >= 1, got {batch_size}, {clips_per_video}")
        if dtype not in ("float32", "float16"):
            raise ValueError(f"dtype={dtype!r} is not one of ('float32', 'float16')")
        self._source_cfg, self._encode_fn = source_cfg, encode_fn
        self._splits, self._batch_size, self._clips, self._seed = tuple(splits), batch_size, clips_per_video, seed
        self._dtype = dtype
        super().__init__(**kwargs)

    def _info(self) -> tfds.core.DatasetInfo:
        f = tfds.features
        src = self._source_cfg
        meta = {} if src is None else {"source": {k: src.get(k) for k in ("name", "data_dir", "resolution",
                                                                            "num_frames", "fps", "clip_seconds",
                                                                            "keep_frames")},
                                       "clips_per_video": self._clips, "seed": self._seed}
        return tfds.core.DatasetInfo(
            builder=self, description=self.__doc__,
            features=f.FeaturesDict({"key": f.Text(), "caption": f.Text(), "attributes": f.Text(),
                                     "latents": f.Tensor(shape=(), dtype=np.object_)}),
            metadata=tfds.core.MetadataDict(meta))

    def _split_generators(self, dl_manager):
        del dl_manager
        if self._source_cfg is None or self._encode_fn is None:
            raise ValueError("Latents needs source_cfg= and encode_fn= to build")
        return {split: self._generate_examples(split) for split in self._splits}

    def _generate_examples(self, split: str) -> Iterator[tuple[str, dict]]:
        cfg = self._source_cfg
        source = pipeline.open_source(cfg.name, cfg.data_dir, split)
        n = len(source)
        prep = pipeline.preprocessor(cfg, seed=self._seed, epoch_length=n, random_clip=self._clips > 1)
        jobs = [(c, i) for c in range(self._clips) for i in range(n)]
        for start in range(0, len(jobs), self._batch_size):
            chunk = jobs[start:start + self._batch_size]
            examples = [prep(c * n + i, source[i]) for c, i in chunk]
            video = np.stack([e["video"] for e in examples])
            pad = self._batch_size - len(chunk)  # Pad the last batch so encode_fn sees one shape (one compile).
            if pad:
                video = np.concatenate([video, np.repeat(video[-1:], pad, axis=0)])
            latents = np.asarray(self._encode_fn(video))
            if latents.shape[0] != self._batch_size:
                raise ValueError(f"encode_fn returned batch {latents.shape[0]}, expected {self._batch_size}")
            for (c, i), ex, z in zip(chunk, examples, latents):
                attrs = {k: (float(v) if isinstance(v, np.floating) else v)
                         for k, v in ex.items() if k not in pipeline.EXAMPLE_FIELDS}
                key = ex["key"] or f"{split}_{i}"
                z = z.astype(self._dtype)
                yield f"{key}#{c}", {"key": f"{key}#{c}", "caption": ex["caption"],
                                     "attributes": json.dumps(attrs), "latents": _npy_bytes(z)}


def build_latent_cache(source_cfg, encode_fn: EncodeFn, *, data_dir: str, splits=("train",), batch_size: int = 8,
                       clips_per_video: int = 1, seed: int = 0, dtype: str = "float32") -> Latents:
    """Encodes `source_cfg`'s splits with `encode_fn` into `<data_dir>/latents/` and returns the builder."""
    builder = Latents(source_cfg=source_cfg, encode_fn=encode_fn, splits=splits, batch_size=batch_size,
                      clips_per_video=clips_per_video, seed=seed, dtype=dtype, data_dir=data_dir)
    return builders.prepare(builder)
