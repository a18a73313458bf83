"""TFDS builders (ArrayRecord, no TensorFlow) for video-text data: a local folder of captioned videos.

Builders store the encoded H.264/WebM/... bytes plus per-video metadata (`video_features`), so the
training pipeline decodes real and synthetic data (the demo wing's builder) through one path. Build
parameters are constructor keyword arguments; reading needs only the name and
`data_dir` (`tfds.data_source(name, data_dir=...)`), since TFDS restores the
stored `dataset_info.json`.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import shutil
import zlib

import numpy as np
import tensorflow_datasets as tfds
from tensorflow_datasets.core import utils as tfds_utils

from emu_jax.data import beam as beam_lib
from emu_jax.data import video_io
from emu_jax.data.captions import CAPTION_COLUMNS, read_captions  # noqa: F401  (public here since 1.0)
from emu_jax.errors import UserError

log = logging.getLogger(__name__)
VIDEO_EXTENSIONS = (".mp4", ".webm", ".mov", ".mkv")
SKIP_REPORT = "skipped.json"


def video_features() -> dict:
    """Fields every video-text record carries (the pipeline relies on fps / num_frames); builders may add more."""
    f = tfds.features
    return {
        "key": f.Text(),
        "video": f.Tensor(shape=(), dtype=np.object_),
        "caption": f.Text(),
        "fps": f.Scalar(dtype=np.float32),
        "num_frames": f.Scalar(dtype=np.int32),
        "duration": f.Scalar(dtype=np.float32),
        "width": f.Scalar(dtype=np.int32),
        "height": f.Scalar(dtype=np.int32),
    }


def video_record(key: str, data: bytes, text: str, info: video_io.VideoInfo) -> dict:
    return {
        "key": key,
        "video": data,
        "caption": text,
        "fps": info.fps,
        "num_frames": info.num_frames,
        "duration": info.duration,
        "width": info.width,
        "height": info.height,
    }


class TooManySkipped(UserError):
    """More rows were unusable than `max_skip_fraction` allows; the dataset was not kept (one line, exit 2)."""


class LocalBuilder(tfds.core.GeneratorBasedBuilder):
    """Base for builders that download nothing: no checksums file next to the code is looked up
    (TFDS's lookup needs the `importlib_resources` backport, which we do not depend on)."""

    _beam_options = None  # set by `prepare(..., beam_options=...)`: examples then come from a Beam pipeline

    @tfds_utils.classproperty
    @classmethod
    def code_path(cls):
        return None

    def _examples(self, split: str, items, fn):
        """`fn(item) -> (key, example) | beam.Skipped` over `items`, serially or as a Beam transform."""
        self.skipped = getattr(self, "skipped", [])
        return beam_lib.examples(
            items,
            fn,
            use_beam=self._beam_options is not None,
            skipped=self.skipped,
            skips_prefix=self._skips_prefix(split),
            label=f"{split}_",
        )

    def _skips_prefix(self, split: str) -> str:
        return os.path.join(os.fspath(self.data_dir_root), self.name, "beam-skips.tmp", split)

    def _finish_build(self) -> None:
        """Runs after a build that wrote data (VideoTextFolder writes its skip report here)."""


class VideoTextFolder(LocalBuilder):
    """Videos from a local folder with captions from a CSV / JSONL file (columns `path`, `caption`).

    The captions file is validated when the builder is made (before any
    video is probed). Every video is fully decoded once while building;
    corrupt, truncated, too-short, unreadable or missing videos are skipped,
    logged and listed in `<data_dir>/video_text_folder/skipped.json`. The
    build fails with ValueError (and keeps no dataset) when more than
    `max_skip_fraction` of the rows are skipped.
    """

    VERSION = tfds.core.Version("1.0.0")

    def __init__(
        self,
        *,
        videos_dir: str | None = None,
        captions_file: str | None = None,
        min_clip_seconds: float = 1.0,
        max_skip_fraction: float = 0.1,
        test_fraction: float = 0.0,
        **kwargs,
    ):
        if not 0.0 <= max_skip_fraction <= 1.0 or not 0.0 <= test_fraction < 1.0:
            raise ValueError(
                f"max_skip_fraction must be in [0, 1] and test_fraction in [0, 1), got "
                f"{max_skip_fraction}, {test_fraction}"
            )
        self._rows = None
        if captions_file is not None:  # Validate the rows now, before TFDS creates any directory.
            if videos_dir is None or not os.path.isdir(videos_dir):
                raise FileNotFoundError(f"videos_dir {videos_dir!r} is not a directory")
            self._rows = read_captions(captions_file, videos_dir)
        self._params = dict(
            videos_dir=videos_dir,
            captions_file=captions_file,
            min_clip_seconds=min_clip_seconds,
            max_skip_fraction=max_skip_fraction,
            test_fraction=test_fraction,
        )
        self.skipped: list[beam_lib.Skipped] = []
        super().__init__(**kwargs)

    def _info(self) -> tfds.core.DatasetInfo:
        return tfds.core.DatasetInfo(
            builder=self,
            description=self.__doc__,
            features=tfds.features.FeaturesDict(video_features()),
            metadata=tfds.core.MetadataDict(build=dict(self._params)),
        )

    def _split_generators(self, dl_manager):
        del dl_manager
        if self._rows is None:
            raise ValueError("VideoTextFolder needs videos_dir= and captions_file= to build")
        self.skipped, items, seen = [], {"train": [], "test": []}, set()
        for index, row in enumerate(self._rows):
            rel = row["path"]
            if rel in seen:  # known from the rows alone, so decided here rather than in a worker
                self.skipped.append(beam_lib.Skipped(index, rel, "duplicate caption row"))
                continue
            seen.add(rel)
            split = "test" if _hash_fraction(rel) < self._params["test_fraction"] else "train"
            items[split].append((index, rel, row["caption"]))
        return {
            split: self._generate_examples(split, rows) for split, rows in items.items() if rows or split == "train"
        }

    def _generate_examples(self, split: str, items):
        return self._examples(
            split,
            items,
            functools.partial(
                load_video_item,
                videos_dir=self._params["videos_dir"],
                min_clip_seconds=self._params["min_clip_seconds"],
            ),
        )

    def _finish_build(self) -> None:
        if self._beam_options is not None:
            self.skipped += beam_lib.read_skips(os.path.dirname(self._skips_prefix("train")) + os.sep)
        self.skipped.sort(key=lambda s: s.index)
        total = len(self._rows)
        fraction = len(self.skipped) / total
        report = os.path.join(os.fspath(self.data_dir_root), self.name, SKIP_REPORT)
        with open(report, "w") as f:
            json.dump(
                {
                    "total": total,
                    "skipped": len(self.skipped),
                    "fraction": fraction,
                    "files": [{"path": s.path, "reason": s.reason} for s in self.skipped],
                },
                f,
                indent=1,
            )
        for s in self.skipped:
            log.warning("skipped %s: %s", s.path, s.reason)
        log.info("%d of %d videos skipped; report %s", len(self.skipped), total, report)
        if fraction > self._params["max_skip_fraction"]:
            shutil.rmtree(os.fspath(self.data_dir))  # a build over the limit keeps no dataset
            names = ", ".join(s.path for s in self.skipped[:5])
            raise TooManySkipped(
                f"{len(self.skipped)} of {total} videos skipped ({fraction:.0%} > max_skip_fraction="
                f"{self._params['max_skip_fraction']}), e.g. {names}; see {report}"
            )


def load_video_item(item: tuple[int, str, str], *, videos_dir: str, min_clip_seconds: float):
    """`(row index, relative path, caption)` -> `(key, record)`, or a `beam.Skipped` saying why not.

    The one per-video step of a build (probe, check, read), run in this process
    or in Beam workers.
    """
    index, rel, text = item
    full = os.path.join(videos_dir, rel)
    if not os.path.isfile(full):
        return beam_lib.Skipped(index, rel, "missing file")
    if not rel.lower().endswith(VIDEO_EXTENSIONS):
        return beam_lib.Skipped(index, rel, f"unsupported extension (allowed {VIDEO_EXTENSIONS})")
    try:
        info = video_io.probe(full)
    except video_io.VideoDecodeError as e:
        return beam_lib.Skipped(index, rel, f"unreadable: {e}")
    if info.duration < min_clip_seconds:
        return beam_lib.Skipped(index, rel, f"too short: {info.duration:.2f} s < {min_clip_seconds} s")
    with open(full, "rb") as f:
        return rel, video_record(rel, f.read(), text, info)


def _hash_fraction(key: str) -> float:
    """A stable pseudo-random number in [0, 1) per key, for a reproducible test split."""
    return zlib.crc32(key.encode()) / 2**32


def prepare(builder: tfds.core.DatasetBuilder, beam_options=None) -> tfds.core.DatasetBuilder:
    """Writes `builder`'s dataset as ArrayRecord (no-op when already prepared) and returns it.

    With `beam_options` (`beam.pipeline_options(...)`) a `LocalBuilder` makes
    its examples in a Beam pipeline on that runner. The empty `downloads`
    folder TFDS creates (nothing is downloaded) is removed afterwards.
    """
    if builder.is_prepared():
        return builder
    config = None
    if beam_options is not None:
        builder._beam_options = beam_options
        if isinstance(builder, LocalBuilder):  # skips a failed earlier run left must not join this report
            shutil.rmtree(os.path.dirname(builder._skips_prefix("train")), ignore_errors=True)
        config = tfds.download.DownloadConfig(beam_options=beam_options)
    try:
        builder.download_and_prepare(file_format="array_record", download_config=config)
        if isinstance(builder, LocalBuilder):
            builder._finish_build()
    finally:
        _remove_empty_dirs(os.path.join(os.fspath(builder.data_dir_root), "downloads"))
        if isinstance(builder, LocalBuilder):
            _remove_empty_dirs(os.path.dirname(builder._skips_prefix("train")))
    return builder


def _remove_empty_dirs(root: str) -> None:
    """Deletes `root` and its sub-folders when they hold no file (never a file)."""
    if not os.path.isdir(root):
        return
    for dirpath, _, _ in sorted(os.walk(root), key=lambda w: -len(w[0])):
        try:
            os.rmdir(dirpath)
        except OSError:
            pass  # not empty: something else lives there
