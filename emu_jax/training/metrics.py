"""Training metrics: JSON lines + TensorBoard on process 0, a progress bar on a terminal.

Device metrics are fetched in one transfer per logging window, so the train
loop never blocks on the host between steps.
"""

from __future__ import annotations

import json
import os
import pathlib
import sys
import time
from typing import Sequence

import jax
import numpy as np

from emu_jax.errors import RunError


class NonFiniteError(RunError, FloatingPointError):
    """A loss or gradient norm was NaN / Inf; the state of that step was not kept."""


def check_finite(window: Sequence[dict]) -> None:
    """Raise naming the first step whose loss or gradient norm was not finite."""
    for m in window:
        if not bool(m["finite"]):
            raise NonFiniteError(
                f"non-finite loss ({float(m['loss'])}) or gradient norm ({float(m['grad_norm'])}) "
                f"at step {int(m['step']) + 1}: stopping; the last checkpoint precedes this step and "
                "this step's update was discarded"
            )


class _EventFile:
    """A TensorBoard event file written synchronously: tensorboardX's SummaryWriter queues events for a
    thread, so its flush() at a checkpoint could miss the newest steps, and a kill then lost them."""

    def __init__(self, logdir: pathlib.Path, purge_step: int):
        from tensorboardX.event_file_writer import EventsWriter
        from tensorboardX.proto.event_pb2 import Event, SessionLog
        from tensorboardX.summary import scalar

        self._event, self._scalar = Event, scalar
        logdir.mkdir(parents=True, exist_ok=True)
        self._file = EventsWriter(str(logdir / "events"))
        start = Event(wall_time=time.time(), step=purge_step, session_log=SessionLog(status=SessionLog.START))
        self._file.write_event(start)

    def add_scalars(self, values: dict[str, float], step: int) -> None:
        for tag, value in values.items():
            self._file.write_event(self._event(wall_time=time.time(), step=step, summary=self._scalar(tag, value)))

    def flush(self) -> None:
        self._file.flush()

    def close(self) -> None:
        self._file.close()


class MetricsWriter:
    """Writes per-window means to `workdir/metrics.jsonl` and TensorBoard."""

    def __init__(
        self,
        workdir: str | pathlib.Path,
        total_steps: int,
        global_batch: int,
        start_step: int = 0,
        progress: bool | None = None,
    ):
        self.is_main = jax.process_index() == 0
        self.path = pathlib.Path(workdir) / "metrics.jsonl"
        self.global_batch = global_batch
        self.total = total_steps
        self._t0, self._step0 = time.perf_counter(), start_step
        self._tb = None
        self._bar = None
        if self.is_main:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            truncate_jsonl(self.path, start_step)  # rows a killed run logged after its last checkpoint
            try:
                # purge_step: TensorBoard hides a killed run's events after the step resumed from.
                self._tb = _EventFile(pathlib.Path(workdir) / "tensorboard", purge_step=start_step + 1)
            except ImportError:  # TensorBoard is optional; JSON lines always work.
                self._tb = None
            show = sys.stderr.isatty() if progress is None else progress
            if show:
                from tqdm import tqdm

                self._bar = tqdm(total=total_steps, initial=start_step, desc="train", unit="step")

    def write(self, window: Sequence[dict]) -> dict:
        """Log the mean of a window of per-step metrics (already fetched to host)."""
        last = int(window[-1]["step"]) + 1
        now = time.perf_counter()
        steps_per_s = (last - self._step0) / max(now - self._t0, 1e-9)
        self._t0, self._step0 = now, last
        row = {"step": last}
        for k in window[0]:
            if k in ("step", "finite"):
                continue
            row[k] = float(np.mean([float(m[k]) for m in window]))
        row["steps_per_s"] = steps_per_s
        row["examples_per_s"] = steps_per_s * self.global_batch
        if self.is_main:
            with self.path.open("a") as f:
                f.write(json.dumps(row) + "\n")
            if self._tb is not None:
                self._tb.add_scalars({f"train/{k}": v for k, v in row.items() if k != "step"}, last)
            if self._bar is not None:
                self._bar.n = last
                self._bar.set_postfix(loss=f"{row['loss']:.4f}", refresh=False)
                self._bar.refresh()
            else:
                print(
                    f"step {last}/{self.total} loss {row['loss']:.4f} grad_norm {row['grad_norm']:.3f} "
                    f"lr {row['lr']:.2e} {steps_per_s:.2f} steps/s",
                    flush=True,
                )
        return row

    def flush(self) -> None:
        """Put buffered TensorBoard events on disk: called at each checkpoint, so a kill loses none before it."""
        if self._tb is not None:
            self._tb.flush()

    def close(self) -> None:
        if self._tb is not None:
            self._tb.close()
        if self._bar is not None:
            self._bar.close()


def truncate_jsonl(path: pathlib.Path, last_step: int) -> int:
    """Drop rows with step > `last_step` (atomically: a kill leaves the old or the new file); -> rows dropped."""
    if not path.exists():
        return 0
    text = path.read_text()
    lines = text.splitlines(keepends=True)
    keep = []
    for line in lines:
        try:
            step = json.loads(line)["step"]
        except (ValueError, KeyError, TypeError):  # a line cut short by the kill
            continue
        if step <= last_step:
            keep.append(line if line.endswith("\n") else line + "\n")
    if "".join(keep) != text:
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_text("".join(keep))
        os.replace(tmp, path)
    return len(lines) - len(keep)


def fetch(window: Sequence[dict]) -> list[dict]:
    """One device->host transfer for a whole window of metrics."""
    return jax.device_get(list(window))
