"""`python -m gpt1_lib.doctor`: the facts a bug report needs, one `name: value` line each.

Hand-written support module (not generated from a notebook), like `profiles`. Most problems a
reader meets on a GPU runtime come from the machine, not the code: a torch built for another
CUDA, a T4 asked for bf16, a full disk, an unmounted Drive, no network for the hub. This prints
them all in one paste (`!python -m gpt1_lib.doctor` on Colab). Every line is worked out on its
own and a line that cannot be worked out says what is missing, so the doctor itself never fails
on the broken machines it exists for; nothing here waits long on the network.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import threading
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

DRIVE = Path("/content/drive")  # where Colab mounts Google Drive
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


def _torch():
    """torch, imported late: a broken torch install must still leave a report."""
    import torch

    return torch


def _gib(n_bytes: float) -> str:
    return f"{n_bytes / 2**30:,.1f} GiB"


def _run(args: list[str], cwd: Path | None = None, timeout: float = 5.0) -> str | None:
    """The stripped stdout of a command, or None if it is missing, fails or hangs."""
    if shutil.which(args[0]) is None:
        return None
    try:
        done = subprocess.run(args, cwd=cwd, capture_output=True, text=True, timeout=timeout)
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def python_line() -> str:
    return f"{platform.python_version()} ({sys.executable})"


def os_line() -> str:
    return f"{platform.platform()}"


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
    torch = _torch()
    isa = torch.backends.cpu.get_cpu_capability()
    return f"{name}, {os.cpu_count()} logical cores, torch uses {torch.get_num_threads()} threads and {isa}"


def torch_line() -> str:
    torch = _torch()
    return f"{torch.__version__} ({Path(torch.__file__).parent})"


def cuda_line() -> str:
    torch = _torch()
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
    smi = _run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"])
    if smi:
        return f"NVIDIA {smi.splitlines()[0].strip()} (nvidia-smi)"
    return "no NVIDIA driver found (no /proc/driver/nvidia/version, no working nvidia-smi)"


def gpu_line() -> str:
    torch = _torch()
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
            free = f", {_gib(torch.cuda.mem_get_info(i)[0])} free"
        except RuntimeError:
            pass
        gpus.append(
            f"{props.name}, compute capability {props.major}.{props.minor}, "
            f"{_gib(props.total_memory)}{free}"
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
    torch = _torch()
    capability = torch.cuda.get_device_capability() if torch.cuda.is_available() else None
    return bf16_verdict(capability, cpu_flags())


def sdpa_probe(device: str, dtype: Any, shape: tuple[int, int, int, int]) -> dict[str, str]:
    """For each SDPA kernel alone, causal, forward and backward: 'runs with dropout' (0.1, what
    training asks for), 'runs without dropout only', or 'no (why)'. It runs the
    kernels, so the answer is what this torch does on this device, not what a table promises."""
    torch = _torch()
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
    torch = _torch()
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


def disk_line(path: Path | None = None) -> str:
    path = Path.cwd() if path is None else path
    usage = shutil.disk_usage(path)
    line = f"{_gib(usage.free)} free of {_gib(usage.total)} at {path}"
    if DRIVE.is_dir() and os.path.ismount(DRIVE):
        drive = shutil.disk_usage(DRIVE)
        line += f"; Drive: {_gib(drive.free)} free of {_gib(drive.total)}"
    return line


def on_colab() -> bool:
    return "COLAB_RELEASE_TAG" in os.environ or "google.colab" in sys.modules


def drive_line() -> str:
    if DRIVE.is_dir() and (os.path.ismount(DRIVE) or (DRIVE / "MyDrive").is_dir()):
        return f"mounted at {DRIVE}"
    if on_colab():
        return (
            "not mounted: checkpoints on local disk are lost when the runtime disconnects; run "
            "from google.colab import drive; drive.mount('/content/drive')"
        )
    return "not mounted (not on Colab)"


def _offline_setting() -> str | None:
    for name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):
        if os.environ.get(name, "0").lower() in ("1", "true", "yes", "on"):
            return f"{name}={os.environ[name]}"
    return None


def hub_line(timeout: float = 3.0, check: Callable[[float], bool] | None = None) -> str:
    """Whether huggingface.co answers, within `timeout` seconds whatever the network does."""
    if setting := _offline_setting():
        return f"unreachable ({setting}: offline by choice)"
    if check is None:
        from gpt1_lib.pretrained import hub_reachable

        check = hub_reachable
    probe: Callable[[float], bool] = check
    answer: list[bool | str] = []

    def ask() -> None:
        try:
            answer.append(probe(timeout))
        except Exception as err:  # e.g. huggingface_hub missing: say so
            answer.append(f"{type(err).__name__}: {err}")

    # a daemon thread: a DNS lookup that hangs ignores socket timeouts, and must not hang us
    worker = threading.Thread(target=ask, daemon=True)
    worker.start()
    worker.join(timeout + 1.0)
    if not answer:
        return f"unreachable (no answer within {timeout + 1.0:.0f} s)"
    endpoint = os.environ.get("HF_ENDPOINT", "https://huggingface.co")
    if isinstance(answer[0], str):
        return f"unknown (the check failed: {answer[0]})"
    return f"reachable ({endpoint})" if answer[0] else f"unreachable (no connection to {endpoint})"


def install_line() -> str:
    """gpt1_lib's version, how it was installed (PEP 610's direct_url.json) and its git commit."""
    import gpt1_lib

    package = Path(gpt1_lib.__file__).resolve().parent
    parts = [gpt1_lib.__version__]
    parts.append(_install_kind())
    if _run(["git", "--version"]) is None:
        parts.append("git not found, so no commit")
    elif commit := _run(["git", "rev-parse", "--short=12", "HEAD"], cwd=package):
        dirty = _run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=package)
        parts.append(f"git commit {commit}{' with uncommitted changes' if dirty else ''}")
    else:
        parts.append("not in a git checkout")
    return f"{', '.join(parts)} (imported from {package})"


def _install_kind() -> str:
    from importlib import metadata

    try:
        dists = list(metadata.distributions(name="gpt1_lib"))
    except Exception:  # a damaged environment: the rest of the line still helps
        dists = []
    if not dists:
        return "not installed (imported from a path)"
    for dist in dists:  # a checkout's *.egg-info may come first, without direct_url.json
        text = dist.read_text("direct_url.json")
        if not text:
            continue
        info = json.loads(text)
        url = info.get("url", "?")
        if info.get("dir_info", {}).get("editable"):
            return f"editable install of {url.removeprefix('file://')}"
        if vcs := info.get("vcs_info"):
            ref = vcs.get("requested_revision")
            return f"installed from {url}{'@' + ref if ref else ''} (commit {vcs.get('commit_id', '?')[:12]})"
        return f"installed from {url}"
    return "installed (no record of where from)"


def profile_line(gpu_presets: bool) -> str:
    from gpt1_lib.profiles import detect_profile

    try:
        name, why = detect_profile(gpu_presets=gpu_presets)
    except ValueError as err:  # a bad GPT1_PROFILE
        return f"none: {err}"
    return f"{name} ({why})"


LINES: list[tuple[str, Callable[[], str]]] = [
    ("python", python_line),
    ("os", os_line),
    ("cpu", cpu_line),
    ("torch", torch_line),
    ("cuda", cuda_line),
    ("driver", driver_line),
    ("gpu", gpu_line),
    ("bf16", bf16_line),
    ("sdpa", sdpa_line),
    ("disk", disk_line),
    ("drive", drive_line),
    ("hub", hub_line),
    ("gpt1_lib", install_line),
    ("profile (GPU chapter)", lambda: profile_line(gpu_presets=True)),
    ("profile (teaching chapters)", lambda: profile_line(gpu_presets=False)),
]


def report(lines: list[tuple[str, Callable[[], str]]] | None = None) -> list[str]:
    """Every `name: value` line; a line whose check fails says why instead of stopping the rest."""
    out = []
    for name, make in LINES if lines is None else lines:
        try:
            value = make()
        except Exception as err:  # the doctor must report, never crash
            first = str(err).splitlines()[0] if str(err) else ""
            value = f"could not tell ({type(err).__name__}: {first})"
        out.append(f"{name}: {value}")
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m gpt1_lib.doctor",
        description="Print what a bug report needs: versions, GPU, bf16, SDPA, disk, Drive, "
        "hub, install, profile. Paste the output into the issue.",
    )
    parser.parse_args(argv)
    for line in report():
        print(line, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
