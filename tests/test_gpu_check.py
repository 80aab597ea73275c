"""benchmarks/gpu_check.py (`make gpu-check`) on a CPU: no CUDA -> one line, exit 0, nothing
written; its measuring loop, resume check and report, run here with a tiny model."""

from __future__ import annotations

import importlib.util
import json
import math
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from training_helpers import one_thread  # noqa: F401 (an autouse fixture)

from gpt1_lib.model import GPT, model_config
from gpt1_lib.precision import Precision, flops_per_token

ROOT = Path(__file__).resolve().parent.parent
spec = importlib.util.spec_from_file_location("gpu_check", ROOT / "benchmarks" / "gpu_check.py")
gpu_check = sys.modules["gpu_check"] = importlib.util.module_from_spec(spec)
spec.loader.exec_module(gpu_check)

TINY = {"vocab_size": 300, "n_ctx": 32, "n_embd": 32, "n_layer": 2, "n_head": 2, "dropout": 0.0,
        "batch_size": 4, "grad_accum": 2, "lr": 1e-3, "weight_decay": 0.01, "grad_clip": 1.0}  # fmt: skip
FP32 = Precision(torch.float32)


def test_without_cuda_it_says_so_in_one_line_and_writes_nothing(monkeypatch, tmp_path, capsys):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    out = tmp_path / "results" / "gpu.md"
    assert gpu_check.main(["--out", str(out)]) == 0
    assert capsys.readouterr().out.splitlines() == [gpu_check.NO_CUDA]
    assert not out.exists() and not out.parent.exists()


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU: it would measure it")
def test_the_script_exits_0_without_cuda(tmp_path):
    out = tmp_path / "nowhere" / "gpu.md"
    done = subprocess.run([sys.executable, "benchmarks/gpu_check.py", "--out", str(out)],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [gpu_check.NO_CUDA]
    assert not out.parent.exists()


def test_mfu_arithmetic():
    assert gpu_check.mfu(20_000, 6.1e8, 65e12) == pytest.approx(20_000 * 6.1e8 / 65e12)
    assert gpu_check.mfu(20_000, 6.1e8, None) is None  # a GPU missing from PEAK_FLOPS
    assert gpu_check.mfu(None, 6.1e8, 65e12) is None  # nothing timed (out of memory)
    with torch.device("meta"):  # the t4 preset's model, without allocating its 92M weights
        model = GPT(model_config("t4"))
    n_params = sum(p.numel() for p in model.parameters()) - 512 * 768  # positions are a lookup
    assert 91e6 < n_params < 92e6
    per_token = gpu_check.model_flops_per_token(model)
    assert (
        per_token == flops_per_token(n_params, 12, 512, 768) == 6 * n_params + 12 * 12 * 512 * 768
    )
    # 20,000 tokens/s on a T4 (65 TFLOP/s) would be 19 % MFU
    assert gpu_check.mfu(20_000, per_token, 65e12) == pytest.approx(0.186, abs=0.001)


def test_every_row_has_a_time_limit_and_together_they_fit_six_minutes():
    """Each row is a process killed at its limit (an eager row's includes its SDPA probe), so
    the sum bounds the check: arithmetic, not yet timed on a T4."""
    rows = [gpu_check.LIMITS["tests"], gpu_check.LIMITS["resume"]]
    for _, compiled in gpu_check.PLAN:
        rows += [gpu_check.LIMITS["eager"]] + ([gpu_check.LIMITS["compiled"]] if compiled else [])
    assert sum(rows) == 330 <= 350  # 6 minutes, less the device's facts and the report
    assert "330 s in all" in gpu_check.__doc__


def test_no_limit_needs_an_alarm_signal_which_windows_lacks():
    """SIGALRM and setitimer exist on neither Windows nor, for a CUDA call, as an interruption."""
    source = (ROOT / "benchmarks" / "gpu_check.py").read_text()
    assert "SIGALRM" not in source and "setitimer" not in source and "import signal" not in source


def test_a_measurement_that_reaches_its_limit_is_reported_as_stopped():
    start = time.perf_counter()
    m = gpu_check.measure_update(TINY, "cpu", FP32, label="tiny, eager", min_seconds=600,
                                 max_updates=10**9, limit=5.0)  # fmt: skip
    assert time.perf_counter() - start < 60  # checked between updates: one update past the limit
    assert m.error == "stopped at its time limit of 5 s" and m.rates  # what it timed is kept
    assert "stopped at its time limit" in gpu_check.measurement_row(m)


def test_a_row_runs_in_a_process_of_its_own_with_its_probe():
    found = gpu_check.run_row("smoke", False, limit=120, device="cpu")
    m = found["measurement"]
    assert m.error is None and m.label == "smoke, eager" and m.rates and math.isfinite(m.loss)
    assert found["where"].startswith("smoke (float32, ") and "math" in found["probe"]


def test_a_row_that_outlives_its_limit_is_killed_and_reported():
    """Here the process is killed before it has even imported torch: nothing came back."""
    start = time.perf_counter()
    found = gpu_check.run_row("smoke", False, limit=0.5, device="cpu")
    assert time.perf_counter() - start < 10
    assert found["measurement"].error == "stopped at its time limit of 0.5 s"
    assert found["probe"] == {"probe": "not run (stopped at its time limit of 0.5 s)"}
    assert "stopped at its time limit of 0.5 s" in gpu_check.measurement_row(found["measurement"])


def test_the_measuring_loop_runs_on_a_cpu():
    m = gpu_check.measure_update(TINY, "cpu", FP32, label="tiny, eager", min_seconds=0.05)
    assert m.error is None and math.isfinite(m.loss)
    assert len(m.rates) >= 3 and all(r > 0 for r in m.rates) and m.first_update_s > 0
    assert m.tokens_per_update == 4 * 32 * 2
    assert m.peak_allocated is None and m.peak_flops is None and m.mfu is None  # CPU: unknown
    assert m.sdpa == ["flash (CPU kernel)"]  # what the profiler saw the model run, no dropout
    assert m.flops_per_token == gpu_check.model_flops_per_token(GPT(model_config(TINY)))


def test_the_measuring_loop_in_fp16_with_a_gradscaler_on_a_cpu():
    m = gpu_check.measure_update(TINY, "cpu", Precision(torch.float16, use_scaler=True),
                                 label="tiny fp16", warmup=1, min_updates=2, min_seconds=0)  # fmt: skip
    assert m.error is None and math.isfinite(m.loss) and m.dtype == "float16" and m.scaler
    assert "GradScaler" in gpu_check.measurement_row(m)


def test_updates_the_gradscaler_skipped_are_counted_and_reported(monkeypatch):
    real = torch.amp.GradScaler
    monkeypatch.setattr(torch.amp, "GradScaler", lambda *a, **k: real(*a, init_scale=2.0**40, **k))
    m = gpu_check.measure_update(TINY, "cpu", Precision(torch.float16, use_scaler=True),
                                 label="tiny fp16", min_updates=3, min_seconds=0)  # fmt: skip
    assert m.skipped_updates >= 1 and math.isfinite(m.loss)  # 2**40 overflows fp16's gradients
    text = gpu_check.render_report(gpu_check.describe_device("cpu"), [m], {}, None, None, 1.0)
    assert f"tiny fp16: GradScaler skipped {m.skipped_updates} update(s)" in text


def test_an_out_of_memory_is_reported_not_raised(monkeypatch):
    def oom(*args, **kwargs):
        raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    monkeypatch.setattr(gpu_check, "_measure", oom)
    m = gpu_check.measure_update(TINY, "cpu", FP32, label="a10g, eager")
    assert m.error.startswith(
        "out of memory at batch_size=4: lower batch_size and raise grad_accum"
    )
    assert m.error in gpu_check.measurement_row(m) and m.tokens_per_s is None

    def compile_fails(*args, **kwargs):
        raise RuntimeError("triton not found\nlong traceback")

    monkeypatch.setattr(gpu_check, "_measure", compile_fails)
    m = gpu_check.measure_update(TINY, "cpu", FP32, label="t4, compiled", compile_model=True)
    assert m.error == "RuntimeError: triton not found"


def test_compare_runs():
    ref = [(6, 5.1, 5.2), (7, 5.0, None), (8, 4.9, None)]
    near = [(6, 5.1, 5.2), (7, 5.0 + 1e-6, None), (8, 4.9, None)]
    far = [(6, 5.1, 5.2), (7, 5.1, None), (8, 4.9, None)]
    assert (
        gpu_check.compare_runs(ref, ref, ref)["ok"]
        and gpu_check.compare_runs(ref, ref, ref)["bitwise"]
    )
    # two uninterrupted runs agree bit for bit: the resumed one must too
    assert not gpu_check.compare_runs(ref, ref, near)["ok"]
    # a GPU that is not bit-reproducible: within RESUME_TOLERANCE (10) x the run-to-run difference
    assert gpu_check.RESUME_TOLERANCE == 10
    within = gpu_check.compare_runs(ref, near, near)
    edge = [(6, 5.1, 5.2), (7, 5.0 + 9e-6, None), (8, 4.9, None)]  # 9x: passes; 11x fails
    assert gpu_check.compare_runs(ref, near, edge)["ok"]
    edge = [(6, 5.1, 5.2), (7, 5.0 + 1.1e-5, None), (8, 4.9, None)]
    assert not gpu_check.compare_runs(ref, near, edge)["ok"]
    assert within["ok"] and not within["bitwise"] and within["max_diff"] == pytest.approx(1e-6)
    assert not gpu_check.compare_runs(ref, near, far)["ok"]
    assert not gpu_check.compare_runs(ref, ref, ref[:2])["ok"]  # a missing update
    assert not gpu_check.compare_runs([], [], [])["ok"]  # nothing logged is no evidence


def test_the_resume_check_in_its_own_process_on_a_cpu():
    result = gpu_check.run_resume_check("cpu", "float32", steps=12, stop=5, timeout=300)
    for check in (result, result["deterministic"]):  # training's kernels, then deterministic ones
        assert check["ok"] and check["bitwise"] and check["resumed_from"] == 5, result
        assert check["updates"] == list(range(6, 13)) and check["device"] == "cpu"
        assert check["run_to_run"] == 0.0 and check["max_diff"] == 0.0
    assert result["strict"] is None and result["deterministic"]["strict"] is True


def _faked_checks(monkeypatch, tmp_path, training_kernels: list[tuple]) -> dict:
    """The child's answer when training's kernels log `training_kernels` after the stop (the
    uninterrupted runs log 5.0) and strict determinism is refused by this 'GPU'."""

    def fake(device, dtype, work, steps, stop, strict):
        if strict:
            raise RuntimeError("foo_backward_cuda does not have a deterministic implementation")
        resumed = training_kernels if strict is None else [(6, 5.0, None)]
        repeat = [(6, 5.0 + 1e-7, None)] if strict is None else [(6, 5.0, None)]
        result = gpu_check.compare_runs([(6, 5.0, None)], repeat, resumed)
        result.update(resumed_from=5, steps=6, stop=5, dtype="float16", device="cuda",
                      seconds=1.0, strict=strict)  # fmt: skip
        return result

    monkeypatch.setattr(gpu_check, "resume_check", fake)
    answer = tmp_path / "resume.json"
    assert gpu_check.main(["--resume-check", str(answer), "--device", "cpu"]) == 0
    return json.loads(answer.read_text())


def test_a_gpu_refusing_strict_determinism_gets_the_lenient_check(monkeypatch, tmp_path):
    result = _faked_checks(monkeypatch, tmp_path, [(6, 5.0 + 2e-7, None)])
    assert result["ok"] and not result["bitwise"] and result["max_diff"] == pytest.approx(2e-7)
    assert result["deterministic"]["ok"] and result["deterministic"]["strict"] is False
    assert result["deterministic"]["strict_refused"].startswith("foo_backward_cuda does not have")
    text = gpu_check.render_report(gpu_check.describe_device("cpu"), [], {}, result, None, 1.0)
    assert "- PASS (the kernels training runs): the losses of updates 6–6 are the same, within " \
           "2.00e-07 (two uninterrupted runs differ by 1.00e-07; the check allows 10× that)" in text  # fmt: skip
    assert "- PASS (deterministic kernels where torch has them): the losses of updates 6–6 are " \
           "the same, bit for bit" in text  # fmt: skip
    assert "Strict determinism refused on this GPU: foo_backward_cuda" in text


def test_a_resume_beyond_the_run_to_run_difference_fails_the_check(monkeypatch, tmp_path):
    result = _faked_checks(monkeypatch, tmp_path, [(6, 5.01, None)])
    assert not result["ok"] and result["deterministic"]["ok"]
    text = gpu_check.render_report(gpu_check.describe_device("cpu"), [], {}, result, None, 1.0)
    assert "- FAIL (the kernels training runs): the losses of updates 6–6 are not the same" in text


def _rows() -> list:
    common = dict(batch_size=8, n_ctx=512, grad_accum=8, flops_per_token=6.1e8)
    eager = gpu_check.Measurement("t4, eager", "float16", True, False, **common, peak_flops=989e12,
                                  rates=[4e5, 5e5, 6e5], first_update_s=1.5, peak_allocated=5 * 2**30,
                                  peak_reserved=6 * 2**30, loss=9.1, sdpa=["flash"])  # fmt: skip
    compiled = gpu_check.Measurement("t4, compiled", "float16", True, True, **common,
                                     peak_flops=989e12, rates=[4e5], first_update_s=61.0,
                                     peak_allocated=4 * 2**30, peak_reserved=5 * 2**30, loss=9.1)  # fmt: skip
    oom = gpu_check.Measurement("a10g, eager", "bfloat16", False, False, 16, 512, 4,
                                error="out of memory at batch_size=16: lower batch_size")  # fmt: skip
    return [eager, compiled, oom]


def test_the_report_names_the_device_and_says_an_h200_is_not_a_t4():
    facts = {"name": "NVIDIA H200", "capability": "9.0", "memory": "139.8 GiB", "driver": "NVIDIA 570.1",
             "torch": "2.14.1", "cuda": "13.0", "cudnn": "91000", "python": "3.11.7"}  # fmt: skip
    resume = gpu_check.compare_runs([(11, 5.0, None)], [(11, 5.0, None)], [(11, 5.0, None)])
    resume.update(resumed_from=10, steps=24, stop=10, dtype="float16", device="cuda", seconds=12.0)
    tests = {"ok": True, "summary": "9 passed, 2 skipped in 40.1s", "tail": "", "seconds": 41.0}
    kernels = {
        "t4 (float16, 8 × 12 × 512 × 64)": {
            "flash": "runs with dropout",
            "math": "runs with dropout",
        }
    }
    text = gpu_check.render_report(facts, _rows(), kernels, resume, tests, 200.0)
    assert text.startswith("# GPU check: NVIDIA H200\n")
    assert "compute capability 9.0, 139.8 GiB" in text and "driver: NVIDIA 570.1" in text
    assert "**NVIDIA H200 is not a T4.** The memory figures carry over" in text
    assert "The speed figures do not" in text and "989 TFLOP/s" in text
    assert "a T4's dense 16-bit peak is 65 TFLOP/s (`gpt1_lib.gpu_peaks.PEAK_FLOPS`)" in text
    # median 500,000 tokens/s x 6.1e8 FLOP/token / 989e12 = 30.8 %
    assert "| t4, eager | float16 + GradScaler | off | 8 × 512 × 8 | 5.00 GiB (6.00 GiB) | " \
           "500,000 (400,000–600,000) | 30.8% | 1.5 s | flash |" in text  # fmt: skip
    assert "| a10g, eager | bfloat16 | off | 16 × 512 × 4 | out of memory at batch_size=16" in text
    assert "t4, compiled: 0.80× the eager tokens/s (slower)" in text and "took 61 s" in text
    assert "- PASS (the kernels training runs): the losses of updates 11–24 are the same, bit " \
           "for bit" in text  # fmt: skip
    assert "9 passed, 2 skipped" in text and "flash runs with dropout" in text


def test_the_report_on_a_t4_and_with_an_unknown_peak():
    facts = {"name": "Tesla T4", "capability": "7.5", "memory": "14.6 GiB", "driver": "NVIDIA 535",
             "torch": "2.14.1", "cuda": "12.4", "cudnn": "90100", "python": "3.11.7"}  # fmt: skip
    rows = _rows()
    for m in rows:
        m.peak_flops = None
    text = gpu_check.render_report(facts, rows, {}, None, None, 100.0)
    assert "This is a T4" in text and "not a T4" not in text
    assert "| unknown peak |" in text
    assert "Not run (--no-tests)." in text


def test_the_cuda_tests_run_without_the_projects_pytest_plugins(monkeypatch):
    """On Colab the dev extras (nbval) are not installed; the project's addopts name nbval's
    options, so pytest would stop on them before running a CUDA test. Here nbval is switched off
    the way a runtime without it would lack it."""
    monkeypatch.setenv("PYTEST_ADDOPTS", "-p no:nbval")
    result = gpu_check.run_cuda_tests(timeout=120)
    assert result["ok"], result


def test_the_cuda_tests_run_from_the_check():
    result = gpu_check.run_cuda_tests(timeout=120)
    assert result["ok"], result
    if not torch.cuda.is_available():
        assert "skipped" in result["summary"] and "passed" not in result["summary"], result


def test_the_report_says_when_the_resume_check_could_not_run():
    facts = {"name": "Tesla T4", "capability": "7.5", "memory": "14.6 GiB", "driver": "NVIDIA 535",
             "torch": "2.14.1", "cuda": "12.4", "cudnn": "90100", "python": "3.11.7"}  # fmt: skip
    resume = {"ok": False, "error": "TrainingError: out of GPU memory"}
    text = gpu_check.render_report(facts, [], {}, resume, None, 1.0)
    assert "FAIL (the kernels training runs): the check could not run: TrainingError: out of GPU " \
           "memory" in text  # fmt: skip


@pytest.mark.parametrize(
    ("capability", "failing", "code"),
    [((9, 0), None, 0), ((9, 0), "a10g, eager", 1), ((9, 0), "t4, eager", 0),
     ((7, 5), "t4, eager", 1), ((7, 5), "a10g, eager", 0), ((7, 5), "t4, compiled", 0)],
)  # fmt: skip
def test_main_on_a_faked_gpu_measures_the_plan_and_fails_only_on_what_matters(
    monkeypatch, tmp_path, capsys, capability, failing, code
):
    """The orchestration without a GPU: every measurement faked. Only the preset the GPU chapter
    picks on this GPU must run; the other one, and torch.compile, may fail (reported)."""
    calls = []

    def fake_row(preset, compile_model, limit):
        cfg = gpu_check.load_config(preset)
        precision = gpu_check.choose_precision("cuda", cfg["dtype"], capability)
        label = f"{preset}, {'compiled' if compile_model else 'eager'}"
        calls.append((label, precision.name, compile_model, limit))
        m = gpu_check.Measurement(label, precision.name, precision.use_scaler, compile_model,
                                  cfg["batch_size"], cfg["n_ctx"], cfg["grad_accum"],
                                  flops_per_token=6e8, rates=[1e5], loss=9.0)  # fmt: skip
        m.error = "out of memory at batch_size=16" if label == failing else None
        probe = {} if compile_model else {"where": preset, "probe": {"math": "runs with dropout"}}
        return {"measurement": m, **probe}

    facts = {"name": "Fake GPU", "capability": f"{capability[0]}.{capability[1]}", "memory": "1 GiB",
             "driver": "x", "torch": "x", "cuda": "x", "cudnn": "x", "python": "x"}  # fmt: skip
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: capability)
    monkeypatch.setattr(gpu_check, "describe_device", lambda device: facts)
    monkeypatch.setattr(gpu_check, "run_row", fake_row)
    resume = gpu_check.compare_runs([(11, 5.0, None)], [(11, 5.0, None)], [(11, 5.0, None)])
    resume.update(resumed_from=10, steps=24, stop=10, dtype="float16", device="cuda", seconds=1.0)
    monkeypatch.setattr(gpu_check, "run_resume_check", lambda *a, **k: resume)
    out = tmp_path / "gpu.md"
    assert gpu_check.main(["--out", str(out), "--no-tests"]) == code
    fp16_or_bf16 = "bfloat16" if capability >= (8, 0) else "float16"
    assert calls == [("t4, eager", "float16", False, 45), ("t4, compiled", "float16", True, 100),
                     ("a10g, eager", fp16_or_bf16, False, 45)]  # fmt: skip
    text = out.read_text()
    assert text.startswith("# GPU check: Fake GPU") and text.count("| t4, ") == 2
    assert ("FAILED" in capsys.readouterr().out) == bool(code)
