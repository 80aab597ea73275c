"""`python -m gpt1_lib.doctor`: every line of a bug report present, fast offline, never a crash;
the GPU branches (bf16, profile, GPU line) exercised on a CPU by faking what CUDA reports."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

import gpt1_lib
from gpt1_lib import doctor, hardware

ROOT = Path(__file__).resolve().parent.parent
NAMES = [name for name, _ in doctor.LINES]


@pytest.fixture
def fake_gpu(monkeypatch):
    """torch.cuda reports one GPU of the given name and compute capability (no GPU needed)."""

    def install(name: str, capability: tuple[int, int], memory_gib: float = 15.0) -> None:
        props = SimpleNamespace(name=name, major=capability[0], minor=capability[1],
                                total_memory=int(memory_gib * 2**30))  # fmt: skip
        monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
        monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
        monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: capability)
        monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: name)
        monkeypatch.setattr(torch.cuda, "get_device_properties", lambda device=None: props)
        monkeypatch.setattr(
            torch.cuda, "mem_get_info", lambda device=None: (2**30, props.total_memory)
        )

    monkeypatch.delenv("GPT1_PROFILE", raising=False)
    return install


def test_the_command_prints_every_line_and_exits_0_offline():
    env = dict(os.environ, HF_HUB_OFFLINE="1")
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "gpt1_lib.doctor"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)  # fmt: skip
    elapsed = time.perf_counter() - start
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert [line.split(": ", 1)[0] for line in lines] == NAMES, done.stdout
    assert all(line.split(": ", 1)[1].strip() for line in lines), done.stdout
    assert "could not tell" not in done.stdout, done.stdout  # every check works on this machine
    by_name = dict(line.split(": ", 1) for line in lines)
    assert by_name["hub"].startswith("unreachable (HF_HUB_OFFLINE=1")
    assert by_name["python"].startswith(sys.version.split()[0])
    assert by_name["torch"].startswith(torch.__version__)
    if not torch.cuda.is_available():
        assert by_name["gpu"].startswith("none") and by_name["cuda"].startswith("not available")
    # the interpreter and torch starting dominate; a hub or git check that hung would not fit
    assert elapsed < 60, f"the doctor took {elapsed:.0f} s"


def test_its_own_checks_take_under_10_seconds_offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    start = time.perf_counter()
    lines = doctor.report()
    assert time.perf_counter() - start < 10
    assert len(lines) == len(NAMES)


def test_a_failing_check_says_why_and_the_others_still_run():
    def broken() -> str:
        raise RuntimeError("no driver\nsecond line")

    lines = doctor.report([("python", doctor.python_line), ("gpu", broken), ("os", doctor.os_line)])
    assert lines[1] == "gpu: could not tell (RuntimeError: no driver)"
    assert lines[0].startswith("python: 3.") and lines[2].startswith("os: ")


@pytest.mark.parametrize(
    ("capability", "verdict"),
    [((7, 5), "not fast: emulated on sm_75"), ((8, 0), "fast: sm_80"), ((8, 6), "fast: sm_86"),
     ((9, 0), "fast: sm_90"), ((6, 1), "not fast: emulated on sm_61")],
)  # fmt: skip
def test_bf16_is_fast_from_compute_capability_8_0(capability, verdict):
    text = hardware.bf16_verdict(capability, set())
    assert text.startswith(verdict)
    assert ("GradScaler" in text) == (capability < (8, 0))


def test_bf16_on_a_cpu_depends_on_its_amx_or_avx512_bf16_flags():
    assert hardware.bf16_verdict(None, {"avx2", "amx_bf16", "avx512_bf16"}).startswith(
        "fast on this CPU"
    )
    assert hardware.bf16_verdict(None, {"avx512f", "avx512_bf16"}).startswith(
        "partly fast on this CPU"
    )
    assert hardware.bf16_verdict(None, {"avx2", "fma"}).startswith("not fast: no CUDA GPU")


def test_bf16_line_reads_the_gpu(fake_gpu):
    fake_gpu("Tesla T4", (7, 5))
    assert doctor.bf16_line().startswith("not fast: emulated on sm_75")
    fake_gpu("NVIDIA H200", (9, 0))
    assert doctor.bf16_line().startswith("fast: sm_90")


@pytest.mark.parametrize(
    ("gpu", "capability", "gpu_chapter"),
    [("Tesla T4", (7, 5), "t4 (Tesla T4 (sm_75) has no fast bf16"),
     ("NVIDIA A10G", (8, 6), "a10g (NVIDIA A10G (sm_86) has fast bf16)"),
     ("NVIDIA H100 80GB HBM3", (9, 0), "a10g (NVIDIA H100 80GB HBM3 (sm_90) has fast bf16)")],
)  # fmt: skip
def test_profile_lines_on_a_gpu(fake_gpu, gpu, capability, gpu_chapter):
    fake_gpu(gpu, capability)
    assert doctor.profile_line(gpu_presets=True).startswith(gpu_chapter)
    teaching = doctor.profile_line(gpu_presets=False)
    assert teaching.startswith(f"cpu (the course size, on {gpu}")


def test_profile_lines_without_a_gpu_and_with_gpt1_profile(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.delenv("GPT1_PROFILE", raising=False)
    assert doctor.profile_line(True) == doctor.profile_line(False) == "cpu (no CUDA GPU found)"
    monkeypatch.setenv("GPT1_PROFILE", "t4")
    assert doctor.profile_line(False) == "t4 (set by GPT1_PROFILE)"
    monkeypatch.setenv("GPT1_PROFILE", "tpu")
    assert doctor.profile_line(True).startswith("none: GPT1_PROFILE='tpu' is not a profile")


def test_gpu_and_cuda_lines_on_a_faked_gpu(fake_gpu):
    fake_gpu("Tesla T4", (7, 5), memory_gib=15.0)
    assert doctor.gpu_line() == "Tesla T4, compute capability 7.5, 15.0 GiB, 1.0 GiB free"
    if torch.version.cuda is not None:
        assert doctor.cuda_line().startswith(f"{torch.version.cuda} (torch's build)")


def test_cuda_line_names_a_cpu_only_build(monkeypatch):
    monkeypatch.setattr(torch.version, "cuda", None)
    assert "CPU-only build" in doctor.cuda_line()


def test_the_hub_line_never_waits_long(monkeypatch):
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    start = time.perf_counter()
    line = doctor.hub_line(timeout=0.2, check=lambda timeout: time.sleep(30) or True)
    assert time.perf_counter() - start < 3
    assert line == "unreachable (no answer within 1 s)"
    assert doctor.hub_line(check=lambda timeout: True).startswith("reachable (")
    assert doctor.hub_line(check=lambda timeout: False).startswith("unreachable (no connection")
    assert doctor.hub_line(check=lambda timeout: 1 / 0).startswith(
        "unknown (the check failed: ZeroDivisionError"
    )
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert doctor.hub_line(check=lambda timeout: True) == (
        "unreachable (HF_HUB_OFFLINE=1: offline by choice)"
    )


def test_the_install_line_without_git(monkeypatch):
    real_which = doctor.shutil.which
    monkeypatch.setattr(
        doctor.shutil, "which", lambda cmd: None if cmd == "git" else real_which(cmd)
    )
    line = doctor.install_line()
    assert line.startswith(f"{gpt1_lib.__version__}, ")
    assert "git not found, so no commit" in line


def test_the_install_line_names_the_commit_in_a_checkout():
    if hardware.run_command(["git", "rev-parse", "HEAD"], cwd=ROOT) is None:
        pytest.skip("not a git checkout")
    assert "git commit " in doctor.install_line()


def test_drive_and_disk_lines(monkeypatch, tmp_path):
    monkeypatch.setattr(doctor, "DRIVE", tmp_path / "drive")
    monkeypatch.delenv("COLAB_RELEASE_TAG", raising=False)
    assert doctor.drive_line() == "not mounted (not on Colab)"
    monkeypatch.setenv("COLAB_RELEASE_TAG", "release-colab_20250101")
    assert "drive.mount('/content/drive')" in doctor.drive_line()
    (tmp_path / "drive" / "MyDrive").mkdir(parents=True)
    assert doctor.drive_line() == f"mounted at {tmp_path / 'drive'}"
    assert "free of" in doctor.disk_line(tmp_path) and str(tmp_path) in doctor.disk_line(tmp_path)


def test_sdpa_probe_on_cpu_runs_the_kernels():
    probe = hardware.sdpa_probe("cpu", torch.float32, (1, 2, 16, 8))
    assert probe["math"] == "runs with dropout"  # what CPU training with dropout falls back to
    assert probe["memory-efficient"] == probe["cuDNN"] == "no (CUDA only)"
    assert probe["flash"] == "runs without dropout only"  # torch's CPU flash kernel has no dropout
