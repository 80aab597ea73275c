"""What a machine can do for the book: its CPU, CUDA build and driver, GPU, bf16 and SDPA
kernels, each worked out on its own as one `name: value` line for `python -m gpt1_lib.doctor`.

Hand-written support module (not generated from a notebook), like `profiles` and `doctor`.
torch is imported late: a broken torch install must still leave a report.
"""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
import warnings
from pathlib import Path
from typing import Any

BACKENDS = (  # SDPA kernels: (name in reports, torch.nn.attention.SDPBackend member)
    ("flash", "FLASH_ATTENTION"),
    ("memory-efficient", "EFFICIENT_ATTENTION"),
    ("cuDNN", "CUDNN_ATTENTION"),
    ("math", "MATH"),
)
ENABLED_FLAGS = {  # the global switches a user may have turned off (torch.backends.cuda)
    "flash": "flash_sdp_enabled",
    "memory-efficient": "mem_efficient_sdp_enabled",
    "cuDNN": "cudnn_sdp_enabled",
    "math": "math_sdp_enabled",
}


def import_torch():
    """torch, imported late: a broken torch install must still leave a report."""
    import torch

    return torch


def gib(n_bytes: float) -> str:
    return f"{n_bytes / 2**30:,.1f} GiB"


def run_command(args: list[str], cwd: Path | None = None, timeout: float = 5.0) -> str | None:
    """The stripped stdout of a command, or None if it is missing, fails or hangs."""
    if shutil.which(args[0]) is None:
        return None
    try:
        done = subprocess.run(args, cwd=cwd, capture_output=True, text=True, timeout=timeout)
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def load_average(sep: str = ", ") -> str:
    """The 1, 5 and 15 minute load averages, for a benchmark's report; "n/a" on Windows, which
    has none (os.getloadavg is POSIX-only)."""
    if not hasattr(os, "getloadavg"):
        return "n/a"
    try:
        return sep.join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "n/a"


def cpu_flags() -> set[str]:
    """The feature flags of the CPU (/proc/cpuinfo; empty where there is none, e.g. macOS)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return set()
    for line in text.splitlines():
        if line.startswith(("flags", "Features")):
            return set(line.split(":", 1)[1].split())
    return set()


def cpu_name() -> str:
    """The CPU's model name (Linux's /proc/cpuinfo), else what `platform` knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def cpu_line() -> str:
    name = cpu_name()
    torch = import_torch()
    isa = torch.backends.cpu.get_cpu_capability()
    return f"{name}, {os.cpu_count()} logical cores, torch uses {torch.get_num_threads()} threads and {isa}"


def cuda_line() -> str:
    torch = import_torch()
    built = torch.version.cuda
    if built is None:
        return "not available: this torch is a CPU-only build (install a CUDA build to use a GPU)"
    if not torch.cuda.is_available():
        return (
            f"not available: torch is built for CUDA {built} but sees no GPU "
            "(no GPU, no driver, or a driver too old for this build)"
        )
    cudnn = torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None
    return (
        f"{built} (torch's build), cuDNN {cudnn or 'not available'}, "
        f"{torch.cuda.device_count()} device(s) visible"
    )


def driver_line() -> str:
    """The NVIDIA driver's version: torch does not say, the kernel module and nvidia-smi do."""
    try:
        text = Path("/proc/driver/nvidia/version").read_text()
        for word in text.split():
            if word.count(".") >= 1 and word.replace(".", "").isdigit():
                return f"NVIDIA {word} (/proc/driver/nvidia/version)"
    except OSError:
        pass
    smi = run_command(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"])
    if smi:
        return f"NVIDIA {smi.splitlines()[0].strip()} (nvidia-smi)"
    return "no NVIDIA driver found (no /proc/driver/nvidia/version, no working nvidia-smi)"


def gpu_line() -> str:
    torch = import_torch()
    if not torch.cuda.is_available():
        mps = getattr(torch.backends, "mps", None)
        if mps is not None and mps.is_available():
            return "no CUDA GPU; Apple MPS is available, but the book's GPU presets need CUDA"
        return "none: torch sees no CUDA GPU"
    gpus = []
    for i in range(torch.cuda.device_count()):
        props = torch.cuda.get_device_properties(i)
        free = ""
        try:
            free = f", {gib(torch.cuda.mem_get_info(i)[0])} free"
        except RuntimeError:
            pass
        gpus.append(
            f"{props.name}, compute capability {props.major}.{props.minor}, "
            f"{gib(props.total_memory)}{free}"
        )
    return "; ".join(f"[{i}] {g}" if len(gpus) > 1 else g for i, g in enumerate(gpus))


def bf16_verdict(capability: tuple[int, int] | None, flags: set[str]) -> str:
    """Whether bf16 is *fast* here, not merely accepted: torch runs bf16 almost anywhere, but
    below compute capability 8.0 (a T4) it is emulated and slower than fp16; a CPU needs
    AMX-BF16 (or at least AVX512-BF16) to do better than converting to fp32 in software."""
    if capability is not None:
        sm = f"sm_{capability[0]}{capability[1]}"
        if tuple(capability) >= (8, 0):
            return f"fast: {sm} has bf16 tensor cores (compute capability >= 8.0); the GPU chapter trains in bf16"
        return (
            f"not fast: emulated on {sm} (compute capability < 8.0, e.g. a T4), slower than fp16; "
            "the GPU chapter trains in fp16 with a GradScaler"
        )
    if "amx_bf16" in flags:
        return "fast on this CPU (no CUDA GPU): it has AMX-BF16, so bf16 matmuls run on its matrix tiles"
    if "avx512_bf16" in flags:
        return (
            "partly fast on this CPU (no CUDA GPU): it has AVX512-BF16 (bf16 dot products in "
            "hardware) but no AMX-BF16 matrix tiles"
        )
    return (
        "not fast: no CUDA GPU, and this CPU has neither AMX-BF16 nor AVX512-BF16 "
        "(bf16 is converted to fp32 in software)"
    )


def bf16_line() -> str:
    torch = import_torch()
    capability = torch.cuda.get_device_capability() if torch.cuda.is_available() else None
    return bf16_verdict(capability, cpu_flags())


def sdpa_probe(device: str, dtype: Any, shape: tuple[int, int, int, int]) -> dict[str, str]:
    """For each SDPA kernel alone, causal, forward and backward: 'runs with dropout' (0.1, what
    training asks for), 'runs without dropout only', or 'no (why)'. It runs the
    kernels, so the answer is what this torch does on this device, not what a table promises."""
    torch = import_torch()
    import torch.nn.functional as F
    from torch.nn.attention import SDPBackend, sdpa_kernel

    generator = torch.Generator(device="cpu").manual_seed(0)
    q = torch.randn(*shape, generator=generator).to(device=device, dtype=dtype)
    results = {}
    for name, member in BACKENDS:
        backend = getattr(SDPBackend, member, None)
        if backend is None:
            results[name] = "no (not in this torch)"
            continue
        if device == "cpu" and name in ("memory-efficient", "cuDNN"):
            results[name] = "no (CUDA only)"
            continue
        why = ""
        for dropout, label in ((0.1, "runs with dropout"), (0.0, "runs without dropout only")):
            x = q.detach().requires_grad_()
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                try:
                    with sdpa_kernel(backend):
                        out = F.scaled_dot_product_attention(
                            x, x, x, dropout_p=dropout, is_causal=True
                        )
                        out.float().sum().backward()
                except RuntimeError as err:
                    reasons = [str(w.message).split("(Triggered")[0].strip() for w in caught]
                    why = why or (reasons[0] if reasons else str(err).splitlines()[0])
                    continue
            results[name] = label
            break
        else:
            results[name] = f"no ({why[:100].rstrip(' .:')})"
    return results


def sdpa_line() -> str:
    """What each SDPA kernel does here: on CUDA in the GPU chapter's dtype at the GPU presets'
    shape (12 heads x 512 positions x 64); on a CPU at a small shape (the choice of the CPU
    kernel does not depend on size): CPU training, with dropout, falls back to math."""
    torch = import_torch()
    if torch.cuda.is_available():
        fast_bf16 = torch.cuda.get_device_capability() >= (8, 0)
        device, dtype = "cuda", torch.bfloat16 if fast_bf16 else torch.float16
        shape = (1, 12, 512, 64)
    else:
        device, dtype, shape = "cpu", torch.float32, (1, 2, 64, 16)
    parts = []
    for name, result in sdpa_probe(device, dtype, shape).items():
        flag = getattr(torch.backends.cuda, ENABLED_FLAGS[name], None)
        off = device == "cuda" and flag is not None and not flag()
        parts.append(f"{name} {result}{' but switched off in torch.backends.cuda' if off else ''}")
    where = f"{device}, {str(dtype).removeprefix('torch.')}, causal, {' x '.join(map(str, shape))}"
    return f"{'; '.join(parts)} ({where})"
