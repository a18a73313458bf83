"""Latent cache: encode every clip of a pixel dataset once with a VAE and store the latents as ArrayRecord.

Training on cached latents (`cfg.data.name = 'latents'`) skips video decode
and the frozen encoder each step. The encoder is any `encode_fn(video_BTHWC)
-> latents_BThwC` (e.g. a jitted `vae_video.encode_video` with its params
bound), so this module does not depend on the model code.

Runs in one or many JAX processes (`jax.distributed`): clips are cut into
shards of whole batches; every batch is sharded over the devices of all
processes, each process writes the latents of its own rows of a shard to one
file, and a killed run resumes at the first shard some process had not
finished. The files land in one TFDS dataset (`tfds.data_source` reads it);
several hosts need a shared `data_dir`.
"""

from __future__ import annotations

import io
import json
import logging
import math
import os
from typing import Callable

import numpy as np
import tensorflow_datasets as tfds
from tensorflow_datasets.core import file_adapters, naming

from emu_jax.data import builders, pipeline

log = logging.getLogger(__name__)
EncodeFn = Callable[[np.ndarray], np.ndarray]
PARTIAL_SUFFIX = ".partial"  # the version folder while shards are written; renamed when all are done


def _npy_bytes(x: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, x, allow_pickle=False)
    return buf.getvalue()


class Latents(builders.LocalBuilder):
    """Cached latents of clips from another prepared dataset, with caption, key and attributes (JSON).

    Built by `build_latent_cache` (its own sharded, resumable writer); this
    class describes the features and metadata. Keyword arguments:
    `source_cfg` (a `cfg.data`-style config of the pixel dataset), `splits`,
    `clips_per_video` (1 = the centred clip; more = clips placed by `seed`),
    `dtype`.
    """

    VERSION = tfds.core.Version("1.0.0")

    def __init__(
        self,
        *,
        source_cfg=None,
        splits=("train",),
        clips_per_video: int = 1,
        seed: int = 0,
        dtype: str = "float32",
        **kwargs,
    ):
        if clips_per_video < 1:
            raise ValueError(f"clips_per_video must be >= 1, got {clips_per_video}")
        if dtype not in ("float32", "float16"):
            raise ValueError(f"dtype={dtype!r} is not one of ('float32', 'float16')")
        self._source_cfg, self._splits, self._clips, self._seed = source_cfg, tuple(splits), clips_per_video, seed
        self._dtype = dtype
        super().__init__(**kwargs)

    def _info(self) -> tfds.core.DatasetInfo:
        f = tfds.features
        src = self._source_cfg
        meta = (
            {}
            if src is None
            else {
                "source": {
                    k: src.get(k)
                    for k in ("name", "data_dir", "resolution", "num_frames", "fps", "clip_seconds", "keep_frames")
                },
                "clips_per_video": self._clips,
                "seed": self._seed,
            }
        )
        return tfds.core.DatasetInfo(
            builder=self,
            description=self.__doc__,
            features=f.FeaturesDict(
                {
                    "key": f.Text(),
                    "caption": f.Text(),
                    "attributes": f.Text(),
                    "latents": f.Tensor(shape=(), dtype=np.object_),
                }
            ),
            metadata=tfds.core.MetadataDict(meta),
        )

    def _split_generators(self, dl_manager):
        raise ValueError(
            "Latents is written by latent_cache.build_latent_cache (sharded, resumable), not by download_and_prepare"
        )

    def _generate_examples(self):
        raise ValueError("Latents is written by latent_cache.build_latent_cache")


class _Layout:
    """Which clips a process encodes and writes, shard by shard: the same answer in every process."""

    def __init__(self, num_jobs: int, batch_size: int, shard_batches: int, num_processes: int):
        self.num_jobs, self.batch, self.procs = num_jobs, batch_size, num_processes
        self.local = batch_size // num_processes
        self.shard_jobs = batch_size * shard_batches
        self.num_shards = max(1, math.ceil(num_jobs / self.shard_jobs))

    def batches(self, shard: int) -> range:
        start = shard * self.shard_jobs
        return range(start, min(start + self.shard_jobs, self.num_jobs), self.batch)

    def rows(self, batch_start: int, process: int) -> list[int]:
        """Job indices of `process`'s rows of the batch starting at `batch_start`; -1 for padding."""
        first = batch_start + process * self.local
        return [j if j < self.num_jobs else -1 for j in range(first, first + self.local)]

    def length(self, shard: int, process: int) -> int:
        return sum(j >= 0 for b in self.batches(shard) for j in self.rows(b, process))

    def files(self) -> list[tuple[int, int]]:
        """(shard, process) of every non-empty file, in file order (shard-major, so keys keep job order)."""
        return [(s, p) for s in range(self.num_shards) for p in range(self.procs) if self.length(s, p)]


def batch_sharding(batch_size: int):
    """The encoder's batch sharding: over, per process, as many of its devices as divide its `batch_size /
    process_count` rows (all of them normally). Replicate the encoder's parameters over `.mesh`."""
    import jax
    from jax.sharding import Mesh, NamedSharding, PartitionSpec

    per_proc = math.gcd(batch_size // jax.process_count(), jax.local_device_count())
    devices = [
        d
        for q in range(jax.process_count())
        for d in sorted((d for d in jax.devices() if d.process_index == q), key=lambda d: d.id)[:per_proc]
    ]
    return NamedSharding(Mesh(np.array(devices), ("batch",)), PartitionSpec("batch"))


def _encode_local(encode_fn: EncodeFn, sharding, local_video: np.ndarray, global_batch: int) -> np.ndarray:
    """Encodes this process's rows as part of the global batch; returns this process's rows of the output."""
    import jax

    video = jax.make_array_from_process_local_data(sharding, local_video, (global_batch,) + local_video.shape[1:])
    out = encode_fn(video)
    if out.shape[0] != global_batch:
        raise ValueError(f"encode_fn returned batch {out.shape[0]}, expected {global_batch}")
    if not isinstance(out, jax.Array):
        if jax.process_count() > 1:
            raise ValueError("encode_fn must return a jax.Array when several processes share the batch")
        return np.asarray(out)
    out = jax.jit(lambda x: x, out_shardings=sharding)(out)  # this process's rows on its own devices
    shards = sorted(out.addressable_shards, key=lambda s: s.index[0].start or 0)
    return np.concatenate([np.asarray(s.data) for s in shards])


def _all_done(local_done: np.ndarray) -> np.ndarray:
    """Shard s counts as done only when every process finished its file of s (processes agree on it)."""
    import jax

    if jax.process_count() == 1:
        return local_done
    from jax.experimental import multihost_utils

    return (
        np.asarray(multihost_utils.process_allgather(local_done.astype(np.int32)))
        .reshape(jax.process_count(), -1)
        .min(axis=0)
        .astype(bool)
    )


def _barrier(name: str) -> None:
    import jax

    if jax.process_count() > 1:
        from jax.experimental import multihost_utils

        multihost_utils.sync_global_devices(name)


def _write_split(
    builder: Latents,
    encode_fn: EncodeFn,
    split: str,
    work_dir: str,
    final_dir: str,
    batch_size: int,
    shard_batches: int,
) -> tfds.core.SplitInfo:
    import jax

    cfg, proc, nproc = builder._source_cfg, jax.process_index(), jax.process_count()
    source = pipeline.open_source(cfg.name, cfg.data_dir, split)
    n = len(source)
    prep = pipeline.preprocessor(cfg, seed=builder._seed, epoch_length=n, random_clip=builder._clips > 1)
    jobs = [(c, i) for c in range(builder._clips) for i in range(n)]
    layout = _Layout(len(jobs), batch_size, shard_batches, nproc)
    files = layout.files()
    template = naming.ShardedFileTemplate(
        data_dir=work_dir, dataset_name=builder.name, split=split, filetype_suffix="array_record"
    )
    path_of = {sp: template.sharded_filepath(shard_index=k, num_shards=len(files)) for k, sp in enumerate(files)}
    local_done = np.array([(s, proc) not in path_of or path_of[(s, proc)].exists() for s in range(layout.num_shards)])
    done = _all_done(local_done)
    if done.any():
        log.info("%s: %d of %d shards already written; encoding the rest", split, int(done.sum()), layout.num_shards)
    sharding = batch_sharding(layout.batch)
    features = builder.info.features
    for shard in np.flatnonzero(~done):
        records = []
        for start in layout.batches(shard):
            rows = layout.rows(start, proc)
            real = [j for j in rows if j >= 0] or [0]  # a process with only padding still joins the batch
            examples = {j: prep(jobs[j][0] * n + jobs[j][1], source[jobs[j][1]]) for j in set(real)}
            # Padding repeats a real clip so encode_fn always sees one shape (one compile).
            video = np.stack([examples[j if j >= 0 else real[-1]]["video"] for j in rows])
            latents = _encode_local(encode_fn, sharding, video, layout.batch)
            for j, z in zip(rows, latents):
                if j >= 0:
                    records.append(_record(split, jobs[j], examples[j], z.astype(builder._dtype)))
        if (shard, proc) in path_of:
            path = path_of[(shard, proc)]
            tmp = path.parent / (path.name + ".tmp")
            file_adapters.ArrayRecordFileAdapter.write_examples(
                tmp, ((key, features.serialize_example(r)) for key, r in records)
            )
            tmp.rename(path)  # atomic: a file under its final name is complete
        log.info("%s: shard %d of %d written (process %d)", split, shard + 1, layout.num_shards, proc)
    _barrier(f"latents-{split}-written")
    final = naming.ShardedFileTemplate(
        data_dir=final_dir, dataset_name=builder.name, split=split, filetype_suffix="array_record"
    )
    # Only process 0 reads the files' sizes: it renames their folder later, so another process could miss them.
    size = sum(os.path.getsize(path_of[sp]) for sp in files) if proc == 0 else 0
    return tfds.core.SplitInfo(
        name=split, shard_lengths=[layout.length(s, p) for s, p in files], num_bytes=size, filename_template=final
    )


def _record(split: str, job: tuple[int, int], ex: dict, z: np.ndarray) -> tuple[str, dict]:
    c, i = job
    attrs = {
        k: (float(v) if isinstance(v, np.floating) else v) for k, v in ex.items() if k not in pipeline.EXAMPLE_FIELDS
    }
    key = f"{ex['key'] or f'{split}_{i}'}#{c}"
    return key, {"key": key, "caption": ex["caption"], "attributes": json.dumps(attrs), "latents": _npy_bytes(z)}


def build_latent_cache(
    source_cfg,
    encode_fn: EncodeFn,
    *,
    data_dir: str,
    splits=("train",),
    batch_size: int = 8,
    clips_per_video: int = 1,
    seed: int = 0,
    dtype: str = "float32",
    shard_batches: int = 16,
) -> Latents:
    """Encodes `source_cfg`'s splits with `encode_fn` into `<data_dir>/latents/` and returns the builder.

    `batch_size` is the global batch (all processes together; it must divide
    evenly among them); a shard is `shard_batches` batches. Run the same call in
    every process; after a kill, the same call writes only the missing shards.
    """
    import jax

    if batch_size < 1 or shard_batches < 1:
        raise ValueError(f"batch_size and shard_batches must be >= 1, got {batch_size}, {shard_batches}")
    if batch_size % jax.process_count():
        raise ValueError(f"batch_size={batch_size} must be a multiple of the {jax.process_count()} processes")
    builder = Latents(
        source_cfg=source_cfg, splits=splits, clips_per_video=clips_per_video, seed=seed, dtype=dtype, data_dir=data_dir
    )
    if builder.is_prepared():
        return builder
    final_dir = os.fspath(builder.data_dir)
    work_dir = final_dir + PARTIAL_SUFFIX
    os.makedirs(work_dir, exist_ok=True)
    builder.info.set_file_format("array_record", override=True)
    infos = [
        _write_split(builder, encode_fn, split, work_dir, final_dir, batch_size, shard_batches) for split in splits
    ]
    builder.info.set_splits(tfds.core.SplitDict(infos))
    if jax.process_index() != 0:
        return builder  # its info holds the split sizes; process 0 alone writes the metadata and renames
    builder.info.write_to_directory(work_dir)
    for leftover in os.listdir(work_dir):
        if leftover.endswith(".tmp"):  # a file a killed run had begun
            os.remove(os.path.join(work_dir, leftover))
    os.replace(work_dir, final_dir)
    return Latents(
        source_cfg=source_cfg, splits=splits, clips_per_video=clips_per_video, seed=seed, dtype=dtype, data_dir=data_dir
    )
