"""Exact resume: a run killed with SIGKILL at any moment, even in the middle of writing a
checkpoint, and resumed, logs the same losses step for step as an uninterrupted run — bit for
bit on a CPU — and ends with the same weights."""

from __future__ import annotations

import signal
import subprocess
import sys
import time

import pytest
import torch
from training_helpers import cli, comparable, make_corpus, one_thread_env, tiny_config, write_config

from gpt1_lib.checkpoint import BEST, LAST, CheckpointError, load_model, read_checkpoint
from gpt1_lib.train import read_metrics, train

MAX_STEPS = 120

# Run the command line with torch.save replaced by one that writes half the file and then
# SIGKILLs its own process: a kill in the middle of the Nth checkpoint write, every time.
DYING_SAVE = """
import os, signal, sys, torch
real_save, calls = torch.save, [0]
def dying_save(obj, f, *args, **kwargs):
    calls[0] += 1
    if calls[0] == int(os.environ["KILL_AT_SAVE"]):  # f: the writer's temporary file's path
        real_save(obj, f, *args, **kwargs)
        os.truncate(f, os.path.getsize(f) // 2)
        os.kill(os.getpid(), signal.SIGKILL)
    real_save(obj, f, *args, **kwargs)
torch.save = dying_save
from gpt1_lib.train_cli import main
sys.exit(main(sys.argv[1:]))
"""


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as the subprocesses (OMP_NUM_THREADS=1): bitwise comparable
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    base = tmp_path_factory.mktemp("resume")
    corpus = make_corpus(base / "corpus.txt")
    config = tiny_config(corpus, max_steps=MAX_STEPS, ckpt_interval=10, eval_interval=6)
    config_file = write_config(base / "config.yaml", config)
    work = base / "work"
    reference = base / "reference"
    train(config, reference, progress=False, work_dir=work)
    return config, config_file, work, reference


def kill_when_logged(proc: subprocess.Popen, run_dir, step: int) -> int:
    """SIGKILL the training process once metrics.jsonl reaches `step`; return the last step."""
    deadline = time.monotonic() + 120
    while True:
        records = read_metrics(run_dir)
        if records and records[-1]["step"] >= step:
            break
        assert proc.poll() is None, f"the run ended before it was killed: {proc.communicate()}"
        assert time.monotonic() < deadline, "the run did not reach the step in time"
        time.sleep(0.002)
    proc.send_signal(signal.SIGKILL)
    proc.communicate()
    assert proc.returncode == -signal.SIGKILL
    return read_metrics(run_dir)[-1]["step"]


def assert_same_as_reference(run_dir, reference):
    assert comparable(read_metrics(run_dir)) == comparable(read_metrics(reference))  # bit for bit
    for name in (LAST, BEST):
        ours, theirs = read_checkpoint(run_dir / name), read_checkpoint(reference / name)
        assert ours["step"] == theirs["step"]
        assert all(torch.equal(v, theirs["model"][k]) for k, v in ours["model"].items())
    assert not list(run_dir.glob("*.tmp"))


def test_killed_twice_and_resumed_equals_the_uninterrupted_run(setup, tmp_path):
    config, config_file, work, reference = setup
    args = [
        "--config",
        str(config_file),
        "--out-dir",
        str(tmp_path),
        "--work-dir",
        str(work),
        "--no-progress",
    ]
    killed_at = kill_when_logged(cli(*args), tmp_path, 15)
    assert read_checkpoint(tmp_path / LAST)["step"] <= killed_at < MAX_STEPS
    killed_again = kill_when_logged(cli(*args, "--resume"), tmp_path, 45)
    assert 45 <= killed_again < MAX_STEPS
    summary = train(config_file, tmp_path, resume=True, progress=False, work_dir=work)
    assert summary["resumed_from"] is not None and summary["steps"] == MAX_STEPS
    assert_same_as_reference(tmp_path, reference)


@pytest.mark.parametrize("kill_at_save", [2, 3])
def test_killed_while_writing_a_checkpoint_resumes_from_the_previous_one(
    setup, tmp_path, kill_at_save
):
    """Saves: last@6 and (lean) best@6 together, last@10, ...: a kill inside the 2nd leaves a
    half-written temporary file of ckpt_best.pt (.ckpt_best.pt.XXXX.tmp), inside the 3rd one of
    ckpt_last.pt; both resume exactly from the complete ckpt_last.pt of update 6, and the
    resume removes the torn file."""
    config, config_file, work, reference = setup
    proc = subprocess.run(
        [sys.executable, "-c", DYING_SAVE, "--config", str(config_file), "--out-dir", str(tmp_path),
         "--work-dir", str(work), "--no-progress"],
        env={**one_thread_env(), "KILL_AT_SAVE": str(kill_at_save)}, capture_output=True, text=True,
        timeout=300,
    )  # fmt: skip
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    torn = list(tmp_path.glob(".ckpt_*.pt.*.tmp"))
    assert len(torn) == 1  # the torn write
    expected_step = {2: 6, 3: 6}[kill_at_save]
    summary = train(config, tmp_path, resume=True, progress=False, work_dir=work)
    assert summary["resumed_from"] == expected_step and not torn[0].exists()
    assert_same_as_reference(tmp_path, reference)


def test_a_corrupt_last_checkpoint_stops_the_resume_and_keeps_the_best_weights(
    setup, tmp_path, capsys
):
    """The lean best cannot continue training exactly: resuming says so; the weights stay
    readable, and the run can be started again."""
    config, _, work, reference = setup
    train(config, tmp_path, progress=False, work_dir=work, until=25)
    last, best = read_checkpoint(tmp_path / LAST)["step"], read_checkpoint(tmp_path / BEST)["step"]
    assert last == 25 and best in (6, 12, 18, 24)  # evaluations every 6 updates
    torn = (tmp_path / LAST).read_bytes()[:5000]
    (tmp_path / LAST).write_bytes(torn)
    with pytest.raises(CheckpointError, match=f"no complete checkpoint left.*update {best}"):
        train(config, tmp_path, resume=True, progress=False, work_dir=work)
    assert "truncated or corrupt" in capsys.readouterr().out
    assert (tmp_path / (LAST + ".corrupt")).read_bytes() == torn  # kept, never overwritten
    assert load_model(tmp_path).config.n_layer == config["n_layer"]  # best's weights still load
    train(config, tmp_path, progress=False, work_dir=work, overwrite=True)
    assert_same_as_reference(tmp_path, reference)
