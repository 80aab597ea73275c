"""Which preset runs where: a teaching chapter takes the course size on any runtime, the GPU
chapter lets the GPU choose, and `GPT1_PROFILE` overrides both."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import torch

from gpt1_lib.profiles import detect_profile

ROOT = Path(__file__).resolve().parent.parent
GPU_CHAPTER = "08_train_gpt1.ipynb"


def fake_gpu(monkeypatch, name: str, capability: tuple[int, int]) -> None:
    monkeypatch.delenv("GPT1_PROFILE", raising=False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda *a: capability)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda *a: name)


@pytest.mark.parametrize(
    ("gpu", "capability", "preset"), [("Tesla T4", (7, 5), "t4"), ("NVIDIA A10G", (8, 6), "a10g")]
)
def test_a_gpu_chooses_its_preset_only_for_the_gpu_chapter(monkeypatch, gpu, capability, preset):
    fake_gpu(monkeypatch, gpu, capability)
    assert detect_profile(gpu_presets=True)[0] == preset
    name, why = detect_profile(gpu_presets=False)
    assert name == "cpu" and gpu in why and "GPT1_PROFILE=t4" in why


def test_gpt1_profile_opts_a_teaching_chapter_in_to_a_gpu_preset(monkeypatch):
    fake_gpu(monkeypatch, "Tesla T4", (7, 5))
    monkeypatch.setenv("GPT1_PROFILE", "t4")
    assert detect_profile(gpu_presets=False) == ("t4", "set by GPT1_PROFILE")


def test_only_the_gpu_chapter_asks_for_the_gpu_presets():
    for path in sorted((ROOT / "notebooks").glob("[0-9A][0-9]_*.ipynb")):
        code = "\n".join(
            "".join(c["source"]) for c in json.loads(path.read_text())["cells"]
            if c["cell_type"] == "code"
        )  # fmt: skip
        calls = re.findall(r"active_profile\(([^)]*)\)", code)
        assert calls, f"{path.name} never calls active_profile()"
        wants_gpu = any("gpu_presets=True" in args for args in calls)
        assert wants_gpu == (path.name == GPU_CHAPTER), path.name
