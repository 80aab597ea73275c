"""Chapters 05 and 06's training pieces: config, optimiser, schedule, precision, checkpoints, the loop
and the command line, including every kind of bad input the issue lists."""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import math
import subprocess
import sys

import pytest
import torch
import yaml
from training_helpers import (
    cli,
    make_corpus,
    one_thread,  # noqa: F401 (an autouse fixture)
    one_thread_env,
    tiny_config,
    write_config,
)

from gpt1_lib.checkpoint import (
    BEST,
    LAST,
    CheckpointError,
    atomic_save,
    capture_rng,
    clean_state_dict,
    load_model,
    read_checkpoint,
    restore_rng,
)
from gpt1_lib.config import DEFAULTS, ConfigError, load_config
from gpt1_lib.gpu_peaks import PEAK_FLOPS, peak_flops
from gpt1_lib.loop import TrainingError
from gpt1_lib.model import GPT, GPTConfig, model_config
from gpt1_lib.optim import decay_split, lr_at, make_optimizer
from gpt1_lib.precision import Precision, choose_precision, resolve_device, scaler_step
from gpt1_lib.run_folder import latest_checkpoint
from gpt1_lib.train import read_metrics, train
from gpt1_lib.train_cli import main
from gpt1_lib.trainer import Trainer


@pytest.fixture(scope="module")
def finished_run(corpus, work_dir, tmp_path_factory):
    """One short run, shared by the tests that only read it."""
    out = tmp_path_factory.mktemp("run")
    summary = train(tiny_config(corpus, max_steps=12), out, progress=False, work_dir=work_dir)
    return out, summary


def digest(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# ---- config ---------------------------------------------------------------------------------
def test_presets_load_and_validate():
    for name in ("smoke", "cpu", "t4", "a10g", "gpt1"):
        cfg = load_config(name)
        assert set(cfg) == set(DEFAULTS)
        assert cfg["n_embd"] % cfg["n_head"] == 0 and cfg["warmup_steps"] <= cfg["max_steps"]
    gpt1 = load_config("gpt1")
    assert (gpt1["n_layer"], gpt1["n_embd"], gpt1["n_head"], gpt1["n_ctx"]) == (12, 768, 12, 512)
    assert gpt1["batch_size"] * gpt1["grad_accum"] == 64 and gpt1["lr"] == 2.5e-4
    assert gpt1["warmup_steps"] == 2000 and gpt1["vocab_size"] == 40478


def test_overrides_are_read_as_yaml_values():
    cfg = load_config("smoke", ["lr=3e-4", "compile=true", "max_steps=1e3", "grad_clip=null"])
    assert cfg["lr"] == 3e-4 and cfg["compile"] is True and cfg["max_steps"] == 1000
    assert cfg["grad_clip"] is None


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["bach_size=8"], "unknown config key 'bach_size' \\(did you mean 'batch_size'\\?\\)"),
        (["n_head=7"], "n_embd=64 is not divisible by n_head=7"),
        (["batch_size=0"], "batch_size must be a positive integer, got 0"),
        (["max_steps=-5"], "max_steps must be a positive integer"),
        (["max_steps=2.5"], "max_steps must be a positive integer"),
        (["lr=0"], "lr must be a number in \\(0.0, 1.0\\]"),
        (["lr=fast"], "lr must be a number"),
        (["dropout=1.5"], "dropout must be a number in \\[0.0, 0.99\\]"),
        (["warmup_steps=100"], "warmup_steps=100 is more than max_steps=30"),
        (["dtype=fp8"], "dtype must be auto, float32, float16 or bfloat16"),
        (["device=tpu"], "device must be auto, cpu, cuda, cuda:N or mps"),
        (["compile=maybe"], "compile must be true or false"),
        (["pre_ln=maybe"], "pre_ln must be true or false"),
        (["activation=relu"], "activation must be 'gelu_tanh' \\(GPT-1\\) or 'gelu'"),
        (["lr"], "--set expects key=value"),
    ],
)
def test_bad_config_values_name_the_key(overrides, message):
    with pytest.raises(ConfigError, match=message):
        load_config("smoke", overrides)


def test_unknown_profile_and_bad_yaml(tmp_path):
    with pytest.raises(ConfigError, match="unknown profile or config file 'laptop'"):
        load_config("laptop")
    bad = tmp_path / "bad.yaml"
    bad.write_text("lr: [1,\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(bad)


# ---- optimiser and schedule -----------------------------------------------------------------
def test_decay_only_on_matrices_and_each_tensor_once():
    model = GPT(GPTConfig(vocab_size=50, n_ctx=8, n_embd=16, n_layer=2, n_head=2))
    decay, no_decay = decay_split(model)
    params = dict(model.named_parameters())
    assert all(params[n].dim() >= 2 for n in decay) and all(params[n].dim() < 2 for n in no_decay)
    assert "tokens_embed.weight" in decay and "lm_head.weight" not in decay + no_decay  # tied
    assert any(n.endswith("ln_1.weight") for n in no_decay) and any("bias" in n for n in no_decay)
    opt = make_optimizer(model, lr=1e-3)
    assert [g["weight_decay"] for g in opt.param_groups] == [0.01, 0.0]
    assert opt.defaults["betas"] == (0.9, 0.999) and opt.defaults["eps"] == 1e-8
    ids = [id(p) for g in opt.param_groups for p in g["params"]]
    assert len(ids) == len(set(ids)) == len(list(model.parameters()))


def test_decoupled_decay_shrinks_matrices_but_not_vectors():
    layer = torch.nn.Linear(4, 4)
    opt = make_optimizer(layer, lr=0.1, weight_decay=0.5)
    w, b = layer.weight.detach().clone(), layer.bias.detach().clone()
    layer.weight.grad, layer.bias.grad = torch.zeros(4, 4), torch.zeros(4)
    opt.step()  # zero gradient: only the decay moves anything
    assert torch.allclose(layer.weight, w * (1 - 0.1 * 0.5)) and torch.equal(layer.bias, b)


def test_schedule_warms_up_linearly_then_follows_a_cosine_to_zero():
    lrs = [lr_at(s, 2.0, 10, 110) for s in range(110)]
    assert lrs[:10] == pytest.approx([2.0 * (s + 1) / 10 for s in range(10)])
    assert lrs[10] == 2.0 and lrs[60] == pytest.approx(1.0) and 0 < lrs[-1] < 1e-3
    assert all(a >= b for a, b in zip(lrs[10:], lrs[11:]))  # never rises after the warmup
    assert lr_at(110, 2.0, 10, 110) == 0.0 and lr_at(0, 2.0, 0, 10) == 2.0


# ---- precision and devices ------------------------------------------------------------------
@pytest.mark.parametrize(
    ("device", "requested", "capability", "dtype", "scaler", "noted"),
    [
        ("cpu", "auto", None, torch.float32, False, False),
        ("cpu", "float32", None, torch.float32, False, False),
        ("cpu", "bfloat16", None, torch.bfloat16, False, True),  # the GPU's path, for tests
        ("cpu", "float16", None, torch.float16, True, True),  # the T4's path, for tests
        ("cuda", "auto", (7, 5), torch.float16, True, False),  # T4: fp16 + GradScaler
        ("cuda", "auto", (7, 0), torch.float16, True, False),  # V100
        ("cuda", "bfloat16", (7, 5), torch.float16, True, True),  # emulated bf16: fall back
        ("cuda", "auto", (8, 0), torch.bfloat16, False, False),  # A100
        ("cuda", "auto", (8, 6), torch.bfloat16, False, False),  # A10G
        ("cuda", "auto", (9, 0), torch.bfloat16, False, False),  # H100
        ("cuda", "float16", (8, 6), torch.float16, True, False),
        ("cuda", "float32", (7, 5), torch.float32, False, False),
    ],
)
def test_precision_follows_the_compute_capability(
    device, requested, capability, dtype, scaler, noted
):
    p = choose_precision(device, requested, capability)
    assert (p.dtype, p.use_scaler, p.note is not None) == (dtype, scaler, noted)


def test_devices_and_peaks():
    assert resolve_device("auto", cuda_available=False) == "cpu"
    assert resolve_device("auto", cuda_available=True) == "cuda"
    with pytest.raises(ConfigError, match="no CUDA device: use --set device=auto"):
        resolve_device("cuda", cuda_available=False)
    assert Precision(torch.bfloat16).name == "bfloat16"


@pytest.mark.parametrize(
    "name, peak",
    [("Tesla T4", 65e12), ("NVIDIA A100-SXM4-80GB", 312e12), ("NVIDIA A100 80GB PCIe", 312e12),
     ("NVIDIA A10", 125e12), ("NVIDIA A10G", None),  # no data sheet: unknown, not a guess
     ("NVIDIA L4", 121e12), ("NVIDIA L40", 181e12), ("NVIDIA L40S", 362e12),  # not an "L4"
     ("NVIDIA H100 80GB HBM3", 989e12), ("NVIDIA H100 PCIe", 756e12), ("NVIDIA H100 NVL", 835e12),
     ("Tesla V100-SXM2-16GB", 125e12), ("Tesla V100-PCIE-32GB", 112e12), ("NVIDIA H200", 989e12),
     ("NVIDIA GeForce RTX 4090", None), ("cpu", None)],
)  # fmt: skip
def test_peak_flops_match_whole_words_of_the_name_cuda_reports(name, peak):
    assert peak_flops(name) == peak


def test_every_peak_is_one_data_sheet_figure_per_model_and_variant():
    keys = [(model, variant) for model, variant, _ in PEAK_FLOPS]
    assert len(keys) == len(set(keys))
    # dense, not "with sparsity": no 16-bit data sheet figure here is above an H100 SXM's 989
    assert all(10e12 < flops <= 989e12 for _, _, flops in PEAK_FLOPS)


# ---- checkpoints ----------------------------------------------------------------------------
def test_rng_states_round_trip_through_a_weights_only_checkpoint(tmp_path):
    import random

    import numpy as np

    atomic_save({"rng": capture_rng()}, tmp_path / "state.pt")
    expected = (random.random(), np.random.rand(), torch.rand(2))
    restore_rng(torch.load(tmp_path / "state.pt", weights_only=True)["rng"])
    got = (random.random(), np.random.rand(), torch.rand(2))
    assert got[:2] == expected[:2] and torch.equal(got[2], expected[2])
    assert [p.name for p in tmp_path.iterdir()] == ["state.pt"]


def test_truncated_and_foreign_checkpoints_are_recognised(tmp_path, finished_run):
    run, _ = finished_run
    good = (run / LAST).read_bytes()
    (tmp_path / LAST).write_bytes(good[: len(good) // 2])
    with pytest.raises(CheckpointError, match="truncated or corrupt"):
        read_checkpoint(tmp_path / LAST)
    torch.save({"weights": torch.zeros(1)}, tmp_path / "other.pt")
    with pytest.raises(CheckpointError, match="not a gpt1_lib training checkpoint"):
        read_checkpoint(tmp_path / "other.pt")
    (tmp_path / BEST).write_bytes(good)
    messages = []
    assert latest_checkpoint(tmp_path, log=messages.append) == tmp_path / BEST
    assert (tmp_path / (LAST + ".corrupt")).read_bytes() == good[: len(good) // 2]  # kept
    assert any("truncated or corrupt" in m for m in messages)


def test_clean_state_dict_strips_compile_and_ddp_prefixes():
    state = {"_orig_mod.h.0.ln_1.weight": 1, "module._orig_mod.lm_head.weight": 2, "wpe": 3}
    assert clean_state_dict(state) == {"h.0.ln_1.weight": 1, "lm_head.weight": 2, "wpe": 3}


def test_load_model_gives_the_trained_model_in_eval_mode(finished_run):
    run, summary = finished_run
    model = load_model(run)
    assert not model.training and model.config.n_embd == 32
    ckpt = read_checkpoint(run / BEST)
    assert not any(k.startswith(("_orig_mod.", "module.")) for k in ckpt["model"])
    assert all(torch.equal(v, ckpt["model"][k]) for k, v in model.state_dict().items())
    last = load_model(run, which="last")
    assert all(
        torch.equal(v, read_checkpoint(run / LAST)["model"][k])
        for k, v in last.state_dict().items()
    )
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_model(run / "nowhere")
    with pytest.raises(FileNotFoundError, match="holds no checkpoint"):
        load_model(run.parent)


@pytest.mark.parametrize("preset", ["smoke", "cpu", "t4", "a10g", "gpt1"])
def test_trainer_and_load_model_build_the_model_of_model_config(preset, tmp_path):
    """One derivation of the model from a config: the Trainer builds `model_config(preset)`
    and `load_model` rebuilds it from the checkpoint, every field (pre_ln included) kept."""
    expected = model_config(preset)
    trainer = Trainer(load_config(preset, ["device=cpu"]), tmp_path, tmp_path, progress=False)
    trainer.build()
    assert trainer.raw.config == expected
    trainer.start_fresh()
    trainer.save([LAST])
    model = load_model(tmp_path, which="last")
    assert model.config == expected
    assert isinstance(model.ln_f, torch.nn.LayerNorm) == expected.pre_ln
    assert expected.pre_ln == (preset == "cpu")  # only the cpu preset trains pre-LN (ch. 05)


# ---- the loop -------------------------------------------------------------------------------
def test_a_run_learns_and_writes_its_directory(finished_run, corpus):
    run, summary = finished_run
    assert sorted(p.name for p in run.iterdir()) == sorted(
        [".lock", BEST, LAST, "config.yaml", "metrics.jsonl", "tokenizer.json"]
    )
    records = read_metrics(run)
    assert [r["step"] for r in records] == list(range(1, 13))
    assert {"step", "train_loss", "lr", "grad_norm", "tokens_per_s"} <= set(records[0])
    vals = [r for r in records if "val_loss" in r]
    assert [r["step"] for r in vals] == [6, 12]
    assert vals[-1]["val_ppl"] == pytest.approx(math.exp(vals[-1]["val_loss"]))
    assert records[-1]["train_loss"] < records[0]["train_loss"] - 0.5
    assert summary["steps"] == 12 and summary["final_val_loss"] == vals[-1]["val_loss"]
    assert yaml.safe_load((run / "config.yaml").read_text()) == load_config(
        tiny_config(corpus, max_steps=12)
    )
    assert read_checkpoint(run / LAST)["step"] == 12
    assert records[0]["lr"] == pytest.approx(3e-3 / 4)  # the schedule is applied


def test_metrics_record_the_tokens_seen(finished_run, corpus):
    run, summary = finished_run
    tokens_per_update = 4 * 32  # batch_size x n_ctx x grad_accum of tiny_config
    assert [r["tokens_seen"] for r in read_metrics(run)] == [
        s * tokens_per_update for s in range(1, 13)
    ]
    assert summary["tokens_seen"] == 12 * tokens_per_update


def test_best_is_lean_and_last_is_complete(finished_run):
    """ckpt_best.pt holds what load_model needs, no optimiser state; ckpt_last.pt everything."""
    run, _ = finished_run
    best, last = read_checkpoint(run / BEST), read_checkpoint(run / LAST)
    assert {"optimizer", "scaler", "rng", "log_window"}.isdisjoint(best)
    assert {"optimizer", "scaler", "rng", "log_window", "data"} <= set(last)
    assert {"format", "step", "config", "model", "best_val_loss", "tokens_seen"} <= set(best)
    assert (run / BEST).stat().st_size < 0.5 * (run / LAST).stat().st_size  # Adam: 2 moments
    assert load_model(run, which="best").config == model_config(best["config"])


def test_a_lean_best_alone_cannot_resume_and_says_so(capsys, corpus, work_dir, tmp_path):
    cfg = tiny_config(corpus, max_steps=6)
    train(cfg, tmp_path, progress=False, work_dir=work_dir)
    (tmp_path / LAST).write_bytes(b"garbage")
    status, err = run_main(capsys, "--config", write_config(tmp_path.parent / "lean.yaml", cfg),
                           "--out-dir", tmp_path, "--resume", "--work-dir", work_dir)  # fmt: skip
    assert status == 1 and "no complete checkpoint left" in err and "--overwrite" in err
    assert "ckpt_best.pt (update 6) holds weights only" in err
    assert load_model(tmp_path).config.n_embd == 32  # the weights are still there


def test_on_checkpoint_is_called_with_the_files_just_written(corpus, work_dir, tmp_path):
    """The GPU chapter flushes Google Drive after each checkpoint: the callback sees every
    write, right after it, with its paths; a best always comes with a complete last."""
    seen = []

    def on_checkpoint(paths):
        assert all(p.is_file() for p in paths)  # already written when called
        seen.append((read_checkpoint(paths[0])["step"], [p.name for p in paths]))

    cfg = tiny_config(corpus, max_steps=12, eval_interval=4, ckpt_interval=5)
    train(cfg, tmp_path, progress=False, work_dir=work_dir, on_checkpoint=on_checkpoint)
    steps = [step for step, _ in seen]
    assert steps == sorted(set(steps)) and {5, 10, 12} <= set(steps)  # the interval, the end
    assert {step for step, names in seen if names == [LAST]} <= {5, 10, 12}
    assert {step for step, names in seen if names == [LAST, BEST]} <= {4, 8, 12}  # val improved
    assert 4 in steps  # the first evaluation is always a best


def test_tensorboard_logs_losses_against_updates_and_tokens(corpus, work_dir, tmp_path):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    cfg = tiny_config(corpus, max_steps=12, tensorboard=True)
    train(cfg, tmp_path, progress=False, work_dir=work_dir, until=8)
    train(cfg, tmp_path, resume=True, progress=False, work_dir=work_dir)  # resumes at 6
    records = read_metrics(tmp_path)
    updates = EventAccumulator(str(tmp_path / "tensorboard" / "updates")).Reload()
    tokens = EventAccumulator(str(tmp_path / "tensorboard" / "tokens")).Reload()
    assert {"loss/train", "loss/val", "lr", "tokens_per_s"} <= set(updates.Tags()["scalars"])
    train_loss = [(e.step, e.value) for e in updates.Scalars("loss/train")]
    assert train_loss == [(r["step"], pytest.approx(r["train_loss"])) for r in records]
    vs_tokens = [(e.step, e.value) for e in tokens.Scalars("loss_vs_tokens/val")]
    assert vs_tokens == [
        (r["tokens_seen"], pytest.approx(r["val_loss"])) for r in records if "val_loss" in r
    ]


def test_tensorboard_asked_for_without_the_package_is_one_clear_line(
    capsys, corpus, work_dir, tmp_path, monkeypatch
):
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)  # as if not installed
    config = write_config(tmp_path / "tb.yaml", tiny_config(corpus, tensorboard=True))
    status, err = run_main(capsys, "--config", config, "--out-dir", tmp_path / "o",
                           "--work-dir", work_dir)  # fmt: skip
    assert status == 1 and "pip install tensorboard" in err and "\n" not in err
    assert not (tmp_path / "o").exists()  # stopped before anything was done


def test_an_update_accumulates_its_micro_batches_then_clips_and_steps(corpus, work_dir, tmp_path):
    """grad_accum=2: the update is AdamW on the clipped gradient of the mean of two losses."""
    cfg = load_config(tiny_config(corpus, dropout=0.0, grad_accum=2, warmup_steps=1, max_steps=3))
    trainer = Trainer(cfg, tmp_path, work_dir, progress=False)
    trainer.prepare_data(resuming=False)
    trainer.build()
    trainer.start_fresh()
    reference = GPT(trainer.raw.config)
    reference.load_state_dict(trainer.raw.state_dict())
    loss, lr, norm = trainer.update(0)  # draws batches 0 and 1
    batches = [trainer.train_windows.batch(i) for i in (0, 1)]
    assert not torch.equal(batches[0][0], batches[1][0])
    mean = sum(reference(x, y)[1] for x, y in batches) / 2
    mean.backward()
    assert loss == pytest.approx(mean.item(), rel=1e-6) and lr == 3e-3
    assert norm.item() == pytest.approx(
        torch.nn.utils.clip_grad_norm_(reference.parameters(), 1.0).item(), rel=1e-5
    )
    make_optimizer(reference, lr=3e-3).step()
    for (name, a), b in zip(trainer.raw.state_dict().items(), reference.state_dict().values()):
        assert torch.allclose(a, b, atol=1e-6), name


def test_nan_loss_stops_without_touching_the_checkpoint(corpus, work_dir, tmp_path, monkeypatch):
    import gpt1_lib.trainer as trainer_module

    class Diverging(GPT):
        calls = 0

        def forward(self, idx, targets=None, kv_cache=None):
            logits, loss = super().forward(idx, targets)
            if self.training:
                Diverging.calls += 1
                if Diverging.calls > 7:
                    loss = loss * float("nan")
            return logits, loss

    monkeypatch.setattr(trainer_module, "GPT", Diverging)
    with pytest.raises(
        TrainingError, match="loss became nan at update 8.*last saved at step 6.*lower lr"
    ):
        train(tiny_config(corpus), tmp_path, progress=False, work_dir=work_dir)
    assert read_checkpoint(tmp_path / LAST)["step"] == 6  # written with the best of update 6
    records = read_metrics(tmp_path)  # its last line is the update that diverged, for the doctor
    assert [r["step"] for r in records][-2:] == [7, 8] and math.isnan(records[-1]["train_loss"])
    from gpt1_lib.health import diagnose

    assert any(line.startswith("NaN: the loss is not a number from update 8") for line in diagnose(tmp_path))


def test_out_of_memory_says_which_setting_to_lower(capsys, corpus, work_dir, tmp_path, monkeypatch):
    """A CUDA out-of-memory error in the forward pass (raised here on a CPU) becomes one line
    naming the settings that keep the update the same: batch_size down, grad_accum up."""
    oom = getattr(torch, "OutOfMemoryError", torch.cuda.OutOfMemoryError)

    def no_memory(self, idx, targets=None, kv_cache=None):
        raise oom("CUDA out of memory. Tried to allocate 2.00 GiB")

    monkeypatch.setattr(GPT, "forward", no_memory)
    with pytest.raises(TrainingError) as caught:
        train(tiny_config(corpus, batch_size=8, grad_accum=2), tmp_path, progress=False,
              work_dir=work_dir)  # fmt: skip
    message = str(caught.value)
    assert message.startswith("out of GPU memory at batch_size=8, grad_accum=2, n_ctx=32")
    assert "--set batch_size=4 --set grad_accum=4" in message and "\n" not in message
    config = write_config(tmp_path.parent / "oom.yaml", tiny_config(corpus, batch_size=3))
    status, err = run_main(capsys, "--config", config, "--out-dir", tmp_path / "cli",
                           "--work-dir", work_dir)  # fmt: skip
    assert status == 1 and "--set batch_size=1 --set grad_accum=3" in err  # 3 sequences, kept
    one = tiny_config(corpus, batch_size=1)
    with pytest.raises(TrainingError, match="batch_size is 1 already: lower n_ctx \\(now 32\\)"):
        train(one, tmp_path / "one", progress=False, work_dir=work_dir)


# ---- the command line and bad input ---------------------------------------------------------
def run_main(capsys, *args):
    status = main([str(a) for a in args])
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    return status, err.strip()


def test_cli_user_errors_are_one_line_without_traceback(
    capsys, corpus, work_dir, tmp_path, finished_run
):
    run, _ = finished_run
    before = {p.name: digest(p) for p in run.glob("ckpt_*")}
    short = make_corpus(tmp_path / "short.txt", n_lines=3)
    (tmp_path / "empty.txt").write_text("")
    cases = [
        (["--config", "laptop"], "unknown profile or config file 'laptop'"),
        (["--config", "smoke", "--set", "bach_size=2"], "did you mean 'batch_size'"),
        (["--config", "smoke", "--set", "n_head=3"], "not divisible by n_head=3"),
        (["--config", "smoke", "--set", "batch_size=-1"], "batch_size must be a positive integer"),
        (["--config", "smoke", "--set", "max_steps=0"], "max_steps must be a positive integer"),
        (["--config", "smoke", "--set", f"dataset={tmp_path / 'missing.txt'}"], "does not exist"),
        (["--config", "smoke", "--set", f"dataset={tmp_path / 'empty.txt'}"], "is empty"),
        (["--config", "smoke", "--set", f"dataset={short}", "--set", "n_ctx=512"], "fewer than one window"),
        (["--config", "smoke", "--set", "device=cuda"] if not torch.cuda.is_available() else ["--config", "laptop"],
         "no CUDA device" if not torch.cuda.is_available() else "laptop"),
        (["--config", "smoke", "--out-dir", run], "already holds a training run"),
        (["--config", write_config(tmp_path / "c.yaml", tiny_config(corpus, max_steps=12, lr=1e-3)),
          "--out-dir", run, "--resume"], "lr is 0.003 there but 0.001 now"),
    ]  # fmt: skip
    for args, message in cases:
        args = args if "--out-dir" in args else [*args, "--out-dir", tmp_path / "out"]
        status, err = run_main(capsys, *args, "--work-dir", work_dir, "--no-progress")
        assert status == 1, args
        assert err.startswith("error: ") and message in err and "\n" not in err, (args, err)
    assert {p.name: digest(p) for p in run.glob("ckpt_*")} == before  # no checkpoint damaged


def test_cli_really_exits_non_zero_without_traceback(tmp_path):
    proc = cli("--config", "smoke", "--set", "n_head=3", "--out-dir", str(tmp_path))
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 1
    assert err.startswith("error: ") and "Traceback" not in err, err
    usage = subprocess.run([sys.executable, "-m", "gpt1_lib.train", "--config", "smoke"],
                           capture_output=True, text=True, env=one_thread_env())  # fmt: skip
    assert usage.returncode == 2 and "--out-dir" in usage.stderr


def test_a_16_bit_dtype_on_a_cpu_runs_the_gpu_path_with_a_note(capsys, corpus, work_dir, tmp_path):
    config = write_config(
        tmp_path / "c.yaml", tiny_config(corpus, max_steps=2, warmup_steps=1, eval_interval=2)
    )
    status = main(["--config", str(config), "--set", "dtype=bfloat16", "--out-dir", str(tmp_path / "o"),
                   "--work-dir", str(work_dir), "--no-progress"])  # fmt: skip
    out, err = capsys.readouterr()
    assert status == 0 and "dtype=bfloat16 on cpu runs the GPU's mixed-precision code" in out
    assert yaml.safe_load(out[out.index("{") :])["dtype"] == "bfloat16"


def test_resume_without_config_uses_the_runs_own(capsys, corpus, work_dir, tmp_path):
    config = write_config(tmp_path / "c.yaml", tiny_config(corpus, max_steps=4, eval_interval=2))
    assert main(["--config", str(config), "--out-dir", str(tmp_path / "o"), "--until", "2",
                 "--work-dir", str(work_dir), "--no-progress"]) == 0  # fmt: skip
    assert (
        main(
            [
                "--out-dir",
                str(tmp_path / "o"),
                "--resume",
                "--work-dir",
                str(work_dir),
                "--no-progress",
            ]
        )
        == 0
    )
    out, _ = capsys.readouterr()
    assert [r["step"] for r in read_metrics(tmp_path / "o")] == [1, 2, 3, 4]
    assert "resumed from ckpt_last.pt at step 2" in out


def test_both_checkpoints_corrupt_is_an_error_not_a_fresh_start(capsys, corpus, work_dir, tmp_path):
    cfg = tiny_config(corpus, max_steps=6)
    train(cfg, tmp_path, progress=False, work_dir=work_dir)
    for name in (LAST, BEST):
        (tmp_path / name).write_bytes(b"garbage")
    status, err = run_main(capsys, "--config", write_config(tmp_path.parent / "c6.yaml", cfg),
                           "--out-dir", tmp_path, "--resume", "--work-dir", work_dir)  # fmt: skip
    assert status == 1 and "no complete checkpoint left" in err and "--overwrite" in err
    assert sorted(p.name for p in tmp_path.glob("*.corrupt")) == [
        BEST + ".corrupt",
        LAST + ".corrupt",
    ]


def test_a_run_directory_takes_one_trainer_at_a_time(capsys, corpus, work_dir, tmp_path):
    from gpt1_lib.distributed import Processes
    from gpt1_lib.run_folder import exclusive

    tmp_path.mkdir(exist_ok=True)
    config = write_config(tmp_path.parent / "c_lock.yaml", tiny_config(corpus, max_steps=4))
    with exclusive(tmp_path, Processes()):  # as if another process were training into it
        status, err = run_main(
            capsys, "--config", config, "--out-dir", tmp_path, "--work-dir", work_dir
        )
        assert status == 1 and "is training into" in err and "wait for it to finish" in err
    assert main(["--config", str(config), "--out-dir", str(tmp_path), "--work-dir", str(work_dir),
                 "--no-progress"]) == 0  # fmt: skip
    first = read_metrics(tmp_path)
    capsys.readouterr()
    assert main(["--config", str(config), "--out-dir", str(tmp_path), "--work-dir", str(work_dir),
                 "--no-progress", "--overwrite"]) == 0  # fmt: skip
    assert [r["train_loss"] for r in read_metrics(tmp_path)] == [r["train_loss"] for r in first]
    assert not list(tmp_path.glob("*.corrupt")) and not list(tmp_path.glob("*.tmp"))


def test_a_finished_run_trains_on_when_resumed_with_a_larger_max_steps(corpus, work_dir, tmp_path):
    """Chapter 06's "train for N more minutes": `--resume --set max_steps=...` continues a finished
    run from its checkpoint, with the cosine recomputed for the new length."""
    out = tmp_path / "run"
    config = tiny_config(corpus, max_steps=6, ckpt_interval=3, eval_interval=3)
    train(config, out, progress=False, work_dir=work_dir)
    before = read_metrics(out)
    summary = train(None, out, resume=True, progress=False, work_dir=work_dir, overrides=["max_steps=10"])
    after = read_metrics(out)
    assert summary["resumed_from"] == 6 and summary["steps"] == 10
    assert after[:6] == before and [r["step"] for r in after] == list(range(1, 11))
    assert after[6]["lr"] == lr_at(6, config["lr"], config["warmup_steps"], 10) > 0  # the new cosine
    assert read_checkpoint(out / LAST)["config"]["max_steps"] == 10
    with pytest.raises(ConfigError, match="dropout"):  # what is computed may still not change
        train(None, out, resume=True, progress=False, work_dir=work_dir, overrides=["max_steps=12", "dropout=0.2"])


def test_scaler_step_says_when_fp16_overflowed_and_the_step_was_skipped():
    weight = torch.nn.Parameter(torch.ones(3))
    opt = torch.optim.SGD([weight], lr=0.1)
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0**10)
    scaler.scale(weight.sum()).backward()
    assert scaler_step(scaler, opt) is False and not torch.equal(weight, torch.ones(3))
    weight.grad = torch.tensor([1.0, math.inf, 1.0])  # as if fp16 had overflowed
    before = weight.detach().clone()
    assert scaler_step(scaler, opt) is True and torch.equal(weight, before)
    assert scaler.get_scale() == 2.0**9  # halved
    off = torch.amp.GradScaler("cpu", enabled=False)  # float32 and bfloat16: never a skip
    weight.grad = torch.ones(3)
    assert scaler_step(off, opt) is False


def test_fp16_runs_log_the_loss_scale_and_the_skips_and_a_resume_keeps_the_count(
    corpus, work_dir, tmp_path, monkeypatch
):
    """A scale far too large for fp16 (2^24): the first updates overflow, each skip halves the
    scale, until it fits. Every metrics line says the scale and the skips so far; a resumed
    run counts on from its checkpoint; a float32 run logs neither."""
    big = functools.partial(torch.amp.GradScaler, init_scale=2.0**24)
    monkeypatch.setattr(torch.amp, "GradScaler", big)
    tensorboard = importlib.util.find_spec("tensorboard") is not None
    cfg = tiny_config(corpus, max_steps=12, dtype="float16", tensorboard=tensorboard)
    whole = train(cfg, tmp_path / "whole", progress=False, work_dir=work_dir)
    records = read_metrics(tmp_path / "whole")
    if tensorboard:  # and TensorBoard draws both
        from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

        events = EventAccumulator(str(tmp_path / "whole" / "tensorboard" / "updates")).Reload()
        skipped = [(e.step, e.value) for e in events.Scalars("fp16/skipped_updates")]
        assert skipped == [(r["step"], r["skipped_updates"]) for r in records]
        assert "fp16/loss_scale" in events.Tags()["scalars"]
    skips = [r["skipped_updates"] for r in records]
    assert skips == sorted(skips) and 0 < skips[-1] == whole["skipped_updates"] < 12
    assert all(r["loss_scale"] == 2.0**24 / 2 ** r["skipped_updates"] for r in records)
    train(cfg, tmp_path / "resumed", progress=False, work_dir=work_dir, until=6)
    resumed = train(cfg, tmp_path / "resumed", resume=True, progress=False, work_dir=work_dir)
    assert resumed["resumed_from"] is not None and resumed["skipped_updates"] == skips[-1]
    kept = ("step", "train_loss", "loss_scale", "skipped_updates")  # not the wall-clock fields
    assert [[r[k] for k in kept] for r in read_metrics(tmp_path / "resumed")] == [
        [r[k] for k in kept] for r in records
    ]
    train(tiny_config(corpus, max_steps=12), tmp_path / "fp32", progress=False, work_dir=work_dir, until=2)
    assert all("loss_scale" not in r and "skipped_updates" not in r
               for r in read_metrics(tmp_path / "fp32"))  # fmt: skip


def test_a_training_loop_that_forgets_a_hook_is_told_which_at_once(tmp_path):
    """A `TrainingLoop` subclass must say what it trains: one missing is named when `fit`
    starts, not an AttributeError in the middle of a run."""
    from gpt1_lib.loop import TrainingLoop

    class Half(TrainingLoop):
        def prepare_data(self, resuming: bool) -> None: ...

    with pytest.raises(TypeError, match="Half does not define make_model, schedule, batch, loss"):
        Half({"tensorboard": False, "device": "cpu", "dtype": "auto", "grad_accum": 1}, tmp_path).fit()
