"""The plan before a run's first update (appendix A4 §5): a few real updates timed on this
machine, and the arithmetic that turns them into hours, bytes and Colab sessions."""

from __future__ import annotations

import math
import time

import pytest
import torch
from training_helpers import one_thread, tiny_config  # noqa: F401 (one_thread: an autouse fixture)

from gpt1_lib import plan as plan_module
from gpt1_lib.config import load_config
from gpt1_lib.model import GPT, model_config
from gpt1_lib.plan import DRIVE_FREE, Plan, device_label, plan_run, tensor_bytes, timing_device
from gpt1_lib.train import read_metrics, train
from gpt1_lib.train_cli import main


def _plan(**changes) -> Plan:
    cfg = {"batch_size": 8, "n_ctx": 512, "grad_accum": 8, "max_steps": 3000, "eval_interval": 250,
           "eval_iters": 20, "n_layer": 12, "n_embd": 768}  # fmt: skip
    fields = dict(cfg=cfg, device="Tesla T4", dtype="float16 + GradScaler", seconds_per_update=2.0,
                  timed=3, flops_per_token=6e8, peak_flops=65e12, peak_memory=5 * 2**30,
                  device_memory=15 * 2**30, checkpoint_bytes=(1_100_000_000, 367_000_000))  # fmt: skip
    fields.update(changes)
    return Plan(**fields)


def test_the_arithmetic_of_a_plan():
    plan = _plan(done=1000, first_session={"download": 60.0, "tokenising": 600.0})
    assert plan.tokens_per_update == 32768 and plan.tokens_per_s == 16384
    assert plan.mfu == pytest.approx(16384 * 6e8 / 65e12)  # 15 %
    # 2,000 updates of 2 s, and 8 evaluations of 20 forward passes of a micro-batch (2 s / 8 / 3)
    assert plan.updates_left == 2000 and plan.train_seconds == pytest.approx(4000 + 8 * 20 * 2 / 24)
    assert plan.slice_updates() == 600 and plan.slices == math.ceil(2000 / 600) == 4
    assert plan.sessions == 1 and _plan(seconds_per_update=30.0).sessions == 3  # 25 h of updates
    table = plan.table()
    assert table.splitlines()[0] == "plan: 12 layers x 768 on Tesla T4, float16 + GradScaler"
    assert "16,384 tokens/s, MFU 15.1%" in table and "2,000 updates to go of 3,000: 1.1 h" in table
    assert "download 1.0 min, tokenising 10.0 min" in table and "5.0 GiB of the GPU's 15.0 GiB" in table
    assert "about 4 slice(s) x 1.47 GB = 5.87 GB" in table and "warning" not in table


def test_a_plan_that_would_fill_drive_says_so():
    plan = _plan(seconds_per_update=10.0)  # 8.4 h: 12 slices of 250 updates, 1.47 GB each
    assert plan.slices * sum(plan.checkpoint_bytes) > DRIVE_FREE
    assert "warning         more than Drive's free 15.00 GB" in plan.table()


def test_tensor_bytes_counts_a_tied_weight_once():
    model = GPT(model_config(tiny_config("unused")))
    weights = sum(p.numel() for p in model.parameters()) * 4  # parameters() yields a tie once
    assert tensor_bytes(model.state_dict()) == weights
    assert len(model.state_dict()) > len(list(model.parameters()))  # the state dict has it twice
    assert tensor_bytes(torch.zeros(3), {"a": [torch.zeros(2, dtype=torch.float16)]}) == 16


def test_plan_run_times_real_updates_on_this_cpu():
    plan = plan_run(load_config("smoke"), updates=2)
    assert plan.device == "cpu" and plan.dtype == "float32" and plan.timed == 2
    assert plan.seconds_per_update > 0 and plan.peak_memory is None and plan.mfu is None
    weights = plan.checkpoint_bytes[1]
    assert 2.9 * weights < plan.checkpoint_bytes[0] < 3.1 * weights  # AdamW's two moments


def test_the_command_line_plans_a_gpu_preset_on_this_cpu_quickly_and_says_it_is_not_a_gpu(capsys):
    """The `t4` preset whole, its real batch of 64 sequences: timing whole updates took 14.4
    minutes and 10.8 GB here and printed Colab and Drive rows from a CPU's speed. Now one
    sequence is timed (39 s with the machine's two cores shared by other jobs, about 2.6 GB)."""
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU: the plan would time it")
    started = time.perf_counter()
    assert main(["--config", "t4", "--plan"]) == 0
    seconds, out = time.perf_counter() - started, capsys.readouterr().out
    assert seconds < 90, f"the t4 plan on a CPU took {seconds:.0f} s"
    assert out.startswith("plan: 12 layers x 768 on cpu (no CUDA GPU: timed on this cpu, not at a "
                          "GPU's speed), float32")  # fmt: skip
    assert "32,768 tokens per update" in out and "its forward and backward x 64" in out
    assert "ckpt_last.pt 1.10 GB, ckpt_best.pt 367.0 MB" in out  # the 1.1 GB and 0.37 GB
    assert "3,000 updates to go of 3,000" in out and "at this machine's speed, not a GPU's" in out
    assert "peak memory     not measured" in out
    assert "Colab sessions" not in out and "Drive writes" not in out and "not planned" in out


def test_a_stand_in_counts_each_sequence_forward_and_backward_and_one_optimiser_step(monkeypatch):
    """A GPU preset without CUDA: one update of one sequence is timed; its forward and backward
    count once per sequence of an update, its optimiser step once."""
    clock = iter([0.0, 2.0, 2.5])  # the update starts, its micro-batch ends, the update ends

    monkeypatch.setattr(plan_module.time, "perf_counter", lambda: next(clock))
    cfg = {**load_config("smoke"), "device": "cuda", "batch_size": 4, "grad_accum": 2}
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    plan = plan_run(cfg)
    assert plan.stand_in and plan.timed == 1 and plan.device.startswith("cpu (no CUDA GPU")
    assert plan.seconds_per_update == pytest.approx(2.5 + 7 * 2.0)  # 8 sequences, one AdamW step
    assert plan.cfg["batch_size"] == 4 and plan.tokens_per_update == 8 * cfg["n_ctx"]


def test_a_cuda_preset_on_a_mac_is_timed_on_mps_and_labelled_so(monkeypatch):
    """The book's device order is CUDA, MPS, CPU: a Mac plans a GPU preset on its MPS device,
    and the plan names it "mps" (it named every device without CUDA "cpu")."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: True)
    cfg, stand_in = timing_device(load_config("t4"))
    assert stand_in and cfg["device"] == "mps" and cfg["dtype"] == "auto" and not cfg["compile"]
    assert device_label(torch.device("mps"), stand_in).startswith("mps (no CUDA GPU: timed on this mps")
    assert device_label(torch.device("mps")) == "mps" and device_label(torch.device("cpu")) == "cpu"
    assert timing_device(load_config("smoke")) == (load_config("smoke"), False)  # device=auto as it is
    here = _plan(device="mps", peak_memory=None, device_memory=None).table()
    assert "plan: 12 layers x 768 on mps" in here and "not counted on mps" in here


def test_with_a_started_run_the_plan_counts_the_updates_to_go(tmp_path, capsys, corpus, work_dir):
    config = tiny_config(corpus, max_steps=12)
    train(config, tmp_path / "run", progress=False, work_dir=work_dir, until=5)
    assert main(["--resume", "--out-dir", str(tmp_path / "run"), "--plan"]) == 0
    assert "7 updates to go of 12" in capsys.readouterr().out
    assert [r["step"] for r in read_metrics(tmp_path / "run")][-1] == 5  # nothing trained


def test_without_plan_the_run_directory_is_required(capsys):
    with pytest.raises(SystemExit):
        main(["--config", "smoke"])
    assert "--out-dir is required (it may be left out with --plan)" in capsys.readouterr().err
