"""Grain input pipeline: TFDS ArrayRecord source -> shuffled, sharded, decoded, batched, resumable iterator.

Order of operations (all index-based, so every batch is a pure function of
(seed, epoch, position) and the iterator state is just counters):
global shuffle (reseeded per epoch) -> equal-size shard for this process ->
decode + clip sampling + resize/crop + tokenise -> batch (drop remainder,
within an epoch) -> repeat -> optional worker processes.
"""

from __future__ import annotations

import dataclasses
import io
import json
import os
from typing import Any, Callable, Mapping, Sequence

import grain
import numpy as np

from emu_jax.data import clips

# Record fields the loader reads itself; any other scalar field a builder adds (a synthetic dataset's
# ground-truth attributes, say) passes through to the batch unchanged.
RECORD_FIELDS = ("key", "video", "caption", "fps", "num_frames", "duration", "width", "height", "latents", "attributes")
# Fields of a preprocessed example that are not passed-through attributes.
EXAMPLE_FIELDS = ("caption", "key", "video", "latents", "text_ids", "text_mask")
Tokenizer = Callable[..., Any]


def default_tokenizer():
    """emu_jax's offline byte-level tokenizer (259 ids: bytes, pad 256, bos 257, eos 258)."""
    from emu_jax.models.tokenizers import ByteTokenizer

    return ByteTokenizer()


def tokenize(tokenizer: Tokenizer, text: str, max_length: int) -> tuple[np.ndarray, np.ndarray]:
    """One caption -> (ids int32 (L,), mask bool (L,)) with L = `max_length`.

    `tokenizer` is either an `emu_jax.models.tokenizers.Tokenizer` (anything
    with `pad_id` called as `tok([text], max_length) -> TokenBatch(ids, mask)`),
    or a plain `str -> ids` callable (or one returning a mapping with
    `input_ids` / `attention_mask`, as Hugging Face tokenizers do), whose ids
    are truncated and padded with 0 here.
    """
    if hasattr(tokenizer, "pad_id"):
        batch = tokenizer([text], max_length)
        return np.asarray(batch.ids[0], np.int32), np.asarray(batch.mask[0], bool)
    out = tokenizer(text)
    if isinstance(out, Mapping):
        ids = np.asarray(out["input_ids"], np.int32).reshape(-1)
        mask = np.asarray(out.get("attention_mask", np.ones_like(ids)), bool).reshape(-1)
    else:
        ids = np.asarray(out, np.int32).reshape(-1)
        mask = np.ones(ids.shape, bool)
    ids_L, mask_L = np.zeros(max_length, np.int32), np.zeros(max_length, bool)
    n = min(max_length, len(ids))
    ids_L[:n], mask_L[:n] = ids[:n], mask[:n]
    return ids_L, mask_L


@dataclasses.dataclass(frozen=True)
class _Preprocess:
    """Record -> example dict; picklable so grain worker processes can run it."""

    name: str
    num_frames: int
    fps: float | None
    resolution: int
    resize_method: str
    text_max_length: int
    tokenizer: Tokenizer
    seed: int
    epoch_length: int
    shard_index: int
    shard_count: int
    random_clip: bool
    text: bool = True
    keep_frames: int = 0

    def __call__(self, index: int, record: Mapping[str, Any]) -> dict:
        epoch, i = divmod(index, self.epoch_length)
        global_i = i * self.shard_count + self.shard_index  # position in the global shuffled order
        rng = np.random.default_rng([self.seed, epoch, global_i]) if self.random_clip else None
        text = _str(record["caption"])
        out: dict[str, Any] = {"caption": text, "key": _str(record.get("key", b""))}
        if self.name == "latents":
            out["latents"] = np.load(io.BytesIO(record["latents"]), allow_pickle=False).astype(np.float32)
            record = {**record, **json.loads(_str(record["attributes"]))}
        else:
            out["video"] = clips.load_clip(
                record["video"],
                src_fps=float(record["fps"]),
                src_num_frames=int(record["num_frames"]),
                num_frames=self.num_frames,
                fps=self.fps,
                resolution=self.resolution,
                resize_method=self.resize_method,
                rng=rng,
                keep_frames=self.keep_frames,
            )
        if self.text:
            out["text_ids"], out["text_mask"] = tokenize(self.tokenizer, text, self.text_max_length)
        out.update(record_attributes(record))
        return out


def record_attributes(record: Mapping[str, Any]) -> dict:
    """A record's scalar fields beyond RECORD_FIELDS, as str / float32 (what batches carry along)."""
    out = {}
    for field, value in record.items():
        if field in RECORD_FIELDS or field in out:
            continue
        if isinstance(value, (bytes, str)):
            out[field] = _str(value)
        elif np.ndim(value) == 0 and np.issubdtype(np.asarray(value).dtype, np.number):
            out[field] = np.float32(value)
    return out


def _str(value) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)


class _Subset:
    """A random-access source restricted to `indices` (e.g. the select-hq output)."""

    def __init__(self, source, indices: Sequence[int]):
        self._source, self._indices = source, np.asarray(indices, np.int64)

    def __len__(self) -> int:
        return len(self._indices)

    def __getitem__(self, i: int):
        return self._source[int(self._indices[i])]


class LoaderIterator(grain.DatasetIterator):
    """The pipeline's iterator: grain's state plus where we are (epoch, batch in epoch).

    `get_state()` / `set_state()` are JSON-able dicts (what grain's Orbax
    handler writes); restoring a state from a differently configured loader
    (other seed, shard, batch size or dataset size) raises ValueError instead
    of silently reading other data.
    """

    def __init__(self, parent: grain.DatasetIterator, fingerprint: dict, batches_per_epoch: int):
        super().__init__(parent)
        self._fingerprint, self._batches_per_epoch, self._served = fingerprint, batches_per_epoch, 0

    def __next__(self) -> dict:
        batch = next(self._parent)
        self._served += 1
        return batch

    @property
    def epoch(self) -> int:
        return self._served // self._batches_per_epoch

    @property
    def batches_per_epoch(self) -> int:
        return self._batches_per_epoch

    def get_state(self) -> dict:
        return {
            "grain": self._parent.get_state(),
            "batches_served": self._served,
            "epoch": self.epoch,
            "position_in_epoch": self._served % self._batches_per_epoch,
            "loader": dict(self._fingerprint),
        }

    def set_state(self, state: dict) -> None:
        if state.get("loader") != self._fingerprint:
            raise ValueError(
                f"data iterator state was saved by a loader configured as {state.get('loader')}, "
                f"this loader is {self._fingerprint}"
            )
        self._parent.set_state(state["grain"])
        self._served = int(state["batches_served"])

    def __str__(self) -> str:
        return f"LoaderIterator({self._fingerprint})"


def open_source(name: str, data_dir: str, split: str):
    """`tfds.data_source` for a prepared dataset, with a clear error when it has not been built."""
    import tensorflow_datasets as tfds

    from emu_jax.data import registry

    known = {"video_text_folder", "latents", *registry.kinds()}
    if name not in known and not os.path.isdir(os.path.join(data_dir, name)):
        # Checked first: TFDS would try to construct a catalogue dataset of that name (e.g. 'webvid').
        raise ValueError(
            f"data.name={name!r} is not prepared under data_dir={data_dir!r} and is not one of {sorted(known)}"
        )
    try:  # TFDS reads a prepared dataset from its stored metadata, so no builder class is imported here
        builder = tfds.builder(name, data_dir=data_dir)
    except tfds.core.registered.DatasetNotFoundError:
        builder = None
    if builder is None or not builder.is_prepared():
        raise FileNotFoundError(
            f"dataset {name!r} is not prepared under data_dir={data_dir!r} "
            f"(build it with `emu-video data build {name} ...`)"
        )
    available = list(builder.info.splits)
    if split.split("[")[0] not in available:
        raise ValueError(f"split {split!r} is not in {name} under {data_dir}; available: {available}")
    return tfds.data_source(name, data_dir=data_dir, split=split, download=False)


def _shard(shard_index, shard_count) -> tuple[int, int]:
    if shard_index is None or shard_count is None:
        import jax  # only for the default: one shard per JAX process

        shard_index = jax.process_index() if shard_index is None else shard_index
        shard_count = jax.process_count() if shard_count is None else shard_count
    if not 0 <= shard_index < shard_count:
        raise ValueError(f"shard_index={shard_index} must be in [0, shard_count={shard_count})")
    return shard_index, shard_count


def target_fps(cfg_data) -> float | None:
    """Clip frame rate from `fps`, or from `num_frames / clip_seconds`; None keeps the source rate."""
    fps, seconds = cfg_data.get("fps"), cfg_data.get("clip_seconds")
    if fps and seconds and abs(fps * seconds - cfg_data.num_frames) > 1e-6:
        raise ValueError(
            f"data.fps={fps} x data.clip_seconds={seconds} != data.num_frames={cfg_data.num_frames}; "
            "set one of fps / clip_seconds"
        )
    return float(fps) if fps else (cfg_data.num_frames / seconds if seconds else None)


def preprocessor(
    cfg_data,
    *,
    seed: int,
    epoch_length: int,
    tokenizer: Tokenizer | None = None,
    shard_index: int = 0,
    shard_count: int = 1,
    random_clip: bool = True,
    text: bool = True,
) -> _Preprocess:
    """The per-record transform `(index, record) -> example` that `make_loader` maps over its shard."""
    return _Preprocess(
        name=cfg_data.name,
        num_frames=int(cfg_data.num_frames),
        fps=target_fps(cfg_data),
        resolution=int(cfg_data.resolution),
        resize_method=cfg_data.get("resize_method", "bicubic"),
        text_max_length=int(cfg_data.text_max_length),
        tokenizer=tokenizer or default_tokenizer(),
        seed=seed,
        epoch_length=epoch_length,
        shard_index=shard_index,
        shard_count=shard_count,
        random_clip=random_clip,
        text=text,
        keep_frames=int(cfg_data.get("keep_frames", 0)),
    )


def make_loader(
    cfg_data,
    *,
    split: str,
    seed: int,
    shard_index: int | None = None,
    shard_count: int | None = None,
    tokenizer: Tokenizer | None = None,
    batch_size: int,
    num_epochs: int | None = None,
    shuffle: bool = True,
    random_clip: bool = True,
    text: bool = True,
) -> LoaderIterator:
    """Builds the resumable batch iterator for one process.

    Args:
      cfg_data: the `cfg.data` ConfigDict (see configs/data/video_folder.py):
        name, data_dir, resolution, num_frames, fps / clip_seconds, keep_frames,
        resize_method, worker_count, read_threads, text_max_length, subset_file.
      split: TFDS split, e.g. 'train' or 'test[:64]'.
      seed: shuffle and clip-placement seed; the same seed gives the same stream.
      shard_index, shard_count: this process's shard; default
        `jax.process_index()` / `jax.process_count()`. Shards are disjoint,
        equal-sized, and together cover each epoch's shuffled order (the
        remainder after `len % shard_count` is dropped per epoch).
      tokenizer: see `tokenize`; default `emu_jax.models.tokenizers.ByteTokenizer`.
      batch_size: per-process batch; the last partial batch of every epoch
        is dropped so all batches have equal shapes.
      num_epochs: None repeats forever (each epoch reshuffled).
      shuffle / random_clip: False gives a fixed order and centred clips (evaluation).
      text: False leaves captions untokenised (no `text_ids` / `text_mask`): for the autoencoder,
        which never reads them and whose config has no tokenizer to fit them.

    Returns:
      A `LoaderIterator` yielding dicts: `video` float32 (B, T, R, R, 3) in
      [-1, 1] (or `latents` float32 (B, T', h, w, C) for name 'latents'),
      `caption` str (B,), `key` str (B,), `text_ids` int32 (B, L), `text_mask`
      bool (B, L), plus any further scalar fields of the records
      (`record_attributes`, as str / float32 (B,)). Its state (`get_state`, or
      `iterator_checkpoint_args` for Orbax) holds epoch and position.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    worker_count = int(cfg_data.get("worker_count", 0))
    if worker_count < 0:
        raise ValueError(f"data.worker_count must be >= 0 (0 = in-process), got {worker_count}")
    if cfg_data.get("resize_method", "bicubic") not in clips.RESIZE_METHODS:
        raise ValueError(f"data.resize_method={cfg_data.resize_method!r} is not one of {clips.RESIZE_METHODS}")
    shard_index, shard_count = _shard(shard_index, shard_count)
    target_fps(cfg_data)  # validates fps / clip_seconds before opening anything
    if not 0 <= int(cfg_data.get("keep_frames", 0)) <= int(cfg_data.num_frames):
        raise ValueError(
            f"data.keep_frames={cfg_data.keep_frames} must be in [0, data.num_frames="
            f"{cfg_data.num_frames}] (0 keeps the whole clip)"
        )
    source = open_source(cfg_data.name, cfg_data.data_dir, split)
    if cfg_data.get("subset_file"):
        source = _Subset(source, load_subset_indices(cfg_data.subset_file, name=cfg_data.name, split=split))
    ds = grain.MapDataset.source(source)
    if shuffle:
        ds = ds.shuffle(seed=seed)
    ds = ds[: len(ds) - len(ds) % shard_count][shard_index::shard_count]
    batches_per_epoch = len(ds) // batch_size
    if batches_per_epoch == 0:
        raise ValueError(
            f"{cfg_data.name}/{split}: shard {shard_index}/{shard_count} holds {len(ds)} examples, "
            f"fewer than batch_size={batch_size}"
        )
    ds = ds.map_with_index(
        preprocessor(
            cfg_data,
            seed=seed,
            epoch_length=len(ds),
            tokenizer=tokenizer,
            shard_index=shard_index,
            shard_count=shard_count,
            random_clip=random_clip,
            text=text,
        )
    )
    ds = ds.batch(batch_size, drop_remainder=True).repeat(num_epochs)
    iter_ds = ds.to_iter_dataset(
        grain.ReadOptions(
            num_threads=int(cfg_data.get("read_threads", 2)),
            prefetch_buffer_size=int(cfg_data.get("prefetch_batches", 4)),
        )
    )
    if worker_count:
        from absl import flags

        if not flags.FLAGS.is_parsed():  # grain reads absl flags; programs without absl.app never parse them
            flags.FLAGS.mark_as_parsed()
        iter_ds = iter_ds.mp_prefetch(grain.MultiprocessingOptions(num_workers=worker_count))
    fingerprint = {
        "name": cfg_data.name,
        "split": split,
        "seed": seed,
        "shard": [shard_index, shard_count],
        "batch_size": batch_size,
        "batches_per_epoch": batches_per_epoch,
        "worker_count": worker_count,
    }
    return LoaderIterator(iter(iter_ds), fingerprint, batches_per_epoch)


def load_subset_indices(path: str, *, name: str | None = None, split: str | None = None) -> list[int]:
    """Record indices from a `select-hq` output (.json with `selected`, or .csv with an `index` column).

    A JSON file made from another dataset or split than (`name`, `split`) is a ValueError.
    """
    if path.endswith(".csv"):
        import csv

        with open(path, newline="") as f:
            return [int(row["index"]) for row in csv.DictReader(f)]
    with open(path) as f:
        data = json.load(f)
    if not isinstance(data.get("selected"), list):
        raise ValueError(f"subset file {path} has no 'selected' list (write it with `emu-video data select-hq`)")
    for field, want in (("dataset", name), ("split", split)):
        if want is not None and data.get(field, want) != want:
            raise ValueError(f"subset file {path} was made from {field} {data[field]!r}, not {want!r}")
    return [int(s["index"]) for s in data["selected"]]


def iterator_checkpoint_args(iterator: grain.DatasetIterator, *, restore: bool = False):
    """Orbax args for the `data` item of a `CheckpointManager` step (grain's handler, JSON per process).

    `manager.save(step, args=ocp.args.Composite(data=iterator_checkpoint_args(it), ...))`;
    restore with `restore=True` and the freshly built iterator as target.
    """
    import grain.checkpoint as gc

    return gc.CheckpointRestore(iterator) if restore else gc.CheckpointSave(iterator)
