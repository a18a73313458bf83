"""MetricsWriter: a flushed step is on disk at once (a kill -9 right after a checkpoint loses nothing)."""

import struct

import numpy as np

from emu_jax.training.metrics import MetricsWriter


def _scalars(folder):
    from tensorboardX.proto.event_pb2 import Event

    found = []
    for path in folder.iterdir():
        data, pos = path.read_bytes(), 0
        while pos < len(data):  # TFRecord: u64 length, u32 crc, payload, u32 crc
            (n,) = struct.unpack("<Q", data[pos : pos + 8])
            event = Event.FromString(data[pos + 12 : pos + 12 + n])
            pos += 16 + n
            found += [(event.step, v.tag, v.simple_value) for v in event.summary.value]
    return found


def test_flushed_steps_are_in_the_event_file_before_close(tmp_path):
    writer = MetricsWriter(tmp_path, total_steps=10, global_batch=4, progress=False)
    for step in range(3):
        writer.write([{"step": step, "loss": 1.0 / (step + 1), "grad_norm": 0.5, "lr": 1e-4, "finite": True}])
    writer.flush()  # no close: the process may be killed now
    losses = [(s, v) for s, tag, v in _scalars(tmp_path / "tensorboard") if tag == "train/loss"]
    assert losses == [(1, 1.0), (2, 0.5), (3, np.float32(1.0 / 3))], losses
    assert [r for r in (tmp_path / "metrics.jsonl").read_text().splitlines()][-1].startswith('{"step": 3')
    writer.close()
