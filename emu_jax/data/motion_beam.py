"""`select-hq --beam`: motion scores computed in Beam workers, joined by key with the CLIP / aesthetic score
files, decided with the same rules as the serial `motion.select` (same selection, same scores).

Workers open the prepared dataset themselves (`tfds.data_source`), so only
indices travel through the pipeline; on a cluster runner `data_dir` must be
readable by every worker (e.g. a gs:// path).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from typing import Mapping

from emu_jax.data import beam as beam_lib
from emu_jax.data import motion

try:  # A module-level DoFn pickles by reference; without Beam the module still imports (select then fails).
    from apache_beam import DoFn as _DoFnBase
except ImportError:
    _DoFnBase = object


class _ScoreDoFn(_DoFnBase):
    """Scores dataset rows by index; the data source is opened once per worker (in `setup`)."""

    def __init__(self, dataset: str, data_dir: str, split: str, window: int):
        self._args, self._window, self._source = (dataset, data_dir, split), window, None

    def setup(self):
        from emu_jax.data import pipeline

        self._source = pipeline.open_source(*self._args)

    def process(self, index: int):
        record = self._source[index]
        yield motion.score_item((index, record["key"].decode(), record["video"]), self._window)


def _decide_joined(joined, thresholds: dict) -> list[dict]:
    key, groups = joined
    clip, aesthetic = list(groups["clip"]), list(groups["aesthetic"])
    return [
        motion.decide(key, scored, thresholds, clip[0] if clip else None, aesthetic[0] if aesthetic else None)
        for scored in groups["motion"]
    ]  # keys without a video (only in a score file) yield nothing


def select(
    *,
    dataset: str,
    data_dir: str,
    split: str,
    num_records: int,
    options,
    motion_threshold: float = 0.5,
    clip_scores: Mapping[str, float] | None = None,
    clip_threshold: float = 0.25,
    aesthetic_scores: Mapping[str, float] | None = None,
    aesthetic_threshold: float = 5.7,
    window: int = motion.WINDOW,
    temp_dir: str | None = None,
) -> dict:
    """`motion.select` over records 0..num_records-1 of a prepared dataset, as a Beam pipeline on `options`.

    Decisions go through text files under `temp_dir` (default: a local
    temporary folder; give a shared path on a cluster runner), read back here.
    """
    beam = beam_lib.require_beam()
    thresholds = motion.thresholds_of(
        motion_threshold=motion_threshold,
        window=window,
        clip_threshold=clip_threshold if clip_scores is not None else None,
        aesthetic_threshold=aesthetic_threshold if aesthetic_scores is not None else None,
    )
    own_temp = temp_dir is None
    temp_dir = tempfile.mkdtemp(prefix="select_hq_") if own_temp else temp_dir
    prefix = os.path.join(temp_dir, "decisions")
    score_fn = _ScoreDoFn(dataset, data_dir, split, window)
    try:
        with beam.Pipeline(options=options) as p:
            scored = (
                p
                | "Indices" >> beam.Create(range(num_records))
                | "Spread" >> beam.Reshuffle()
                | "Score" >> beam.ParDo(score_fn)
            )
            clip = p | "Clip" >> beam.Create(sorted((clip_scores or {}).items()))
            aesthetic = p | "Aesthetic" >> beam.Create(sorted((aesthetic_scores or {}).items()))
            _ = (
                {"motion": scored, "clip": clip, "aesthetic": aesthetic}
                | "Join" >> beam.CoGroupByKey()
                | "Decide" >> beam.FlatMap(_decide_joined, thresholds)
                | "Json" >> beam.Map(json.dumps)
                | "Write" >> beam.io.WriteToText(prefix, file_name_suffix=".jsonl")
            )
        from apache_beam.io.filesystems import FileSystems

        decisions = []
        for m in FileSystems.match([prefix + "*"])[0].metadata_list:
            with FileSystems.open(m.path) as f:
                decisions += [json.loads(line) for line in f.read().decode().splitlines() if line.strip()]
    finally:
        if own_temp:
            shutil.rmtree(temp_dir, ignore_errors=True)
    return motion.summarise(decisions, thresholds)
