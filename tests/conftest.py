"""Shared by every test module: the `cuda` marker and the training tests' two fixtures.

Tests that need a CUDA GPU (tests/test_cuda.py) are marked `cuda` and skipped without one;
`make gpu-check` runs them with `pytest -m cuda`. `corpus` and `work_dir` give each test module
a generated corpus and a work folder for its tokenizer and token ids (a module may define its
own instead).
"""

import pytest
from training_helpers import make_corpus


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "cuda: needs a CUDA GPU; skipped without one (make gpu-check)"
    )


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return make_corpus(tmp_path_factory.mktemp("corpus") / "corpus.txt")


@pytest.fixture(scope="module")
def work_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("work")
