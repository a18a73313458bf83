"""Learning-rate schedules: SPEC's warm-up then constant, and the optional cosine decay."""

import ml_collections
import pytest

from emu_jax.training.optim import make_optimizer


def _opt(**kw):
    base = dict(lr=1e-3, warmup_steps=10, b1=0.9, b2=0.999, eps=1e-8, weight_decay=0.0, grad_clip=1.0)
    return ml_collections.ConfigDict({**base, **kw})


def test_constant_and_cosine_schedules():
    _, const = make_optimizer(_opt(), 100)
    assert [float(const(s)) for s in (0, 5, 10, 99)] == pytest.approx([0.0, 5e-4, 1e-3, 1e-3])
    _, cos = make_optimizer(_opt(decay="cosine", end_lr_ratio=0.1), 100)
    assert float(cos(5)) == pytest.approx(5e-4) and float(cos(10)) == pytest.approx(1e-3)
    assert float(cos(55)) == pytest.approx(1e-3 * (0.1 + 0.9 * 0.5), rel=1e-5)  # half-way down the cosine
    assert float(cos(100)) == pytest.approx(1e-4, rel=1e-5)
    lrs = [float(cos(s)) for s in range(10, 101)]
    assert all(a >= b for a, b in zip(lrs, lrs[1:]))


def test_bad_schedules_are_named():
    with pytest.raises(ValueError, match="decay='linear' is not one of"):
        make_optimizer(_opt(decay="linear"), 100)
    with pytest.raises(ValueError, match=r"train.steps \(10\) > warmup_steps \(10\)"):
        make_optimizer(_opt(decay="cosine"), 10)
    with pytest.raises(ValueError, match="lr must be > 0"):
        make_optimizer(_opt(lr=0.0), 100)
