"""CUDA-only tests: the GPU chapter's code paths on a real GPU. Marked `cuda` and skipped
without one; `make gpu-check` (benchmarks/gpu_check.py) runs them where a GPU is at hand.

fp16 autocast + GradScaler and bf16 training, SDPA's fused kernels against attention written
out, exact resume on CUDA, and the model's CUDA logits against its CPU logits."""

from __future__ import annotations

import contextlib
import math
import os

import pytest
import torch
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel
from training_helpers import comparable, make_corpus, tiny_config

from gpt1_lib.attention import manual_attention
from gpt1_lib.checkpoint import LAST, read_checkpoint
from gpt1_lib.model import GPT, GPTConfig
from gpt1_lib.train import read_metrics, train

# Strict determinism (the resume test) needs cuBLAS's deterministic workspace setting, read when
# cuBLAS starts in this process: set at collection, before any test runs (a 32 MiB workspace).
os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")

pytestmark = [
    pytest.mark.cuda,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU"),
]


def capability() -> tuple[int, int]:
    return torch.cuda.get_device_capability()


@pytest.fixture
def corpus(tmp_path):
    return make_corpus(tmp_path / "corpus.txt")


@pytest.fixture
def full_fp32():
    """Plain fp32 matmuls (no TF32, which the trainer turns on from sm_80) for a CPU comparison."""
    saved = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    yield
    torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved


@pytest.fixture
def deterministic():
    """Deterministic kernels, strictly: the CUDA Embedding backward otherwise adds with atomics,
    and flash / memory-efficient attention keep a non-deterministic backward under warn_only."""
    enabled = torch.are_deterministic_algorithms_enabled()
    warn_only = torch.is_deterministic_algorithms_warn_only_enabled()
    torch.use_deterministic_algorithms(True)
    yield
    torch.use_deterministic_algorithms(enabled, warn_only=warn_only)


def losses(run_dir) -> list[float]:
    return [r["train_loss"] for r in read_metrics(run_dir)]


def test_fp16_autocast_with_gradscaler_trains_finitely(corpus, tmp_path):
    config = tiny_config(corpus, device="cuda", dtype="float16", max_steps=12)
    summary = train(config, tmp_path / "run", progress=False, work_dir=tmp_path / "work")
    assert summary["device"].startswith("cuda") and summary["dtype"] == "float16"
    assert len(losses(tmp_path / "run")) == 12 and all(map(math.isfinite, losses(tmp_path / "run")))
    assert losses(tmp_path / "run")[-1] < losses(tmp_path / "run")[0]
    scaler = read_checkpoint(tmp_path / "run" / LAST)["scaler"]
    assert scaler is not None and scaler["scale"] > 0  # the GradScaler ran and was saved


def test_bf16_trains_finitely_on_sm80_and_up(corpus, tmp_path):
    if capability() < (8, 0):
        pytest.skip(f"sm_{capability()[0]}{capability()[1]} has no fast bf16")
    config = tiny_config(corpus, device="cuda", dtype="bfloat16", max_steps=12)
    summary = train(config, tmp_path / "run", progress=False, work_dir=tmp_path / "work")
    assert summary["dtype"] == "bfloat16"
    assert all(map(math.isfinite, losses(tmp_path / "run")))
    assert read_checkpoint(tmp_path / "run" / LAST)["scaler"] is None  # bf16 needs no scaler


def test_bf16_asked_below_sm80_trains_in_fp16(corpus, tmp_path):
    if capability() >= (8, 0):
        pytest.skip("this GPU has fast bf16")
    config = tiny_config(corpus, device="cuda", dtype="bfloat16", max_steps=4)
    summary = train(config, tmp_path / "run", progress=False, work_dir=tmp_path / "work")
    assert summary["dtype"] == "float16"  # bf16 is emulated there: slower than fp16


@pytest.mark.parametrize(
    "backend", ["FLASH_ATTENTION", "EFFICIENT_ATTENTION", "CUDNN_ATTENTION", "MATH", None]
)
def test_sdpa_matches_attention_written_out(backend):
    """Each kernel alone (None: PyTorch's own choice), fp16, against fp32 manual attention."""
    generator = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(2, 4, 128, 64, generator=generator) for _ in range(3))
    expected, _ = manual_attention(q.double(), k.double(), v.double())
    q16, k16, v16 = (t.to("cuda", torch.float16) for t in (q, k, v))
    try:
        with sdpa_kernel(getattr(SDPBackend, backend)) if backend else contextlib.nullcontext():
            out = F.scaled_dot_product_attention(q16, k16, v16, is_causal=True)
    except RuntimeError as err:
        assert backend is not None, err  # PyTorch's own choice must always run
        pytest.skip(f"{backend} does not run on this GPU: {str(err).splitlines()[0]}")
    torch.testing.assert_close(out.float().cpu(), expected.float(), atol=2e-3, rtol=2e-3)


def test_resume_on_cuda_logs_the_same_losses(corpus, tmp_path, deterministic):
    """fp16 with a GradScaler (its scale is part of the state), dropout on (the CUDA RNG too)."""
    config = tiny_config(corpus, device="cuda", dtype="float16", max_steps=20, ckpt_interval=5)
    work = tmp_path / "work"
    train(config, tmp_path / "reference", progress=False, work_dir=work)
    train(config, tmp_path / "run", progress=False, work_dir=work, until=10)
    assert read_checkpoint(tmp_path / "run" / LAST)["scaler"] is not None
    summary = train(config, tmp_path / "run", resume=True, progress=False, work_dir=work)
    assert summary["resumed_from"] == 10 and summary["steps"] == 20
    after = [r for r in comparable(read_metrics(tmp_path / "run")) if r["step"] > 10]
    expected = [r for r in comparable(read_metrics(tmp_path / "reference")) if r["step"] > 10]
    assert len(after) == 10 and after == expected


@pytest.mark.parametrize("pre_ln", [False, True])
def test_the_model_on_cuda_matches_its_cpu_logits(full_fp32, pre_ln):
    torch.manual_seed(0)
    config = GPTConfig(vocab_size=512, n_ctx=64, n_embd=128, n_layer=4, n_head=4, pre_ln=pre_ln)
    model = GPT(config).eval()
    idx = torch.randint(512, (2, 64), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        on_cpu, _ = model(idx)
        on_cuda, _ = model.to("cuda")(idx.to("cuda"))
    torch.testing.assert_close(on_cuda.cpu(), on_cpu, atol=1e-4, rtol=1e-4)
