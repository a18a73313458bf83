"""TFDS builders (ArrayRecord, no TensorFlow) for video-text data: a local folder of captioned videos.

Builders store the encoded H.264/WebM/... bytes plus per-video metadata (`video_features`), so the
training pipeline decodes real and synthetic data (the demo wing's builder) through one path. Build
parameters are constructor keyword arguments; reading needs only the name and
`data_dir` (`tfds.data_source(name, data_dir=...)`), since TFDS restores the
stored `dataset_info.json`.
"""

from __future__ import annotations

import csv
import json
import logging
import os
import zlib
from typing import Iterator

import numpy as np
import tensorflow_datasets as tfds
from tensorflow_datasets.core import utils as tfds_utils

from emu_jax.data import video_io

log = logging.getLogger(__name__)
VIDEO_EXTENSIONS = (".mp4", ".webm", ".mov", ".mkv")
CAPTION_COLUMNS = ("path", "caption")
SKIP_REPORT = "skipped.json"


def video_features() -> dict:
    """Fields every video-text record carries (the pipeline relies on fps / num_frames); builders may add more."""
    f = tfds.features
    return {
        "key": f.Text(), "video": f.Tensor(shape=(), dtype=np.object_), "caption": f.Text(),
        "fps": f.Scalar(dtype=np.float32), "num_frames": f.Scalar(dtype=np.int32),
        "duration": f.Scalar(dtype=np.float32), "width": f.Scalar(dtype=np.int32),
        "height": f.Scalar(dtype=np.int32),
    }


def video_record(key: str, data: bytes, text: str, info: video_io.VideoInfo) -> dict:
    return {"key": key, "video": data, "caption": text, "fps": info.fps, "num_frames": info.num_frames,
            "duration": info.duration, "width": info.width, "height": info.height}


class LocalBuilder(tfds.core.GeneratorBasedBuilder):
    """Base for builders that download nothing: no checksums file next to the code is looked up
    (TFDS's lookup needs the `importlib_resources` backport, which we do not depend on)."""

    @tfds_utils.classproperty
    @classmethod
    def code_path(cls):
        return None


def read_captions(captions_file: str | os.PathLike) -> list[dict]:
    """Reads caption rows (CSV with a header, or JSONL) -> [{'path', 'caption'}, ...].

    Raises ValueError naming the file and the columns found when `path` or
    `caption` is missing, before any video is touched.
    """
    path = os.fspath(captions_file)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"captions file {path!r} does not exist")
    rows: list[dict] = []
    if path.endswith((".jsonl", ".json")):
        with open(path, encoding="utf-8") as f:
            for n, line in enumerate(f, 1):
                if line.strip():
                    row = json.loads(line)
                    if not isinstance(row, dict) or not all(c in row for c in CAPTION_COLUMNS):
                        raise ValueError(f"{path}:{n}: each JSONL line needs keys {CAPTION_COLUMNS}, got "
                                         f"{sorted(row) if isinstance(row, dict) else type(row).__name__}")
                    rows.append({c: str(row[c]) for c in CAPTION_COLUMNS})
    elif path.endswith((".csv", ".tsv")):
        with open(path, encoding="utf-8", newline="") as f:
            reader = csv.DictReader(f, delimiter="\t" if path.endswith(".tsv") else ",")
            missing = [c for c in CAPTION_COLUMNS if c not in (reader.fieldnames or [])]
            if missing:
                raise ValueError(f"captions file {path} lacks column(s) {missing}; found {reader.fieldnames}; "
                                 f"needs a header with {CAPTION_COLUMNS}")
            rows = [{c: row[c] for c in CAPTION_COLUMNS} for row in reader]
    else:
        raise ValueError(f"captions file {path!r} must end in .csv, .tsv, .jsonl or .json (JSON lines)")
    if not rows:
        raise ValueError(f"captions file {path} has no rows")
    return rows


class VideoTextFolder(LocalBuilder):
    """Videos from a local folder with captions from a CSV / JSONL file (columns `path`, `caption`).

    Every video is fully decoded once while building; corrupt, truncated,
    too-short, unreadable or missing videos are skipped, logged and listed in
    `<data_dir>/video_text_folder/skipped.json`. The build fails with
    ValueError when more than `max_skip_fraction` of the rows are skipped.
    """

    VERSION = tfds.core.Version("1.0.0")

    def __init__(self, *, videos_dir: str | None = None, captions_file: str | None = None,
                 min_clip_seconds: float = 1.0, max_skip_fraction: float = 0.1, test_fraction: float = 0.0,
                 **kwargs):
        if not 0.0 <= max_skip_fraction <= 1.0 or not 0.0 <= test_fraction < 1.0:
            raise ValueError(f"max_skip_fraction must be in [0, 1] and test_fraction in [0, 1), got "
                             f"{max_skip_fraction}, {test_fraction}")
        self._rows = None
        if captions_file is not None:  # Validate columns now, before TFDS creates any directory.
            if videos_dir is None or not os.path.isdir(videos_dir):
                raise FileNotFoundError(f"videos_dir {videos_dir!r} is not a directory")
            self._rows = read_captions(captions_file)
        self._params = dict(videos_dir=videos_dir, captions_file=captions_file, min_clip_seconds=min_clip_seconds,
                            max_skip_fraction=max_skip_fraction, test_fraction=test_fraction)
        self.skipped: list[dict] = []
        super().__init__(**kwargs)

    def _info(self) -> tfds.core.DatasetInfo:
        return tfds.core.DatasetInfo(builder=self, description=self.__doc__,
                                     features=tfds.features.FeaturesDict(video_features()),
                                     metadata=tfds.core.MetadataDict(build=dict(self._params)))

    def _split_generators(self, dl_manager):
        del dl_manager
        if self._rows is None:
            raise ValueError("VideoTextFolder needs videos_dir= and captions_file= to build")
        good = self._check_videos()
        test = [g for g in good if _hash_fraction(g[0]) < self._params["test_fraction"]]
        train = [g for g in good if _hash_fraction(g[0]) >= self._params["test_fraction"]]
        return {"train": self._generate_examples(train), **({"test": self._generate_examples(test)} if test else {})}

    def _check_videos(self) -> list[tuple[str, str, str, video_io.VideoInfo]]:
        """Probes every captioned video; returns the usable ones and writes the skip report."""
        from tqdm import tqdm

        root, good, seen = self._params["videos_dir"], [], set()
        for row in tqdm(self._rows, desc="checking videos", unit="video"):
            rel, full = row["path"], os.path.join(root, row["path"])
            reason = None
            if rel in seen:
                reason = "duplicate caption row"
            elif not os.path.isfile(full):
                reason = "missing file"
            elif not rel.lower().endswith(VIDEO_EXTENSIONS):
                reason = f"unsupported extension (allowed {VIDEO_EXTENSIONS})"
            else:
                try:
                    info = video_io.probe(full)
                    if info.duration < self._params["min_clip_seconds"]:
                        reason = f"too short: {info.duration:.2f} s < {self._params['min_clip_seconds']} s"
                except video_io.VideoDecodeError as e:
                    reason = f"unreadable: {e}"
            seen.add(rel)
            if reason:
                log.warning("skipping %s: %s", full, reason)
                self.skipped.append({"path": rel, "reason": reason})
            else:
                good.append((rel, full, row["caption"], info))
        self._write_skip_report(len(self._rows))
        return good

    def _write_skip_report(self, total: int) -> None:
        fraction = len(self.skipped) / total
        report_dir = os.path.join(os.fspath(self.data_dir_root), self.name)
        os.makedirs(report_dir, exist_ok=True)
        report = os.path.join(report_dir, SKIP_REPORT)
        with open(report, "w") as f:
            json.dump({"total": total, "skipped": len(self.skipped), "fraction": fraction,
                       "files": self.skipped}, f, indent=1)
        log.info("%d of %d videos skipped; report %s", len(self.skipped), total, report)
        if fraction > self._params["max_skip_fraction"]:
            names = ", ".join(s["path"] for s in self.skipped[:5])
            raise ValueError(f"{len(self.skipped)} of {total} videos skipped ({fraction:.0%} > max_skip_fraction="
                             f"{self._params['max_skip_fraction']}), e.g. {names}; see {report}")

    def _generate_examples(self, items) -> Iterator[tuple[str, dict]]:
        for rel, full, text, info in items:
            with open(full, "rb") as f:
                yield rel, video_record(rel, f.read(), text, info)


def _hash_fraction(key: str) -> float:
    """A stable pseudo-random number in [0, 1) per key, for a reproducible test split."""
    return zlib.crc32(key.encode()) / 2**32


def prepare(builder: tfds.core.DatasetBuilder) -> tfds.core.DatasetBuilder:
    """Writes `builder`'s dataset as ArrayRecord (no-op when already prepared) and returns it."""
    builder.download_and_prepare(file_format="array_record")
    return builder
