"""Data parallelism: the same command under `torchrun --nproc_per_node=2` (gloo on a CPU)
trains like one process with the same gradient accumulation, to within float rounding."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch
from training_helpers import (
    make_corpus,
    one_thread,  # noqa: F401 (an autouse fixture)
    one_thread_env,
    tiny_config,
    write_config,
)

from gpt1_lib.checkpoint import LAST, read_checkpoint
from gpt1_lib.train import read_metrics, train


def test_two_gloo_processes_match_one_process_with_the_same_accumulation(tmp_path):
    corpus = make_corpus(tmp_path / "corpus.txt")
    # dropout 0: each process draws its own dropout masks, one process draws them in sequence
    config = tiny_config(corpus, dropout=0.0, grad_accum=2, max_steps=12, warmup_steps=3,
                         eval_interval=4, eval_iters=3, ckpt_interval=6)  # fmt: skip
    config_file = write_config(tmp_path / "config.yaml", config)
    train(config, tmp_path / "one", progress=False, work_dir=tmp_path / "work")
    # A work dir of its own: the main process makes tokenizer and token ids, the other waits
    # and reads them (two processes writing the same files would race).
    proc = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
         "-m", "gpt1_lib.train", "--config", str(config_file), "--out-dir", str(tmp_path / "two"),
         "--work-dir", str(tmp_path / "work2"), "--no-progress"],
        env=one_thread_env(), capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads(proc.stdout[proc.stdout.index("{") :])
    assert summary["processes"] == 2 and summary["steps"] == 12
    one, two = read_metrics(tmp_path / "one"), read_metrics(tmp_path / "two")
    assert [r["step"] for r in one] == [r["step"] for r in two] == list(range(1, 13))
    for a, b in zip(one, two):
        assert b["train_loss"] == pytest.approx(a["train_loss"], rel=2e-6), a["step"]
        assert b["grad_norm"] == pytest.approx(a["grad_norm"], rel=1e-4), a["step"]
        assert b["tokens_seen"] == a["tokens_seen"]
        if "val_loss" in a:
            assert b["val_loss"] == pytest.approx(a["val_loss"], rel=2e-6), a["step"]
    assert one[-1]["train_loss"] < one[0]["train_loss"] - 0.3  # it did train
    ckpt_one, ckpt_two = (
        read_checkpoint(tmp_path / "one" / LAST),
        read_checkpoint(tmp_path / "two" / LAST),
    )
    made = sorted(p.name for p in (tmp_path / "work2" / "tokens").iterdir())
    assert len(made) == 4 and not any(n.endswith(".tmp") for n in made)  # ids, meta, checksum
    assert ckpt_two["world_size"] == 2 and len(ckpt_two["rng"]) == 2  # every process's RNG
    for name, weight in ckpt_one["model"].items():
        assert torch.allclose(ckpt_two["model"][name], weight, atol=1e-5), name
