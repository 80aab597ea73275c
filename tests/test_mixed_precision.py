"""Mixed precision without a GPU: the T4's float16 + GradScaler path and the A10G's bfloat16
path, run on a CPU (CPU autocast does both, and `torch.amp.GradScaler("cpu")` exists), so the
code the GPUs run is the code these tests check: training, exact resume with the scaler's
state, a skipped update on overflow, and gradients clipped only once unscaled."""

from __future__ import annotations

import math

import pytest
import torch
from training_helpers import one_thread, tiny_config  # noqa: F401 (an autouse fixture)

from gpt1_lib.checkpoint import LAST, read_checkpoint
from gpt1_lib.config import load_config
from gpt1_lib.model import GPT
from gpt1_lib.train import read_metrics, train
from gpt1_lib.trainer import Trainer


class FastGrowth(torch.amp.GradScaler):
    """A GradScaler that doubles its scale after 3 good updates (not 2000), so that within a
    short run it grows, overflows, skips updates and backs off: its state steers training."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **{**kwargs, "growth_interval": 3})


def ready_trainer(corpus, work_dir, out_dir, **overrides) -> Trainer:
    """A Trainer with data, model and optimiser built, at update 0, for driving `update` by hand."""
    trainer = Trainer(
        load_config(tiny_config(corpus, **overrides)), out_dir, work_dir, progress=False
    )
    trainer.prepare_data(resuming=False)
    trainer.build()
    trainer.start_fresh()
    return trainer


def losses(run_dir) -> list[float]:
    return [r["train_loss"] for r in read_metrics(run_dir)]


@pytest.mark.parametrize(("dtype", "scaler"), [("float16", True), ("bfloat16", False)])
def test_16_bit_training_on_a_cpu_runs_under_autocast_and_learns(
    dtype, scaler, corpus, work_dir, tmp_path, monkeypatch
):
    seen = set()
    real_forward = GPT.forward

    def recording_forward(self, *args, **kwargs):
        logits, loss = real_forward(self, *args, **kwargs)
        seen.add(logits.dtype)
        return logits, loss

    monkeypatch.setattr(GPT, "forward", recording_forward)
    summary = train(tiny_config(corpus, dtype=dtype), tmp_path, progress=False, work_dir=work_dir)
    assert seen == {getattr(torch, dtype)}  # every forward ran its matmuls in 16 bits
    assert summary["dtype"] == dtype
    values = losses(tmp_path)
    assert all(math.isfinite(v) for v in values) and len(values) == 40
    assert sum(values[-5:]) / 5 < sum(values[:5]) / 5 - 0.8  # it learns
    state = read_checkpoint(tmp_path / LAST)["scaler"]
    assert (state is not None) == scaler
    if scaler:
        assert state["scale"] > 0 and state["_growth_tracker"] > 0  # it stepped with a scale


def test_float16_resumes_exactly_with_the_scalers_state(corpus, work_dir, tmp_path, monkeypatch):
    """With a scaler that grows and backs off within the run, the updates that are skipped
    depend on its state: a resume that lost it would log other losses from the resume on."""
    monkeypatch.setattr(torch.amp, "GradScaler", FastGrowth)
    cfg = tiny_config(corpus, dtype="float16", max_steps=30, ckpt_interval=5, eval_interval=10)
    train(cfg, tmp_path / "reference", progress=False, work_dir=work_dir)
    reference = read_checkpoint(tmp_path / "reference" / LAST)["scaler"]
    assert reference["growth_interval"] == 3 and reference["scale"] != 65536.0  # it moved
    train(cfg, tmp_path / "resumed", progress=False, work_dir=work_dir, until=13)
    saved = read_checkpoint(tmp_path / "resumed" / LAST)
    assert saved["step"] == 13 and saved["scaler"]["scale"] != 65536.0
    summary = train(cfg, tmp_path / "resumed", resume=True, progress=False, work_dir=work_dir)
    assert summary["resumed_from"] == 13
    assert losses(tmp_path / "resumed") == losses(tmp_path / "reference")  # bit for bit
    assert read_checkpoint(tmp_path / "resumed" / LAST)["scaler"] == reference


def test_an_overflow_skips_the_update_and_halves_the_scale(corpus, work_dir, tmp_path):
    trainer = ready_trainer(corpus, work_dir, tmp_path, dtype="float16", dropout=0.0)
    scale = trainer.scaler.get_scale()
    before = {k: v.clone() for k, v in trainer.raw.state_dict().items()}
    weight = trainer.raw.tokens_embed.weight
    hook = weight.register_hook(lambda grad: grad * math.inf)  # one overflowing gradient
    loss, _, norm = trainer.update(0)
    hook.remove()
    assert math.isfinite(loss) and not torch.isfinite(norm)  # the loss was fine, a gradient not
    assert all(torch.equal(v, before[k]) for k, v in trainer.raw.state_dict().items())  # skipped
    assert trainer.optimizer.state == {}  # Adam never stepped: its moments are untouched
    assert trainer.scaler.get_scale() == scale / 2
    trainer.update(1)  # the next update is a normal one, at the lowered scale
    assert not torch.equal(weight, before["tokens_embed.weight"])
    assert trainer.scaler.get_scale() == scale / 2


def test_gradients_are_clipped_after_they_are_unscaled(corpus, work_dir, tmp_path):
    """The norm that is clipped (and logged) is the true gradient's, as in float32; clipping
    the scaled gradients would see a norm 65,536 times too large and shrink the update."""
    runs = {}
    for dtype in ("float32", "float16"):
        trainer = ready_trainer(corpus, work_dir, tmp_path / dtype, dtype=dtype, dropout=0.0)
        norms = [trainer.update(step)[2].item() for step in range(3)]
        runs[dtype] = (norms, trainer.raw.state_dict())
    assert runs["float16"][0] == pytest.approx(runs["float32"][0], rel=1e-2)
    assert all(n > 1.0 for n in runs["float32"][0])  # large enough that clipping at 1.0 acts
    for name, value in runs["float32"][1].items():  # the same three updates, to fp16 rounding
        assert torch.allclose(runs["float16"][1][name], value, atol=2e-3), name


def test_training_settings_are_on_while_training_and_as_they_were_after():
    """Denormals flushed on a CPU and TF32 on Ampere+ are process-wide switches: a context
    turns them on for a training loop and puts them back, so nothing after it computes
    differently (a float32 parity check after a run on an A100 is not a TF32 one)."""
    from gpt1_lib.precision import denormals_flushed, training_settings

    cuda, cudnn = torch.backends.cuda.matmul, torch.backends.cudnn
    try:
        for flushed in (False, True):
            torch.set_flush_denormal(flushed)
            with training_settings(torch.device("cpu")):
                assert denormals_flushed()
            assert denormals_flushed() == flushed
        torch.set_flush_denormal(False)
        cuda.allow_tf32 = cudnn.allow_tf32 = False
        with training_settings(torch.device("cuda"), (8, 0)):  # an A100, an A10G
            assert cuda.allow_tf32 and cudnn.allow_tf32
        assert not cuda.allow_tf32 and not cudnn.allow_tf32
        with training_settings(torch.device("cuda"), (7, 5)):  # a T4 has no TF32
            assert not cuda.allow_tf32
        with pytest.raises(RuntimeError), training_settings(torch.device("cuda"), (9, 0)):
            raise RuntimeError("a failed run restores them too")
        assert not cuda.allow_tf32 and not denormals_flushed()
    finally:
        torch.set_flush_denormal(False)


def test_a_training_run_leaves_the_process_as_it_found_it(corpus, work_dir, tmp_path):
    from gpt1_lib.precision import denormals_flushed

    torch.set_flush_denormal(False)
    config = tiny_config(corpus, max_steps=2, warmup_steps=1, eval_interval=2, ckpt_interval=2)
    train(config, tmp_path / "run", progress=False, work_dir=work_dir)
    assert not denormals_flushed()
