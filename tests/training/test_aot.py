"""emu-video aot: slice names -> libtpu topologies, the batch search, errors before compiling,
and (where libtpu is installed) a real TPU compile of the tiny config from this CPU host."""

import argparse
import importlib.util

import pytest

from emu_jax.training import aot, tpu_topology

HAS_LIBTPU = importlib.util.find_spec("libtpu") is not None


@pytest.mark.parametrize(
    "name, libtpu_name, chips",
    [
        ("v5p-8", "v5p:2x2x1", 4),
        ("v5p-128", "v5p:4x4x4", 64),
        ("v5p-256", "v5p:4x4x8", 128),
        ("v4-32", "v4:2x2x4", 16),
        ("v5e-256", "v5e:16x16", 256),
        ("v5litepod-8", "v5e:2x4", 8),
        ("v6e-64", "v6e:8x8", 64),
        ("v5p:2x2x2", "v5p:2x2x2", 8),
    ],
)
def test_topology_names(name, libtpu_name, chips):
    topo = tpu_topology.resolve_topology(name)
    assert (topo.libtpu_name, topo.num_chips) == (libtpu_name, chips)


@pytest.mark.parametrize(
    "name, match",
    [("v9-8", "unknown TPU topology"), ("v5p-12", "power of two"), ("v5p-7", "even"), ("v5e:2x2x2", "2 torus dims")],
)
def test_bad_topology_names(name, match):
    with pytest.raises(ValueError, match=match):
        tpu_topology.resolve_topology(name)


def _fake_report(b, limit):
    return aot.AotReport("fake", 1, {}, b, b, "none", 0, 0, b * 10, 0, limit * 10, 1.0)


@pytest.mark.parametrize("start, limit", [(1, 13), (8, 5), (4, 64), (2, 0)])
def test_find_max_batch_doubles_then_bisects(start, limit):
    best, tried = aot.find_max_batch(lambda b: _fake_report(b, limit), start=start, limit=256)
    assert best == limit
    assert len(tried) <= 2 * (limit.bit_length() + start.bit_length()) + 2  # not a linear scan


def test_find_max_batch_treats_compile_oom_as_too_big():
    best, _ = aot.find_max_batch(lambda b: None if b > 6 else _fake_report(b, 100), start=1)
    assert best == 6


def _args(**kw):
    base = dict(
        config="configs/tiny.py:t2v",
        config_overrides=[],
        topology="v5p-8",
        per_chip_batch=1,
        remat=None,
        input="latents",
        find_max_batch=False,
        json=None,
        microbatches=None,
    )
    return argparse.Namespace(**{**base, **kw})


@pytest.mark.parametrize(
    "kw, match",
    [
        (dict(topology="v5q-8"), "unknown TPU topology"),
        (dict(per_chip_batch=0), "per-chip-batch"),
        (dict(config_overrides=[("train.nope", "1")]), "train.nope"),
        (dict(microbatches=0), "--microbatches must be >= 1"),
        # v5p-8 = 4 chips, 3 clips each: 3 per data shard does not split in 2.
        (dict(per_chip_batch=3, microbatches=2), "train.microbatches=2 does not divide the per-data-shard batch"),
    ],
)
def test_bad_arguments_fail_before_compiling(kw, match, capsys):
    assert aot.main(_args(**kw)) == 2
    assert match in capsys.readouterr().err


def test_report_ratio_and_roofline():
    """compiled / model FLOPs and the roofline bound from hand-picked numbers (v5p: 459 TFLOP/s, 2765 GB/s)."""
    chip = tpu_topology.resolve_topology("v5p-8").chip
    r = aot.AotReport(
        "v5p-8",
        4,
        {},
        4,
        1,
        "full",
        0,
        0,
        10 * aot.GiB,
        0,
        95 * aot.GiB,
        flops=3.0e12,
        kernel_flops=1.0e12,
        model_flops=3.0e12,
        bytes_accessed=2.765e12,
        peak_flops_per_s=chip.peak_tflops_bf16 * 1e12,
        hbm_bytes_per_s=chip.hbm_gb_per_s * 1e9,
    )
    assert r.compiled_flops == 4.0e12 and r.flops_ratio == pytest.approx(4 / 3)
    assert r.roofline_seconds == pytest.approx(1.0)  # HBM-bound: 2.765 TB at 2.765 TB/s > 4e12 / 459e12 s
    assert r.roofline_mfu == pytest.approx(3.0e12 / 459e12)
    summary = r.summary()
    assert summary["hbm_fraction"] == pytest.approx(10 / 95) and summary["flops_ratio"] == pytest.approx(4 / 3)
    assert "compiled / model = 1.33" in r.table()


def test_missing_libtpu_says_how_to_install(monkeypatch, capsys):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda n, *a: None if n == "libtpu" else real(n, *a))
    assert aot.main(_args()) == 2
    assert "pip install -e .[tpu]" in capsys.readouterr().err


@pytest.mark.slow
@pytest.mark.skipif(not HAS_LIBTPU, reason="libtpu not installed (pip install -e .[tpu]); CI installs .[test] only")
def test_tiny_train_step_compiles_for_tpu(tmp_path, capsys):
    out = tmp_path / "aot.json"
    assert aot.main(_args(topology="v5p:2x2x1", json=str(out))) == 0
    import json

    report = json.loads(out.read_text())["reports"][0]
    assert report["devices"] == 4 and report["global_batch"] == 4
    for key in (
        "argument_bytes",
        "output_bytes",
        "temp_bytes",
        "flops",
        "compile_seconds",
        "model_flops",
        "bytes_accessed",
        "roofline_seconds",
    ):
        assert report[key] > 0, key
    assert report["fits"] and report["total_bytes"] < report["hbm_bytes"]
    # The tiny model's convs are mostly padding at 4x4 latents (XLA counts in-bounds taps only) and
    # its norms / elementwise ops weigh more than at full size: only a loose band here.
    assert 0.3 < report["flops_ratio"] < 3, report["flops_ratio"]
    assert report["peak_flops_per_s"] == 459e12 and report["microbatches"] == 1
    out_text = capsys.readouterr().out
    assert "FLOPs per step" in out_text and "roofline" in out_text


@pytest.mark.slow  # a TPU compile of the tiny step from the CPU
@pytest.mark.skipif(not HAS_LIBTPU, reason="libtpu not installed (pip install -e .[tpu]); CI installs .[test] only")
def test_tiny_train_step_with_microbatches_compiles_for_tpu(tmp_path):
    """Memory follows the microbatch; the step's FLOPs do not (cost_analysis counts the scan body once,
    so the report scales it by the microbatch count)."""
    import json

    reports = {}
    for mb in (1, 2):
        out = tmp_path / f"aot{mb}.json"
        assert aot.main(_args(topology="v5p:2x2x1", per_chip_batch=2, microbatches=mb, json=str(out))) == 0
        reports[mb] = json.loads(out.read_text())["reports"][0]
    one, two = reports[1], reports[2]
    assert two["microbatches"] == 2 and two["global_batch"] == 8 and two["fits"]
    assert two["temp_bytes"] < one["temp_bytes"]
    assert two["model_flops"] == one["model_flops"]
    assert abs(two["flops"] / one["flops"] - 1) < 0.01, (two["flops"], one["flops"])


@pytest.mark.slow  # a TPU compile of the tiny step from the CPU
@pytest.mark.skipif(not HAS_LIBTPU, reason="libtpu not installed (pip install -e .[tpu]); CI installs .[test] only")
def test_offload_remat_puts_residuals_in_host_memory(tmp_path):
    out = tmp_path / "aot.json"
    assert aot.main(_args(topology="v5p:2x2x1", remat="offload", json=str(out))) == 0
    import json

    report = json.loads(out.read_text())["reports"][0]
    assert report["remat"] == "offload" and report["host_temp_bytes"] > 0
