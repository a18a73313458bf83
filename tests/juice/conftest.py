"""Fixtures for the JUICE tests (helpers live in juice_helpers.py)."""

from __future__ import annotations

import os

import pytest

from juice_helpers import PROMPTS, write_samples


@pytest.fixture(scope="session")
def sample_dirs(tmp_path_factory):
    """(dir_a, dir_b) with the same 4 prompts; b is nested one folder per item and has GIFs."""
    root = tmp_path_factory.mktemp("juice_samples")
    a, b = str(root / "sys_a"), str(root / "sys_b")
    write_samples(a, PROMPTS, (200, 30, 30))
    write_samples(b, PROMPTS, (30, 30, 200), nested=True, gif=True)
    return a, b


@pytest.fixture
def make_study(tmp_path, sample_dirs):
    """Factory: a fresh study database over `sample_dirs`; returns (db_path, summary)."""
    from emu_jax.juice.study import create_study

    def make(**kw):
        path = str(tmp_path / f"study_{len(os.listdir(tmp_path))}.db")
        kw.setdefault("raters_per_pair", 3)
        kw.setdefault("names", ("Emu", "Base"))
        return path, create_study(path, *sample_dirs, **kw)

    return make
