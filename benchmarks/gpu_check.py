"""One command to measure a GPU: `make gpu-check` (`python benchmarks/gpu_check.py`).

Hand-written benchmark. What the CPU tests cannot reach is checked here, on whatever
CUDA GPU is at hand. Every row runs in a process of its own that is killed at the row's time
limit (`LIMITS`, 330 s in all: the sum of the limits, so the check ends within 6 minutes on any
GPU; arithmetic, not yet timed on a T4), and a row that reaches it is reported as stopped, not
waited for. A process is killed the same way on Linux, macOS and Windows, and a kill stops a
long CUDA call or a compilation, which an alarm signal cannot interrupt:

1. the CUDA-only tests (`pytest -m cuda tests/test_cuda.py`);
2. one training update of the `t4` preset (fp16 + GradScaler) and of the `a10g` preset (bf16,
   or fp16 where bf16 is not fast, as the trainer decides): peak memory, tokens/s, MFU, and
   which SDPA kernel the model ran; the `t4` preset eager and under `torch.compile`;
3. checkpoint -> resume on CUDA: a tiny fp16 run stopped and resumed logs the same next
   losses as an uninterrupted one: with the kernels training runs, within `RESUME_TOLERANCE`
   (10) times the difference between two uninterrupted runs (that difference is itself random,
   so one measurement of it is no exact bound); with deterministic kernels, bit for bit;
4. `benchmarks/results/gpu.md`, naming the device.

An update is what the trainer does per optimiser step (`gpt1_lib.plan.UpdateTimer`, which
`python -m gpt1_lib.train --plan` times too): `grad_accum` micro-batches of `batch_size` x
`n_ctx` tokens, forward and backward under autocast, unscale, clip, AdamW (fused), with random
token ids (data loading is not timed). Without CUDA it says so in one line,
writes nothing and exits 0. The measuring functions take a `device`, so the tests run them on a
CPU with a tiny config (tests/test_gpu_check.py).

    python benchmarks/gpu_check.py                  # everything, writes benchmarks/results/gpu.md
    python benchmarks/gpu_check.py --no-tests       # skip the CUDA tests
    python benchmarks/gpu_check.py --compile-all    # torch.compile for the a10g preset too
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import gc
import io
import json
import math
import os
import platform
import random
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from gpt1_lib import hardware  # noqa: E402
from gpt1_lib.gpu_peaks import peak_flops  # noqa: E402

T4_PEAK = peak_flops("Tesla T4") or math.nan  # the figure the report compares other GPUs with
from gpt1_lib.plan import UpdateTimer  # noqa: E402
from gpt1_lib.precision import (  # noqa: E402
    Precision,
    autocast,
    choose_precision,
    model_flops_per_token,
)
from gpt1_lib.profiles import load_config  # noqa: E402

OUT = ROOT / "benchmarks" / "results" / "gpu.md"
NO_CUDA = "gpu-check: no CUDA GPU visible (torch.cuda.is_available() is False): nothing measured, nothing written"
# Seconds each row of the default check may run, each in a process of its own killed at the limit
# (an eager row includes its preset's SDPA probe). The sum, 330 s, is the check's bound.
LIMITS = {"tests": 60, "eager": 45, "compiled": 100, "resume": 80}
STARTUP = 10.0  # of a row's seconds, left to its process for importing torch and starting CUDA
RESUME_TOLERANCE = 10  # a resumed run passes within this many times the run-to-run difference
SDPA_OPS = {  # the aten op each SDPA kernel runs as, as the profiler names it
    "aten::_scaled_dot_product_flash_attention": "flash",
    "aten::_scaled_dot_product_flash_attention_for_cpu": "flash (CPU kernel)",
    "aten::_scaled_dot_product_efficient_attention": "memory-efficient",
    "aten::_scaled_dot_product_cudnn_attention": "cuDNN",
    "aten::_scaled_dot_product_attention_math": "math",
    "aten::_scaled_dot_product_fused_attention_overrideable": "overrideable",
}


@dataclass
class Measurement:
    """One preset's training update on one device: speed, memory, and what ran."""

    label: str
    dtype: str
    scaler: bool
    compiled: bool
    batch_size: int
    n_ctx: int
    grad_accum: int
    flops_per_token: float = 0.0
    peak_flops: float | None = None
    rates: list[float] = field(default_factory=list)  # tokens/s of each timed update
    first_update_s: float | None = None  # includes compilation when compiled
    peak_allocated: int | None = None  # bytes; None on a CPU
    peak_reserved: int | None = None
    loss: float | None = None
    skipped_updates: int = 0  # fp16 overflows: GradScaler skipped the optimiser step
    sdpa: list[str] = field(default_factory=list)  # the kernels the model's attention ran
    note: str | None = None
    error: str | None = None

    @property
    def tokens_per_update(self) -> int:
        return self.batch_size * self.n_ctx * self.grad_accum

    @property
    def tokens_per_s(self) -> float | None:
        return statistics.median(self.rates) if self.rates else None

    @property
    def mfu(self) -> float | None:
        return mfu(self.tokens_per_s, self.flops_per_token, self.peak_flops)


def mfu(tokens_per_s: float | None, flops_per_token: float, peak: float | None) -> float | None:
    """Model FLOPs utilisation: the FLOP/s the model's arithmetic needs at this speed, over the
    device's 16-bit peak; None when either is unknown."""
    if not tokens_per_s or not peak:
        return None
    return tokens_per_s * flops_per_token / peak


def _free(device: torch.device) -> None:
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)


def sdpa_kernels_ran(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor,
                     precision: Precision) -> list[str]:  # fmt: skip
    """The SDPA kernels one forward + backward of `model` ran, read from the profiler's op names
    (empty: the model's attention took no SDPA call, e.g. the CPU path with dropout)."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU]) as prof:
        with autocast(x.device.type, precision):
            _, loss = model(x, y)
        loss.float().backward()
    model.zero_grad(set_to_none=True)
    names = {event.key for event in prof.key_averages()}
    return sorted({kernel for op, kernel in SDPA_OPS.items() if op in names})


class RowTimeout(Exception):
    """A row of the check reached its time limit."""


def stopped(seconds: float) -> str:
    return f"stopped at its time limit of {seconds:g} s"


def measure_update(
    cfg: dict[str, Any],
    device: str,
    precision: Precision,
    *,
    label: str,
    compile_model: bool = False,
    limit: float | None = None,
    warmup: int = 1,
    min_updates: int = 3,
    min_seconds: float = 2.0,
    max_updates: int = 20,
    seed: int = 0,
) -> Measurement:
    """Time whole training updates of the model `cfg` describes; peak memory on CUDA.

    Warm-up updates are not timed (the first builds cuBLAS plans, Adam's state and, compiled,
    the kernels); then updates are timed one by one, each between two synchronisations, until
    at least `min_updates` and `min_seconds`. An out-of-memory error is a result, not a crash;
    so is reaching `limit` seconds, checked between updates on the clock alone, no signal (the
    updates timed until then are kept; `run_row` kills a row whose one update never ends).
    """
    dev = torch.device(device)
    accum = cfg["grad_accum"]
    result = Measurement(label, precision.name, precision.use_scaler, compile_model,
                         cfg["batch_size"], cfg["n_ctx"], accum, note=precision.note)  # fmt: skip
    if dev.type == "cuda":
        result.peak_flops = peak_flops(torch.cuda.get_device_name(dev))
    _free(dev)
    deadline = math.inf if limit is None else time.perf_counter() + limit
    try:
        _measure(cfg, dev, precision, result, compile_model, warmup, min_updates, min_seconds,
                 max_updates, seed, deadline)  # fmt: skip
    except RowTimeout:
        result.error = stopped(limit or 0)
    except torch.cuda.OutOfMemoryError:
        result.error = (
            f"out of memory at batch_size={cfg['batch_size']}: lower batch_size and raise "
            "grad_accum by the same factor"
        )
    except Exception as err:  # e.g. torch.compile failing on this GPU: report it, go on
        first = str(err).strip().splitlines()[0] if str(err).strip() else ""
        result.error = f"{type(err).__name__}: {first[:200]}"
    if dev.type == "cuda":
        result.peak_allocated = torch.cuda.max_memory_allocated(dev)
        result.peak_reserved = torch.cuda.max_memory_reserved(dev)
    if compile_model:
        torch.compiler.reset()  # compiled graphs hold the model: free it for the next preset
    _free(dev)
    return result


def _measure(cfg, dev, precision, result, compile_model, warmup, min_updates, min_seconds,
             max_updates, seed, deadline=math.inf) -> None:  # fmt: skip
    def check() -> None:
        if time.perf_counter() > deadline:
            raise RowTimeout

    timer = UpdateTimer(cfg, dev, precision, compile_model=compile_model, seed=seed)
    result.flops_per_token = model_flops_per_token(timer.raw)
    for i in range(max(warmup, 1)):
        check()
        seconds = timer.run()
        if i == 0:
            result.first_update_s = seconds
    timed = 0.0
    while len(result.rates) < max_updates and (
        len(result.rates) < min_updates or timed < min_seconds
    ):
        check()
        seconds = timer.run()
        timed += seconds
        result.rates.append(result.tokens_per_update / seconds)
    result.loss = timer.loss
    result.skipped_updates = timer.skipped  # GradScaler skipped these (fp16 overflowed)
    if not compile_model:
        result.sdpa = sdpa_kernels_ran(timer.raw, *timer.batches[0], precision)


def row_child(answer: Path, preset: str, compiled: bool, device: str, limit: float) -> int:
    """The process `run_row` starts: one preset's measurement, then (eager) its SDPA probe, each
    written to `answer` as soon as it is known, so a kill keeps what was done."""
    cfg = load_config(preset)
    capability = torch.cuda.get_device_capability() if device == "cuda" else None
    precision = choose_precision(device, cfg["dtype"], capability)
    label = f"{preset}, {'compiled' if compiled else 'eager'}"
    m = measure_update(cfg, device, precision, label=label, compile_model=compiled, limit=limit)
    found: dict[str, Any] = {"measurement": asdict(m)}
    answer.write_text(json.dumps(found))
    if not compiled:
        shape = (cfg["batch_size"], cfg["n_head"], cfg["n_ctx"], cfg["n_embd"] // cfg["n_head"])
        found["where"] = f"{preset} ({precision.name}, {' × '.join(map(str, shape))})"
        try:
            found["probe"] = hardware.sdpa_probe(device, precision.dtype, shape)
        except Exception as err:  # e.g. out of memory: the measurement stands
            found["probe"] = {"probe": f"failed ({type(err).__name__}: {str(err).strip()[:120]})"}
        answer.write_text(json.dumps(found))
    return 0


def run_row(preset: str, compiled: bool, limit: float, device: str = "cuda") -> dict[str, Any]:
    """One row of the check in a process of its own, killed after `limit` seconds: its
    measurement (a Measurement that says it stopped, when none came back) and, for an eager
    row, its SDPA probe under "where" and "probe"."""
    label = f"{preset}, {'compiled' if compiled else 'eager'}"
    with tempfile.TemporaryDirectory() as tmp:
        answer = Path(tmp) / "row.json"
        command = [sys.executable, str(Path(__file__).resolve()), "--row", str(answer), "--preset",
                   preset, "--device", device, "--limit", str(max(limit - STARTUP, 1.0))]  # fmt: skip
        why = stopped(limit)
        try:
            done = subprocess.run(command + (["--compiled"] if compiled else []), cwd=ROOT,
                                  capture_output=True, text=True, timeout=limit)  # fmt: skip
            lines = (done.stderr or done.stdout or f"exit code {done.returncode}").strip().splitlines()
            why = lines[-1][:300] if lines else why
        except subprocess.TimeoutExpired:
            pass
        found = json.loads(answer.read_text()) if answer.is_file() else {}
    cfg = load_config(preset)
    m = Measurement(**found["measurement"]) if "measurement" in found else Measurement(
        label, "—", False, compiled, cfg["batch_size"], cfg["n_ctx"], cfg["grad_accum"], error=why)  # fmt: skip
    found["measurement"] = m
    if not compiled and "probe" not in found:
        found.setdefault("where", preset)
        found["probe"] = {"probe": f"not run ({why})"}
    return found


# ---- checkpoint -> resume -------------------------------------------------------------------

WORDS = "the a king queen lord lady sword crown night day love fair sweet go come stay run sleep".split()


def write_corpus(path: Path, n_lines: int = 3000, seed: int = 0) -> Path:
    """A small deterministic text (about 75 kB): no download, so the check runs offline."""
    rng = random.Random(seed)
    lines = (" ".join(rng.choice(WORDS) for _ in range(rng.randint(3, 8))).capitalize() + "."
             for _ in range(n_lines))  # fmt: skip
    path.write_text("\n".join(lines) + "\n")
    return path


def resume_config(corpus: Path, device: str, dtype: str, steps: int) -> dict[str, Any]:
    """A model of a few tens of thousands of parameters, dropout on (the RNG state matters)."""
    return {
        "dataset": str(corpus), "vocab_size": 300, "n_ctx": 64, "n_embd": 64, "n_layer": 2,
        "n_head": 2, "dropout": 0.1, "batch_size": 8, "grad_accum": 2, "lr": 3e-3,
        "warmup_steps": 4, "max_steps": steps, "eval_interval": 6, "eval_iters": 2,
        "ckpt_interval": 5, "log_interval": 1, "seed": 7, "device": device, "dtype": dtype,
    }  # fmt: skip


DETERMINISTIC_CUBLAS = {"CUBLAS_WORKSPACE_CONFIG": ":4096:8"}  # see deterministic()


@contextlib.contextmanager
def deterministic(strict: bool | None = True):
    """Deterministic kernels (None: the kernels training runs, untouched): the CUDA Embedding backward otherwise adds with atomics in any
    order, and flash and memory-efficient attention keep their non-deterministic backward unless
    `strict` (warn_only off). Strict, an op with no deterministic kernel raises, and cuBLAS needs
    CUBLAS_WORKSPACE_CONFIG set before its first call in the process, which is why the check
    runs in a process of its own (`run_resume_check`)."""
    if strict is None:
        yield
        return
    enabled = torch.are_deterministic_algorithms_enabled()
    warn_only = torch.is_deterministic_algorithms_warn_only_enabled()
    torch.use_deterministic_algorithms(True, warn_only=not strict)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(enabled, warn_only=warn_only)


def _losses(run_dir: Path, after: int) -> list[tuple]:
    from gpt1_lib.train import read_metrics

    return [(r["step"], r["train_loss"], r.get("val_loss")) for r in read_metrics(run_dir)
            if r["step"] > after]  # fmt: skip


def compare_runs(
    reference: list[tuple], repeat: list[tuple], resumed: list[tuple]
) -> dict[str, Any]:
    """Did the resumed run log what the uninterrupted one did? Bit for bit when two
    uninterrupted runs agree bit for bit; otherwise within RESUME_TOLERANCE (10) times their
    run-to-run difference, since that difference, one random draw, is no exact bound."""

    def gap(a: list[tuple], b: list[tuple]) -> float:
        if [r[0] for r in a] != [r[0] for r in b]:
            return math.inf
        pairs = [(u, v) for ra, rb in zip(a, b) for u, v in zip(ra[1:], rb[1:])]
        if any((u is None) != (v is None) for u, v in pairs):
            return math.inf
        return max((abs(u - v) for u, v in pairs if u is not None), default=0.0)

    noise, diff = gap(reference, repeat), gap(reference, resumed)
    bitwise = resumed == reference
    ok = bool(reference) and (bitwise if noise == 0 else diff <= RESUME_TOLERANCE * noise)
    return {"ok": ok, "bitwise": bitwise, "max_diff": diff, "run_to_run": noise,
            "updates": [r[0] for r in reference]}  # fmt: skip


def resume_check(
    device: str, dtype: str, work: Path, steps: int = 24, stop: int = 10, strict: bool | None = True
) -> dict[str, Any]:
    """Train `steps` updates twice without a break and once stopped at `stop` then resumed;
    compare the losses logged after `stop`, under `deterministic(strict)` kernels."""
    from gpt1_lib.train import train

    cfg = resume_config(write_corpus(work / "corpus.txt"), device, dtype, steps)
    cache, start = work / "cache", time.perf_counter()
    with deterministic(strict), contextlib.redirect_stdout(io.StringIO()):
        train(cfg, work / "reference", progress=False, work_dir=cache)
        train(cfg, work / "repeat", progress=False, work_dir=cache)
        train(cfg, work / "resumed", progress=False, work_dir=cache, until=stop)
        summary = train(cfg, work / "resumed", resume=True, progress=False, work_dir=cache)
    result = compare_runs(
        *(_losses(work / name, stop) for name in ("reference", "repeat", "resumed"))
    )
    result.update(resumed_from=summary["resumed_from"], steps=steps, stop=stop, dtype=summary["dtype"],
                  device=summary["device"], seconds=time.perf_counter() - start,
                  strict=strict)  # fmt: skip
    return result


def run_resume_check(device: str = "cuda", dtype: str = "float16", steps: int = 24, stop: int = 10,
                     timeout: float = 300.0) -> dict[str, Any]:  # fmt: skip
    """`resume_check` in a fresh process with CUBLAS_WORKSPACE_CONFIG set from its start (the
    measurements keep cuBLAS's default workspace); its result, or why it has none."""
    with tempfile.TemporaryDirectory() as tmp:
        answer = Path(tmp) / "resume.json"
        command = [sys.executable, str(Path(__file__).resolve()), "--resume-check", str(answer),
                   "--device", device, "--dtype", dtype, "--steps", str(steps), "--stop", str(stop)]  # fmt: skip
        try:
            done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=timeout,
                                  env={**os.environ, **DETERMINISTIC_CUBLAS})  # fmt: skip
        except subprocess.TimeoutExpired:
            return {"ok": False, "error": f"timed out after {timeout:.0f} s"}
        if not answer.is_file():
            lines = (
                (done.stderr or done.stdout or f"exit code {done.returncode}").strip().splitlines()
            )
            return {"ok": False, "error": lines[-1][:300]}
        return json.loads(answer.read_text())


def _checked(device: str, dtype: str, steps: int, stop: int, strict: bool | None) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        return resume_check(device, dtype, Path(tmp), steps, stop, strict)


def _failure(err: Exception) -> dict[str, Any]:  # a failed check is a result: the report says why
    return {"ok": False, "error": f"{type(err).__name__}: {str(err).strip()[:300]}"}


def resume_check_child(answer: Path, device: str, dtype: str, steps: int, stop: int) -> int:
    """The process `run_resume_check` starts: the checks' results, or their errors, as JSON.

    First with the kernels training runs (what chapter 06 expects on a GPU: the same within
    RESUME_TOLERANCE times the run-to-run difference), then with deterministic kernels, where the resume must be bit for
    bit. An op with no deterministic kernel on this GPU is named, and the second check runs with
    deterministic kernels where torch has them (then compared as the first check is)."""
    try:
        result = _checked(device, dtype, steps, stop, None)
    except Exception as err:
        result = _failure(err)
    refused, kept = None, None
    for strict in (True, False):
        try:
            kept = _checked(device, dtype, steps, stop, strict)
        except RuntimeError as err:
            if strict and "determinis" in str(err):
                refused = str(err).strip().splitlines()[0][:300]
                continue
            kept = _failure(err)
        except Exception as err:
            kept = _failure(err)
        break
    result["deterministic"] = {**(kept or {}), "strict_refused": refused}
    result["ok"] = bool(result["ok"] and result["deterministic"].get("ok"))
    answer.write_text(json.dumps(result))
    return 0


# ---- the CUDA tests, the device, the report -------------------------------------------------


def run_cuda_tests(timeout: float = 240.0) -> dict[str, Any]:
    """`pytest -m cuda tests/test_cuda.py` in a subprocess; its summary line and exit code.

    The project's pytest options (`addopts`: nbval and its sanitizer) are dropped: on a Colab
    runtime without the dev extras they would stop pytest before it ran a test."""
    command = [sys.executable, "-m", "pytest", "-o", "addopts=", "-p", "no:cacheprovider",
               "-m", "cuda", "tests/test_cuda.py", "-q"]  # fmt: skip
    start = time.perf_counter()
    try:
        done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {
            "ok": False,
            "summary": f"timed out after {timeout:.0f} s",
            "tail": "",
            "seconds": timeout,
        }
    lines = [line for line in done.stdout.splitlines() if line.strip()]
    return {"ok": done.returncode == 0, "summary": lines[-1] if lines else f"exit code {done.returncode}",
            "tail": "\n".join(lines[-25:]) if done.returncode else "",
            "seconds": time.perf_counter() - start}  # fmt: skip


def describe_device(device: str) -> dict[str, str]:
    """Name, capability and memory of the device; the versions that decide its kernels."""
    facts = {"python": platform.python_version(), "torch": torch.__version__}
    if torch.device(device).type == "cuda":
        props = torch.cuda.get_device_properties(device)
        facts.update(
            name=props.name, capability=f"{props.major}.{props.minor}",
            memory=f"{props.total_memory / 2**30:.1f} GiB", cuda=str(torch.version.cuda),
            cudnn=str(torch.backends.cudnn.version()), driver=hardware.driver_line(),
        )  # fmt: skip
    else:
        facts.update(name=f"CPU ({platform.processor() or platform.machine()})", capability="-",
                     memory="-", cuda="-", cudnn="-", driver="-")  # fmt: skip
    return facts


def _gib(n: int | None) -> str:
    return "—" if n is None else f"{n / 2**30:.2f} GiB"


def measurement_row(m: Measurement) -> str:
    dtype = f"{m.dtype}{' + GradScaler' if m.scaler else ''}"
    shape = f"{m.batch_size} × {m.n_ctx} × {m.grad_accum}"
    if m.error:
        return f"| {m.label} | {dtype} | {'on' if m.compiled else 'off'} | {shape} | {m.error} | | | | |"
    rate = "—"
    if m.rates:
        rate = f"{m.tokens_per_s:,.0f} ({min(m.rates):,.0f}–{max(m.rates):,.0f})"
    util = "unknown peak" if m.peak_flops is None else f"{m.mfu:.1%}" if m.mfu is not None else "—"
    memory = f"{_gib(m.peak_allocated)} ({_gib(m.peak_reserved)})" if m.peak_allocated else "—"
    first = f"{m.first_update_s:.1f} s" if m.first_update_s is not None else "—"
    kernels = (
        ", ".join(m.sdpa)
        if m.sdpa
        else ("not profiled (compiled)" if m.compiled else "no SDPA call")
    )
    return (f"| {m.label} | {dtype} | {'on' if m.compiled else 'off'} | {shape} | {memory} | {rate} "
            f"| {util} | {first} | {kernels} |")  # fmt: skip


def _resume_sentence(check: dict[str, Any], kernels: str) -> str:
    if "error" in check:
        return f"FAIL ({kernels}): the check could not run: {check['error']}"
    same = ("bit for bit" if check["bitwise"] else
            f"within {check['max_diff']:.2e} (two uninterrupted runs differ by "
            f"{check['run_to_run']:.2e}; the check allows {RESUME_TOLERANCE}× that)")  # fmt: skip
    return (f"{'PASS' if check['ok'] else 'FAIL'} ({kernels}): the losses of updates "
            f"{check['stop'] + 1}–{check['steps']} are {'the same, ' + same if check['ok'] else 'not the same: ' + same}; "
            f"{check['seconds']:.0f} s.")  # fmt: skip


def resume_lines(resume: dict[str, Any] | None) -> list[str]:
    """The report's resume section: what was trained, then one verdict per kind of kernels."""
    if resume is None:
        return ["Not run."]
    first = resume if "error" not in resume else resume.get("deterministic", resume)
    lines = []
    if "steps" in first:
        lines += [f"A tiny model ({first['dtype']} on {first['device']}, dropout 0.1) trained "
                  f"{first['steps']} updates without a break, twice, and again stopped at update "
                  f"{first['stop']} and resumed from its checkpoint.", ""]  # fmt: skip
    lines.append("- " + _resume_sentence(resume, "the kernels training runs"))
    det = resume.get("deterministic")
    if det is not None:
        kind = ("deterministic kernels where torch has them" if det.get("strict_refused")
                else "strictly deterministic kernels")  # fmt: skip
        lines.append("- " + _resume_sentence(det, kind))
        if det.get("strict_refused"):
            lines.append(f"- Strict determinism refused on this GPU: {det['strict_refused']}")
    return lines


def render_report(facts: dict[str, str], rows: list[Measurement], kernels: dict[str, dict[str, str]],
                  resume: dict[str, Any] | None, tests: dict[str, Any] | None, seconds: float) -> str:  # fmt: skip
    """benchmarks/results/gpu.md: the device, then every figure with how it was measured."""
    name = facts["name"]
    peak = next((m.peak_flops for m in rows if m.peak_flops), None)
    if "T4" in name.upper():
        caveat = (
            "This is a T4, the GPU of Colab's free tier: these are the figures a reader there gets."
        )
    else:
        caveat = (
            f"**{name} is not a T4.** The memory figures carry over to a T4 (the same preset, batch "
            "and dtype allocate the same tensors; attention kernels and cuBLAS workspaces differ a "
            "little). The speed figures do not: a T4's dense 16-bit peak is "
            f"{T4_PEAK / 1e12:,.0f} TFLOP/s (`gpt1_lib.gpu_peaks.PEAK_FLOPS`) and its memory "
            "bandwidth 320 GB/s"
            + (f"; this GPU's peak is {peak / 1e12:,.0f} TFLOP/s." if peak else ".")
        )
    lines = [
        f"# GPU check: {name}",
        "",
        f"Written by `benchmarks/gpu_check.py` (`make gpu-check`) on "
        f"{datetime.datetime.now().strftime('%Y-%m-%d %H:%M')}, in {seconds:.0f} s.",
        "",
        f"- device: {name}, compute capability {facts['capability']}, {facts['memory']}",
        f"- driver: {facts['driver']}",
        f"- torch {facts['torch']} (CUDA {facts['cuda']}, cuDNN {facts['cudnn']}), Python {facts['python']}",
        "",
        caveat,
        "",
        "## One training update per preset",
        "",
        "An update as the trainer runs it: `grad_accum` micro-batches of `batch_size` × `n_ctx` "
        "random token ids (data loading not timed), forward and backward under autocast, unscale, "
        "clip, fused AdamW. Warm-up updates untimed; each timed update between two "
        "`torch.cuda.synchronize()`; tokens/s is the median (min–max) over the timed updates. Peak "
        "memory: `torch.cuda.max_memory_allocated` (reserved by the caching allocator in "
        "brackets), weights, gradients, AdamW's state and one micro-batch's activations. MFU: "
        "tokens/s × `gpt1_lib.precision.flops_per_token` (6 per weight + attention) over the "
        'device\'s dense 16-bit peak (`gpt1_lib.gpu_peaks.PEAK_FLOPS`; "unknown peak" where the '
        "device is not listed). SDPA kernel: the op the profiler saw in one eager forward + backward.",
        "",
        "| preset | dtype | compile | micro-batch × accumulation | peak memory (reserved) "
        "| tokens/s | MFU | first update | SDPA kernel that ran |",
        "|---|---|---|---|---:|---:|---:|---:|---|",
        *(measurement_row(m) for m in rows),
        "",
    ]
    notes = sorted({f"- {m.label}: {m.note}" for m in rows if m.note})
    notes += [f"- {m.label}: GradScaler skipped {m.skipped_updates} update(s) (fp16 overflow)"
              for m in rows if m.skipped_updates]  # fmt: skip
    eager = {m.label.split(",")[0]: m for m in rows if not m.compiled and m.rates}
    for m in rows:
        base = eager.get(m.label.split(",")[0])
        if m.compiled and m.rates and base is not None:
            verdict = "faster" if m.tokens_per_s > base.tokens_per_s else "slower"
            first = (
                ""
                if m.first_update_s is None
                else (f"; its first update, compilation included, took {m.first_update_s:.0f} s")
            )
            notes.append(f"- {m.label}: {m.tokens_per_s / base.tokens_per_s:.2f}× the eager "
                         f"tokens/s ({verdict}){first}")  # fmt: skip
    if notes:
        lines += [*notes, ""]
    if kernels:
        lines += ["## SDPA kernels that run alone at the presets' attention shape", "",
                  "Each kernel forced with `torch.nn.attention.sdpa_kernel`, causal, forward and "
                  "backward with dropout 0.1 as in training (`gpt1_lib.hardware.sdpa_probe`).", ""]  # fmt: skip
        lines += [f"- {where}: " + "; ".join(f"{k} {v}" for k, v in probe.items())
                  for where, probe in kernels.items()]  # fmt: skip
        lines.append("")
    lines += ["## Checkpoint → resume", "", *resume_lines(resume)]
    lines += ["", "## CUDA-only tests", ""]
    if tests is None:
        lines.append("Not run (--no-tests).")
    else:
        lines.append(
            f"`pytest -m cuda tests/test_cuda.py`: {tests['summary']} ({tests['seconds']:.0f} s)"
        )
        if tests["tail"]:
            lines += ["", "```", tests["tail"], "```"]
    return "\n".join(lines) + "\n"


PLAN = (("t4", True), ("a10g", False))  # (preset, also under torch.compile)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=OUT, help="the report (default %(default)s)")
    parser.add_argument("--no-tests", action="store_true", help="skip the CUDA-only tests")
    parser.add_argument("--compile-all", action="store_true", help="torch.compile every preset")
    parser.add_argument("--resume-check", type=Path, help=argparse.SUPPRESS)  # the child process
    parser.add_argument("--device", default="cuda", help=argparse.SUPPRESS)
    parser.add_argument("--dtype", default="float16", help=argparse.SUPPRESS)
    parser.add_argument("--steps", type=int, default=24, help=argparse.SUPPRESS)
    parser.add_argument("--stop", type=int, default=10, help=argparse.SUPPRESS)
    parser.add_argument("--row", type=Path, help=argparse.SUPPRESS)  # a row's child process
    parser.add_argument("--preset", help=argparse.SUPPRESS)
    parser.add_argument("--compiled", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--limit", type=float, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.row:
        return row_child(args.row, args.preset, args.compiled, args.device, args.limit)
    if args.resume_check:
        return resume_check_child(args.resume_check, args.device, args.dtype, args.steps, args.stop)
    if not torch.cuda.is_available():
        print(NO_CUDA)
        return 0
    start = time.perf_counter()
    facts = describe_device("cuda")
    print(
        f"gpu-check on {facts['name']} (sm_{facts['capability'].replace('.', '')}, {facts['memory']})",
        flush=True,
    )
    tests = None
    if not args.no_tests:
        tests = run_cuda_tests(timeout=LIMITS["tests"])
        print(f"CUDA tests: {tests['summary']}", flush=True)
    capability = torch.cuda.get_device_capability()
    rows, kernels = [], {}
    for preset, compiled in PLAN:
        for on in (False, True) if compiled or args.compile_all else (False,):
            found = run_row(preset, on, LIMITS["compiled" if on else "eager"])
            rows.append(found["measurement"])
            if "probe" in found:
                kernels[found["where"]] = found["probe"]
            print("  " + measurement_row(found["measurement"]), flush=True)
    resume = run_resume_check("cuda", "float16", timeout=LIMITS["resume"])
    print(f"resume: {'PASS' if resume['ok'] else 'FAIL'}", flush=True)
    text = render_report(facts, rows, kernels, resume, tests, time.perf_counter() - start)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)
    print(text)
    # the preset the GPU chapter picks on this GPU must run; the other one may not fit (a10g's
    # batch on a 16 GB T4) and torch.compile may fail on a GPU: reported, not failures
    own = "a10g" if capability >= (8, 0) else "t4"
    broken = [m.label for m in rows if (m.label == f"{own}, eager" and m.error)
              or (m.loss is not None and not math.isfinite(m.loss))]  # fmt: skip
    failed = (tests is not None and not tests["ok"]) or not resume["ok"] or broken
    if failed:
        print(f"gpu-check FAILED: {', '.join(broken) or 'see the report'} ({args.out})")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
