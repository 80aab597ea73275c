"""Registers the `cuda` marker: tests that need a CUDA GPU (tests/test_cuda.py), skipped without
one; `make gpu-check` runs them with `pytest -m cuda`."""


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "cuda: needs a CUDA GPU; skipped without one (make gpu-check)"
    )
