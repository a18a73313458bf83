"""Session fixtures for the sampling tests: one tiny random F and I model (helpers in sampling_helpers.py)."""

import pytest

from sampling_helpers import tiny_model


@pytest.fixture(scope="session")
def f_model():
    return tiny_model("t2v", 0)


@pytest.fixture(scope="session")
def i_model():
    return tiny_model("interp", 1)
