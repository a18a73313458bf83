"""Helpers shared by tests in several folders (a uniquely named module: every folder's
conftest.py is a module called `conftest`, so importing helpers from it is ambiguous)."""

import json
import pathlib

REPO = pathlib.Path(__file__).resolve().parent.parent

# Simulated CPU devices share 2 cores. With multi-threaded Eigen, a device's convolution
# finishes on the shared pool and its collectives then wait there; when every pool thread is
# parked in a rendezvous the other devices never arrive (seen as a hang, then XLA's abort).
# Single-threaded Eigen keeps each device on its own thread; the timeouts allow slow machines.
PATIENT_COLLECTIVES = (
    "--xla_cpu_multi_thread_eigen=false "
    "--xla_cpu_collective_call_terminate_timeout_seconds=1200 "
    "--xla_cpu_collective_timeout_seconds=1200"
)


def xla_flags(devices: int) -> str:
    """XLA_FLAGS for a (sub)process with `devices` simulated CPU devices."""
    return f"--xla_force_host_platform_device_count={devices} {PATIENT_COLLECTIVES}"


def tiny_config(data_dir: str, task: str = "t2v", **overrides):
    """configs/tiny.py for `task` reading `data_dir`, with dotted overrides (`train__steps=3`)."""
    from emu_jax.config import apply_override, load_config

    cfg = load_config(str(REPO / "configs" / "tiny.py") + ":" + task)
    cfg.data.data_dir = data_dir
    for key, value in overrides.items():
        apply_override(cfg, key.replace("__", "."), str(value))
    return cfg


def write_clip_tokenizer(folder) -> dict:
    """A tiny CLIP vocab.json / merges.txt in `folder`: letters, word-final letters, a few merges,
    bos/eos. Returns the vocabulary."""
    letters = "abcdefghijklmnopqrstuvwxyz"
    vocab = {c: i for i, c in enumerate(letters)}
    vocab.update({c + "</w>": 26 + i for i, c in enumerate(letters)})
    merges = ["a t</w>", "c at</w>", "t h", "th e</w>", "d o", "do g</w>"]
    for m in merges:
        vocab["".join(m.split())] = len(vocab)
    vocab["<|startoftext|>"] = len(vocab)
    vocab["<|endoftext|>"] = len(vocab)
    folder = pathlib.Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "vocab.json").write_text(json.dumps(vocab))
    (folder / "merges.txt").write_text("#version: 0.2\n" + "\n".join(merges) + "\n")
    return vocab
