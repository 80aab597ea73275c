"""What a careless or hostile input does to a run, beyond its folder's links (which
tests/test_run_folder_safety.py covers): integrity and numerics, concurrency, and errors that a
user can cause, each of which must end in one line that names the file and the fix, never in a
traceback, with the exit codes the command lines share (1 for an error, 130 for Ctrl-C).
"""

from __future__ import annotations

import errno
import json
import os
import stat
import subprocess
import sys
import zipfile
from itertools import islice
from pathlib import Path

import pytest
import torch
from training_helpers import (
    make_corpus,
    one_thread,  # noqa: F401 (an autouse fixture)
    one_thread_env,
    tiny_config,
    write_config,
)

import gpt1_lib.checkpoint as checkpoint_module
import gpt1_lib.finetune as ft
import gpt1_lib.run_folder as run_folder_module
from gpt1_lib import fast_decode, sample
from gpt1_lib.checkpoint import LAST, CheckpointError, load_model, read_checkpoint
from gpt1_lib.finetune_model import add_special_tokens, encode_task
from gpt1_lib.generate import generate, generate_tokens
from gpt1_lib.model import GPT, GPTConfig
from gpt1_lib.next_token import next_token_probs, sample_next
from gpt1_lib.run_dir import read_metrics
from gpt1_lib.tasks import Example, Task
from gpt1_lib.tokenizer import load_tokenizer
from gpt1_lib.train import train
from gpt1_lib.train_cli import main as train_main

ROOT = Path(__file__).resolve().parent.parent


def one_line_error(err: str) -> None:
    assert err.startswith("error: ") and "\n" not in err.strip(), err
    assert "Traceback" not in err


def run_train(capsys, *args) -> tuple[int, str]:
    status = train_main([str(a) for a in args])
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    return status, err.strip()


def run_sample(capsys, *args) -> tuple[int, str]:
    try:
        sample.main([str(a) for a in args])
        status, message = 0, ""
    except SystemExit as exit_:
        status = exit_.code if isinstance(exit_.code, int) else 1
        message = exit_.code if isinstance(exit_.code, str) else ""
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    return status, (message or err).strip()


FAST = ["--set", "batch_size=4", "--set", "epochs=2", "--set", "device=cpu", "--no-progress"]


def run_finetune(capsys, *args) -> tuple[int, str]:
    status = ft.main([*map(str, args), *FAST])
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    return status, err.strip()


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    return tmp_path_factory.mktemp("errors")


@pytest.fixture(scope="module")
def corpus(base):
    return make_corpus(base / "corpus.txt", n_lines=600)


@pytest.fixture(scope="module")
def work(base):
    return base / "work"


def config_of(corpus: Path, **overrides):
    return tiny_config(corpus, **{"max_steps": 4, "eval_interval": 2, "ckpt_interval": 2,
                                  **overrides})  # fmt: skip


@pytest.fixture(scope="module")
def pretrained(base, corpus, work):
    out = base / "pretrained"
    train(config_of(corpus), out, progress=False, work_dir=work)
    return out


@pytest.fixture(scope="module")
def task_file(base):
    lines = [{"text": f"the king {'crown' if i % 2 else 'sword'} {i}", "label": i % 2, "split": s}
             for s, n in (("train", 16), ("valid", 4), ("test", 4)) for i in range(n)]  # fmt: skip
    path = base / "crown.jsonl"
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    return path


def flip_a_weight_byte(path: Path) -> None:
    """Flip one byte in the middle of a checkpoint's largest tensor record (not its header)."""
    with zipfile.ZipFile(path) as archive:
        record = max(archive.infolist(), key=lambda info: info.file_size)
    with open(path, "r+b") as f:
        f.seek(record.header_offset + 26)
        name_length, extra_length = (int.from_bytes(f.read(2), "little") for _ in range(2))
        offset = record.header_offset + 30 + name_length + extra_length + record.file_size // 2
        f.seek(offset)
        byte = f.read(1)[0]
        f.seek(offset)
        f.write(bytes([byte ^ 0xFF]))


# ---- 4. integrity and numerics ---------------------------------------------------------------
def test_a_checkpoint_with_a_flipped_byte_is_set_aside_not_trained_on(corpus, work, tmp_path):
    """torch.load does not check the archive's CRCs: a flipped byte in the weights would load
    and train on. It is caught when read, and goes down the `.corrupt` path."""
    run = tmp_path / "run"
    train(config_of(corpus), run, progress=False, work_dir=work, until=3)
    flip_a_weight_byte(run / LAST)
    with pytest.raises(CheckpointError, match="checksum"):
        read_checkpoint(run / LAST)
    with pytest.raises(CheckpointError, match=r"ckpt_last\.pt\.corrupt"):
        train(config_of(corpus), run, resume=True, progress=False, work_dir=work)
    assert (run / "ckpt_last.pt.corrupt").is_file() and not (run / LAST).exists()


def test_load_model_refuses_a_corrupt_checkpoint(pretrained, tmp_path):
    broken = tmp_path / "broken"
    broken.mkdir()
    for name in ("ckpt_best.pt", "tokenizer.json"):
        (broken / name).write_bytes((pretrained / name).read_bytes())
    flip_a_weight_byte(broken / "ckpt_best.pt")
    with pytest.raises(CheckpointError, match="checksum"):
        load_model(broken)


@pytest.mark.parametrize("flush", [False, True])  # training flushes denormals on a CPU
@pytest.mark.parametrize("temperature", [1e-38, 1e-45, 1e-6])  # float32 overflows below ~1e-37
def test_a_tiny_temperature_is_greedy_not_nan(temperature, flush):
    logits = torch.randn(8, 50, generator=torch.Generator().manual_seed(0)) * 20
    greedy = logits.argmax(-1, keepdim=True)
    torch.set_flush_denormal(flush)  # 1e-45 is a float32 denormal: flushed, it would be 0
    try:
        for seed in range(5):
            drawn = sample_next(logits, temperature, generator=torch.Generator().manual_seed(seed))
            assert torch.equal(drawn, greedy)
        probs = next_token_probs(logits, temperature)
    finally:
        torch.set_flush_denormal(False)
    assert torch.isfinite(probs).all() and torch.equal(probs.argmax(-1, keepdim=True), greedy)
    assert torch.allclose(probs.max(-1).values, torch.ones(8))


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_non_finite_logits_are_an_error_not_a_sample(bad):
    logits = torch.randn(2, 20)
    logits[1, 3] = bad
    for temperature in (0.0, 0.8, 1.0):
        with pytest.raises(ValueError, match="not finite"):
            sample_next(logits, temperature, top_k=5 if temperature == 1.0 else None)


def test_sampling_from_nan_weights_says_so_in_one_line(capsys, pretrained, tmp_path):
    broken = tmp_path / "nan_run"
    broken.mkdir()
    ckpt = read_checkpoint(pretrained / "ckpt_best.pt")
    ckpt["model"] = {k: torch.full_like(v, float("nan")) for k, v in ckpt["model"].items()}
    checkpoint_module.atomic_save(ckpt, broken / "ckpt_best.pt")
    (broken / "tokenizer.json").write_bytes((pretrained / "tokenizer.json").read_bytes())
    status, err = run_sample(capsys, "--checkpoint", broken, "--prompt", "the king",
                             "--max-new-tokens", 5)  # fmt: skip
    assert status == 1 and "not finite" in err, err


def test_control_tokens_in_a_task_example_are_text(pretrained):
    """User text is always text: `_classify_` written in an example is letters, and the one
    extract token of the input is the one the transformation puts there by id."""
    tok = load_tokenizer(pretrained / "tokenizer.json")
    grown, (start, delimiter, classify) = add_special_tokens(tok, 300)
    text = "the king _classify_ and _delimiter_ and _start_ <eos>"
    examples = {s: [Example(1, text), Example(0, "the sword")] for s in ("train", "valid", "test")}
    task = Task("t", "classification", ("no", "yes"), examples, "made up")
    encoded = encode_task(task, grown, 64, (start, delimiter, classify))["train"]
    for seq in encoded.seqs:
        ids = [i for row in seq for i in row]
        assert ids.count(classify) == 1 and ids[-1] == classify
        assert ids.count(start) == 1 and delimiter not in ids and 1 not in ids  # 1: <eos>


def test_a_config_json_naming_huge_sizes_is_refused_before_allocating(tmp_path):
    small = GPT(GPTConfig(vocab_size=64, n_ctx=16, n_embd=32, n_layer=1, n_head=2))
    folder = small.save_pretrained(tmp_path / "hostile")
    config = json.loads((folder / "config.json").read_text())
    config.update(vocab_size=2**30, n_embd=2**20, n_head=2**4)  # 2^50 floats: no machine has them
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match="config.json and the weights disagree"):
        GPT.from_pretrained(folder)


# ---- 5. concurrency and the shared cache ----------------------------------------------------
def test_two_trainers_sharing_a_fresh_work_dir_both_finish(corpus, tmp_path):
    """A parameter sweep: two processes tokenize the same corpus into one fresh cache at once.
    Each writes under a temporary name of its own; both finish, and the ids are the same."""
    config = write_config(tmp_path / "c.yaml", config_of(corpus, max_steps=2, warmup_steps=1))
    procs = [subprocess.Popen(
        [sys.executable, "-m", "gpt1_lib.train", "--config", str(config), "--out-dir",
         str(tmp_path / f"run{i}"), "--work-dir", str(tmp_path / "shared"), "--no-progress"],
        env=one_thread_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for i in range(2)]  # fmt: skip
    results = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [err[-2000:] for _, err in results]
    assert not list((tmp_path / "shared" / "tokens").glob("*.tmp"))
    losses = [[r["train_loss"] for r in read_metrics(tmp_path / f"run{i}")] for i in range(2)]
    assert losses[0] == losses[1]


# ---- 6. one line, never a traceback --------------------------------------------------------
def test_an_out_dir_that_is_a_file_is_one_line(capsys, corpus, work, task_file, pretrained,
                                              tmp_path):  # fmt: skip
    a_file = tmp_path / "results.txt"
    a_file.write_text("mine")
    config = write_config(tmp_path / "c.yaml", config_of(corpus))
    status, err = run_train(capsys, "--config", config, "--out-dir", a_file, "--work-dir", work,
                            "--no-progress")  # fmt: skip
    assert status == 1 and "results.txt" in err and "folder" in err, err
    one_line_error(err)
    status, err = run_finetune(capsys, "--checkpoint", pretrained, "--task", task_file,
                               "--out-dir", a_file)  # fmt: skip
    assert status == 1 and "results.txt" in err, err
    one_line_error(err)
    assert a_file.read_text() == "mine"


def test_a_read_only_out_dir_is_one_line(capsys, corpus, work, tmp_path, monkeypatch):
    """Root may write anywhere, so the read-only disk is simulated where the probe writes."""

    def read_only(*args, **kwargs):
        raise OSError(errno.EROFS, "Read-only file system")

    monkeypatch.setattr(run_folder_module.tempfile, "NamedTemporaryFile", read_only)
    config = write_config(tmp_path / "c.yaml", config_of(corpus))
    status, err = run_train(capsys, "--config", config, "--out-dir", tmp_path / "ro",
                            "--work-dir", work, "--no-progress")  # fmt: skip
    assert status == 1 and "Read-only" in err and "--out-dir" in err, err
    one_line_error(err)


def test_a_full_disk_while_checkpointing_is_one_line_and_keeps_the_last_checkpoint(
    capsys, corpus, work, tmp_path, monkeypatch
):
    config = write_config(tmp_path / "c.yaml", config_of(corpus))
    run = tmp_path / "run"
    assert run_train(capsys, "--config", config, "--out-dir", run, "--work-dir", work,
                     "--until", 2, "--no-progress")[0] == 0  # fmt: skip
    before = (run / LAST).read_bytes()

    def disk_full(obj, f, *args, **kwargs):  # what torch raises when the disk fills up
        raise RuntimeError(
            "PytorchStreamWriter failed writing file archive/data/0: file write failed"
        )

    monkeypatch.setattr(checkpoint_module.torch, "save", disk_full)
    status, err = run_train(capsys, "--out-dir", run, "--resume", "--work-dir", work,
                            "--no-progress")  # fmt: skip
    assert status == 1 and "ckpt_" in err and "free" in err, err
    one_line_error(err)
    assert (run / LAST).read_bytes() == before  # the previous checkpoint is intact
    assert not list(run.glob(".*.tmp"))  # and no torn temporary file is left


def test_a_truncated_finetune_checkpoint_is_one_line_and_overwrite_starts_again(
    capsys, pretrained, task_file, tmp_path
):
    run = tmp_path / "ft"
    assert run_finetune(capsys, "--checkpoint", pretrained, "--task", task_file, "--out-dir",
                        run, "--until", 2)[0] == 0  # fmt: skip
    (run / LAST).write_bytes((run / LAST).read_bytes()[:2000])
    status, err = run_finetune(capsys, "--checkpoint", pretrained, "--task", task_file,
                               "--out-dir", run, "--resume")  # fmt: skip
    assert status == 1 and "--overwrite" in err, err
    one_line_error(err)
    status, err = run_finetune(capsys, "--checkpoint", pretrained, "--task", task_file,
                               "--out-dir", run, "--overwrite")  # fmt: skip
    assert status == 0, err
    assert read_checkpoint(run / LAST)["step"] > 2


@pytest.mark.parametrize("line", ["42", "[1, 2]", '"text"', "null", '{"no_step": 1}',
                                  '{"step": "3"}'])  # fmt: skip
def test_a_metrics_line_that_is_json_but_not_a_record_is_skipped(corpus, work, tmp_path, line):
    run = tmp_path / "run"
    train(config_of(corpus), run, progress=False, work_dir=work, until=2)
    with open(run / "metrics.jsonl", "a") as f:
        f.write(line + "\n")
    assert all(isinstance(r["step"], int) for r in read_metrics(run))
    summary = train(config_of(corpus), run, resume=True, progress=False, work_dir=work)
    assert summary["steps"] == 4


@pytest.mark.parametrize("text", ["{not json", "[1, 2, 3]", '"a string"', "{}"])
def test_a_broken_config_json_is_one_line(capsys, tmp_path, text):
    small = GPT(GPTConfig(vocab_size=64, n_ctx=16, n_embd=32, n_layer=1, n_head=2))
    folder = small.save_pretrained(tmp_path / "model")
    (folder / "config.json").write_text(text)
    with pytest.raises(ValueError, match="config"):
        GPT.from_pretrained(folder)
    (folder / "tokenizer.json").write_text("{}")
    status, err = run_sample(capsys, "--checkpoint", folder, "--prompt", "hi")
    assert status == 1 and "config" in err, err
    one_line_error(err)


def test_a_prompt_that_is_not_utf8_is_one_line(capsys, pretrained):
    status, err = run_sample(capsys, "--checkpoint", pretrained, "--prompt", "caf\udce9")
    assert status == 1 and "UTF-8" in err, err
    one_line_error(err)


def test_sample_into_a_closed_pipe_exits_quietly(pretrained):
    """`python -m gpt1_lib.sample ... | head -c 20`: the reader stops, and that is no error."""
    proc = subprocess.run(
        f"{sys.executable} -m gpt1_lib.sample --checkpoint {pretrained} --prompt 'the king' "
        "--max-new-tokens 4000 --num-samples 3 --seed 0 | head -c 20",
        shell=True, env=one_thread_env(), capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert len(proc.stdout) == 20
    assert "Traceback" not in proc.stderr and "BrokenPipe" not in proc.stderr, proc.stderr


def test_a_huge_max_new_tokens_is_not_allocated_up_front(pretrained):
    model = load_model(pretrained)
    prompt = torch.tensor([[5, 6, 7]])
    steps = generate_tokens(model, prompt, 10**10, temperature=0)  # 80 GB of ids up front
    assert len(list(islice(steps, 3))) == 3


def test_the_decoding_buffer_grows_past_its_first_block(pretrained, monkeypatch):
    monkeypatch.setattr(fast_decode, "SEQ_BLOCK", 40)  # a block shorter than the run: it must grow
    model = load_model(pretrained)
    prompt = torch.tensor([[5, 6, 7]])
    grown = generate(model, prompt, 100, temperature=0, decoding=fast_decode.fast_decode_steps)
    monkeypatch.undo()
    assert torch.equal(grown, generate(model, prompt, 100, temperature=0))


@pytest.mark.parametrize("until", [0, -3])
def test_finetune_until_below_one_is_one_line(capsys, pretrained, task_file, tmp_path, until):
    status, err = run_finetune(capsys, "--checkpoint", pretrained, "--task", task_file,
                               "--out-dir", tmp_path / "ft", "--until", until)  # fmt: skip
    assert status == 1 and "--until" in err, err
    one_line_error(err)
    assert not (tmp_path / "ft").exists()  # refused before anything was written


@pytest.mark.parametrize(("text", "says"), [("", "empty"), ("# only a comment\n", "empty"),
                                            ("lr: 0.1\nlr: 0.2\n", "twice")])  # fmt: skip
def test_an_empty_or_ambiguous_yaml_config_is_one_line(capsys, work, tmp_path, text, says):
    config = tmp_path / "config.yaml"
    config.write_text(text)
    status, err = run_train(capsys, "--config", config, "--out-dir", tmp_path / "run",
                            "--work-dir", work, "--no-progress")  # fmt: skip
    assert status == 1 and says in err and "config.yaml" in err, err
    one_line_error(err)


def test_files_the_library_writes_are_readable_as_ordinary_files(pretrained, tmp_path):
    umask = os.umask(0o022)
    try:
        model = load_model(pretrained)
        folder = GPT(model.config.__class__(**{**model.config.__dict__, "pre_ln": False}))
        written = folder.save_pretrained(tmp_path / "export")
        files = [*written.iterdir(), *pretrained.iterdir()]
        for path in files:
            if path.is_file() and path.name != ".lock":
                assert stat.S_IMODE(path.stat().st_mode) & 0o044 == 0o044, path
    finally:
        os.umask(umask)


def test_ctrl_c_exits_with_130_from_every_command_line(capsys, pretrained, task_file, tmp_path,
                                                       monkeypatch):  # fmt: skip
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(ft, "run", interrupted)
    assert ft.main(["--checkpoint", str(pretrained), "--task", str(task_file), "--out-dir",
                    str(tmp_path / "ft")]) == 130  # fmt: skip
    monkeypatch.setattr(sample, "load", interrupted)
    status, _ = run_sample(capsys, "--checkpoint", pretrained, "--prompt", "x")
    assert status == 130
    import gpt1_lib.train_cli as train_cli

    monkeypatch.setattr(train_cli, "train", interrupted)
    assert train_main(["--config", "smoke", "--out-dir", str(tmp_path / "t")]) == 130
