"""`python -m gpt1_lib.doctor --run` and `--parity`: each symptom planted in a synthetic run
is named, a healthy run is said to be inside the band, an accelerator that corrupts a gradient
is not trusted, and the device choice is CUDA, then MPS, then the CPU."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
import yaml

import gpt1_lib.parity as parity_module
from gpt1_lib import doctor, profiles
from gpt1_lib.config import load_config
from gpt1_lib.health import BAND_KEYS, diagnose, draw, load_band
from gpt1_lib.parity import parity

STEPS = list(range(20, 2201, 20))
VAL_STEPS = list(range(200, 2201, 200))
ENTROPY = 5.3  # a made-up unigram entropy, well apart from ln 2048 = 7.62


def curve(step: int) -> float:
    """A healthy-looking training loss: from ln V down towards 1.5."""
    return 1.5 + (math.log(2048) - 1.5) * math.exp(-step / 300)


@pytest.fixture
def band() -> dict:
    cfg = load_config("cpu")
    return {
        "preset": "cpu", "seeds": [1, 2, 3], "config": {k: cfg[k] for k in BAND_KEYS},
        "steps": STEPS, "train_loss": {"low": [curve(s) - 0.05 for s in STEPS],
                                       "high": [curve(s) + 0.05 for s in STEPS],
                                       "mean": [curve(s) for s in STEPS]},
        "val_steps": VAL_STEPS, "val_loss": {}, "unigram_entropy": ENTROPY,
    }  # fmt: skip


def plant(run: Path, train=curve, val=None, extra=None, **config) -> Path:
    """A run folder with the cpu preset's config.yaml (changed by `config`) and a metrics.jsonl
    whose training loss is `train(step)` and validation loss `val(step)` every 200 updates."""
    run.mkdir(parents=True, exist_ok=True)
    (run / "config.yaml").write_text(yaml.safe_dump({**load_config("cpu"), **config}))
    val = val or (lambda step: train(step) + 0.05)
    with (run / "metrics.jsonl").open("w") as f:
        for step in STEPS:
            record = {"step": step, "train_loss": train(step), "lr": 1e-3}
            if step % 200 == 0:
                record["val_loss"] = val(step)
            record.update(extra(step) if extra else {})
            f.write(json.dumps(record) + "\n")
    return run


def test_a_healthy_run_is_inside_the_band_and_has_no_symptom(tmp_path, band):
    lines = diagnose(plant(tmp_path / "run"), band)
    assert lines[0].startswith("within the band") and "110 of 110 points" in lines[0], lines
    assert lines[1].startswith("no symptom found") and len(lines) == 2


def test_a_slower_run_is_above_the_band_from_where_it_left_it(tmp_path, band):
    lines = diagnose(plant(tmp_path / "run", lambda s: curve(s) + (0.4 if s >= 600 else 0)), band)
    assert lines[0].startswith("above the band from update 600"), lines


def test_a_run_with_other_settings_gets_no_band_but_still_a_diagnosis(tmp_path, band):
    lines = diagnose(plant(tmp_path / "run", lr=1e-3, n_layer=2), band)
    assert lines[0].startswith("no reference band: n_layer, lr differ from the cpu preset's")
    one = diagnose(plant(tmp_path / "mine", dataset="my.txt"), band)[0]
    assert one.startswith("no reference band: dataset differs from the cpu preset's"), one
    assert lines[1].startswith("no symptom found")


def test_a_loss_stuck_at_the_unigram_entropy_is_the_plateau(tmp_path, band):
    stuck = lambda s: curve(s) if s < 200 else ENTROPY + 0.01 * math.sin(s)  # noqa: E731
    lines = diagnose(plant(tmp_path / "run", stuck), band)
    assert any(line.startswith("stuck at the unigram plateau") and "5.30" in line for line in lines)
    assert "pre_ln" in next(line for line in lines if line.startswith("stuck"))


# A real run stuck on the plateau: the cpu preset with pre_ln: false, trained on this machine
# (2026-12-07); its training loss every 20 updates, 20 to 440. The 20-update means wander by
# about 0.06 nats, more than a flat-range test allows.
POST_LN = [7.447, 6.464, 6.077, 6.068, 6.102, 6.115, 6.106, 6.07, 6.093, 6.072, 6.086, 6.064,
           6.055, 6.05, 6.052, 6.079, 6.024, 6.038, 6.078, 6.048, 6.068, 6.057]  # fmt: skip


def test_a_real_post_ln_run_on_the_plateau_is_named_though_its_loss_wanders(tmp_path):
    band = load_band("cpu")
    run = tmp_path / "postln"
    run.mkdir()
    (run / "config.yaml").write_text(yaml.safe_dump({**load_config("cpu"), "pre_ln": False}))
    (run / "metrics.jsonl").write_text("".join(
        json.dumps({"step": 20 * (i + 1), "train_loss": v}) + "\n" for i, v in enumerate(POST_LN)))
    lines = diagnose(run, band)
    assert lines[0].startswith("no reference band: pre_ln differs")
    found = [line for line in lines if line.startswith("stuck at the unigram plateau")]
    assert found and "since update 320" in found[0], lines


def test_a_noisy_plateau_is_named_and_a_noisy_descent_is_not(tmp_path, band):
    noise = [0.06 * math.sin(1.7 * s) for s in STEPS]  # wobbles as real 20-update means do
    stuck = lambda s: (curve(s) if s < 200 else ENTROPY) + noise[STEPS.index(s)]  # noqa: E731
    assert any(line.startswith("stuck") for line in diagnose(plant(tmp_path / "a", stuck), band))
    leaving = lambda s: ENTROPY + 0.6 - s / 2000 + noise[STEPS.index(s)]  # noqa: E731
    assert not any(line.startswith("stuck") for line in diagnose(plant(tmp_path / "b", leaving), band))


def test_a_loss_at_ln_v_says_nothing_is_learned(tmp_path, band):
    lines = diagnose(plant(tmp_path / "run", lambda s: math.log(2048) - 0.001 * (s % 3)), band)
    found = [line for line in lines if line.startswith("loss at ln V")]
    assert found and "ln 2048" in found[0] and "frozen model" in found[0]
    assert not any(line.startswith(("stuck", "flat")) for line in lines)  # it follows from ln V


def test_nan_is_named_with_the_update_it_began(tmp_path, band):
    lines = diagnose(plant(tmp_path / "run", lambda s: curve(s) if s < 1000 else math.nan), band)
    assert any(line.startswith("NaN: the loss is not a number from update 1000") for line in lines)


def test_a_collapsing_fp16_loss_scale_is_named(tmp_path, band):
    scale = lambda s: {"loss_scale": 65536.0 / 2 ** (s // 100), "skipped_updates": s // 2}  # noqa: E731
    lines = diagnose(plant(tmp_path / "run", extra=scale), band)
    found = [line for line in lines if line.startswith("the fp16 loss scale collapsed")]
    assert found and "1100 of 2200 updates skipped" in found[0] and "bfloat16" in found[0]
    steady = lambda s: {"loss_scale": 65536.0, "skipped_updates": 3}  # noqa: E731
    steady_lines = diagnose(plant(tmp_path / "ok", extra=steady), band)
    assert not any(line.startswith("the fp16 loss scale") for line in steady_lines)


def test_validation_rising_while_training_falls_is_overfitting(tmp_path, band):
    val = lambda s: curve(s) + 0.05 + (0.0 if s <= 1000 else 0.001 * (s - 1000))  # noqa: E731
    lines = diagnose(plant(tmp_path / "run", val=val), band)
    found = [line for line in lines if line.startswith("overfitting")]
    assert found and "(update 1000)" in found[0] and "ckpt_best.pt keeps update 1000" in found[0]


def test_the_picture_is_written_beside_the_run_and_nothing_else(tmp_path, band):
    run = plant(tmp_path / "run")
    before = {p.name for p in run.iterdir()}
    assert draw(run, band) == run / "health.png"
    assert (run / "health.png").read_bytes().startswith(b"\x89PNG")
    assert {p.name for p in run.iterdir()} == before | {"health.png"}  # no temporary left


def test_doctor_run_prints_the_findings_and_refuses_a_folder_without_metrics(tmp_path, capsys):
    assert doctor.main(["--run", str(tmp_path / "empty")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1
    young = tmp_path / "young"  # a run folder before its first metrics line
    young.mkdir()
    (young / "config.yaml").write_text(yaml.safe_dump(load_config("cpu")))
    assert doctor.main(["--run", str(young)]) == 0
    assert "no metrics yet" in capsys.readouterr().out
    run = plant(tmp_path / "run", lambda s: math.log(2048))
    assert doctor.main(["--run", str(run)]) == 0
    out = capsys.readouterr().out
    assert "loss at ln V" in out and f"picture: {run / 'health.png'}" in out


def test_the_committed_band_is_the_cpu_presets_and_consistent():
    band = load_band("cpu")
    assert band is not None, "run benchmarks/cpu_band.py"
    assert band["config"] == {k: load_config("cpu")[k] for k in BAND_KEYS}
    assert len(band["seeds"]) >= 5 and band["steps"] == sorted(band["steps"])
    for curves in (band["train_loss"], band["val_loss"]):
        assert all(lo <= m <= hi for lo, m, hi in zip(curves["low"], curves["mean"], curves["high"]))
    assert 0 < band["unigram_entropy"] < math.log(band["config"]["vocab_size"])
    assert band["train_loss"]["mean"][-1] < band["unigram_entropy"] - 1  # the runs left it


# ---- parity -------------------------------------------------------------------------------
def test_the_cpu_against_itself_is_trusted_to_the_bit():
    trust, lines = parity("cpu")
    assert trust and "largest relative difference 0.0e+00" in lines[1]
    assert lines[-1].startswith("trust cpu")


def test_an_accelerator_that_corrupts_a_gradient_is_not_trusted(monkeypatch, capsys):
    real = parity_module.run_updates

    def fake_device(device, steps=parity_module.STEPS, seed=0):
        """'fake' is the CPU with one gradient scaled by 1.5, as a broken kernel might."""
        losses, grads = real("cpu", steps, seed)
        if device == "fake":
            grads = {n: g * 1.5 if n == "h.1.mlp.c_fc.weight" else g for n, g in grads.items()}
        return losses, grads

    monkeypatch.setattr(parity_module, "run_updates", fake_device)
    trust, lines = parity("fake")
    assert not trust and "h.1.mlp.c_fc.weight" in lines[2]
    assert lines[-1].startswith("do not trust fake") and "device=cpu" in lines[-1]
    monkeypatch.setattr("gpt1_lib.precision.resolve_device", lambda d: d)  # 'cuda': the fake
    monkeypatch.setattr(parity_module, "run_updates",
                        lambda d, *a: fake_device("fake" if d == "cuda" else d, *a))  # fmt: skip
    assert doctor.main(["--parity", "cuda"]) == 2
    assert "do not trust cuda" in capsys.readouterr().out


def test_an_accelerator_whose_training_fails_is_not_trusted_in_one_line(monkeypatch, capsys):
    real = parity_module.run_updates

    def broken(device, steps=parity_module.STEPS, seed=0):
        if device != "cpu":
            raise RuntimeError("MPS backend out of memory\n(a long trace)")
        return real(device, steps, seed)

    monkeypatch.setattr(parity_module, "run_updates", broken)
    trust, lines = parity("fake")
    assert not trust and lines[-1].startswith("do not trust fake: training on it failed")
    assert "RuntimeError: MPS backend out of memory" in lines[-1] and "trace" not in lines[-1]
    monkeypatch.setattr("gpt1_lib.precision.resolve_device", lambda d: d)  # as if MPS were here
    assert doctor.main(["--parity", "mps"]) == 2
    assert "do not trust mps: training on it failed" in capsys.readouterr().out


@pytest.mark.parametrize(("device", "says"), [("mps", "this machine has no mps device"),
                                               ("cuda:1", "this machine has no cuda:1 device"),
                                               ("xyz", "xyz is not a device torch knows")])  # fmt: skip
def test_doctor_parity_on_a_device_this_machine_lacks_is_one_line(monkeypatch, capsys, device, says):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    assert doctor.main(["--parity", device]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"error: {says}") and err.count("\n") == 1


def test_without_an_accelerator_there_is_nothing_to_compare(monkeypatch):
    monkeypatch.setattr(parity_module, "default_device", lambda: "cpu")
    trust, lines = parity()
    assert trust and lines[0].startswith("no accelerator")


@pytest.mark.parametrize(
    ("cuda", "mps", "chosen"),
    [(True, True, "cuda"), (False, True, "mps"), (False, False, "cpu")],
)
def test_the_device_is_cuda_then_mps_then_the_cpu(monkeypatch, cuda, mps, chosen):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: mps)
    assert profiles.default_device() == chosen


def test_a_chapter_on_a_mac_says_it_runs_on_mps(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: True)
    profile = profiles.Profile("cpu", "no CUDA GPU found", profiles.default_device(),
                               load_config("cpu"), Path("."))  # fmt: skip
    assert "device: mps (Apple" in profile.describe() and "untested" in profile.describe()


def test_auto_resolves_to_mps_after_cuda_and_a_missing_device_is_one_line():
    from gpt1_lib.config import ConfigError
    from gpt1_lib.precision import choose_precision, resolve_device

    assert resolve_device("auto", cuda_available=False, mps_available=True) == "mps"
    assert resolve_device("auto", cuda_available=True, mps_available=True) == "cuda"
    assert resolve_device("auto", cuda_available=False, mps_available=False) == "cpu"
    with pytest.raises(ConfigError, match="no MPS device: use --set device=auto"):
        resolve_device("mps", cuda_available=False, mps_available=False)
    assert load_config("smoke", ["device=mps"])["device"] == "mps"  # a config may ask for it
    assert choose_precision("mps", "auto").dtype == torch.float32  # MPS trains in float32
    half = choose_precision("mps", "float16")  # unless asked: what MPS's autocast supports
    assert half.dtype == torch.float16 and half.use_scaler and "untested" in (half.note or "")
    brain = choose_precision("mps", "bfloat16")
    assert brain.dtype == torch.bfloat16 and not brain.use_scaler and "--parity" in (brain.note or "")


def test_without_a_band_a_flat_loss_is_named_only_while_it_is_high(tmp_path, band):
    """Your own text has no band and no known unigram entropy: a loss that stopped moving high
    up is named; one that converged low is not."""
    high = diagnose(plant(tmp_path / "high", lambda s: 6.5, dataset="my.txt"), band)
    assert any(line.startswith("flat and high: the training loss has not moved from 6.50") for line in high)
    settled = lambda s: 3.7 + 3.9 * math.exp(-s / 300)  # noqa: E731
    low = diagnose(plant(tmp_path / "low", settled, dataset="my.txt"), band)
    assert low[1].startswith("no symptom found"), low
