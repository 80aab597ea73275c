"""Data parallelism: the same command under `torchrun --nproc_per_node=2` (gloo on a CPU)
trains like one process with the same gradient accumulation, to within float rounding, and
reports the utilisation of the whole job."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys

import pytest
import torch
import torch.multiprocessing as mp
from training_helpers import (
    make_corpus,
    one_thread,  # noqa: F401 (an autouse fixture)
    one_thread_env,
    tiny_config,
    write_config,
)

from gpt1_lib.checkpoint import LAST, read_checkpoint
from gpt1_lib.train import read_metrics, train

FAKE_PEAK = 1e9  # FLOP/s of one pretend accelerator: a CPU has no peak of its own


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


def _train_with_a_fake_peak(rank: int, world: int, port: int, config: dict, out_dir, work_dir):
    """One process of a gloo job whose every device claims FAKE_PEAK FLOP/s."""
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank),
                      WORLD_SIZE=str(world), LOCAL_RANK=str(rank))  # fmt: skip
    torch.set_num_threads(1)
    import torch.distributed as dist

    import gpt1_lib.gpu_peaks as gpu_peaks

    gpu_peaks.device_peak_flops = lambda device: FAKE_PEAK
    summary = train(config, out_dir, progress=False, work_dir=work_dir)
    if rank == 0:
        (out_dir / "summary.json").write_text(json.dumps(summary))
    if dist.is_initialized():
        dist.destroy_process_group()


def test_mfu_of_several_processes_divides_by_the_peak_of_all_of_them(tmp_path):
    """tokens_per_s counts every process's tokens, so one device's peak would overstate MFU
    by the number of processes: two processes must divide by twice the peak."""
    from gpt1_lib.model import GPT, model_config
    from gpt1_lib.precision import model_flops_per_token

    config = tiny_config(make_corpus(tmp_path / "corpus.txt"), dropout=0.0, grad_accum=2,
                         max_steps=4, eval_interval=4, eval_iters=2, ckpt_interval=4)  # fmt: skip
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    out_dir = tmp_path / "two"
    mp.spawn(_train_with_a_fake_peak, args=(2, port, config, out_dir, tmp_path / "work"), nprocs=2)
    flops = model_flops_per_token(GPT(model_config(config)))
    records = read_metrics(out_dir)
    assert records and all("mfu" in r for r in records)
    for r in records:
        assert r["mfu"] == pytest.approx(r["tokens_per_s"] * flops / (2 * FAKE_PEAK), rel=1e-9)
    summary = json.loads((out_dir / "summary.json").read_text())
    assert summary["processes"] == 2
    assert summary["mfu"] == pytest.approx(summary["tokens_per_s"] * flops / (2 * FAKE_PEAK))


SHORT_TIMEOUT_S, MAIN_DELAY_S = 4, 12  # the default group's timeout stands in for NCCL's 10 min


def _train_with_a_slow_main(rank: int, world: int, port: int, config: dict, out_dir, work_dir):
    """One process of a gloo job whose default group times out in SHORT_TIMEOUT_S, and whose
    main process takes MAIN_DELAY_S longer to make the tokenizer (a first session's download)."""
    import datetime
    import time

    import torch.distributed as dist

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank),
                      WORLD_SIZE=str(world), LOCAL_RANK=str(rank))  # fmt: skip
    torch.set_num_threads(1)
    dist.init_process_group("gloo", timeout=datetime.timedelta(seconds=SHORT_TIMEOUT_S))
    import gpt1_lib.tokenizer_cache as tokenizer_cache

    if rank == 0:
        prepare = tokenizer_cache.prepare_tokenizer

        def slow_prepare(*args, **kwargs):
            time.sleep(MAIN_DELAY_S)
            return prepare(*args, **kwargs)

        tokenizer_cache.prepare_tokenizer = slow_prepare
    summary = train(config, out_dir, progress=False, work_dir=work_dir)
    if rank == 0:
        (out_dir / "summary.json").write_text(json.dumps(summary))
    dist.destroy_process_group()


def test_the_other_processes_wait_as_long_as_the_main_process_prepares_the_data(tmp_path):
    """torchrun on a fresh machine: rank 0 downloads, trains the tokenizer and tokenises for
    longer than the process group's timeout (NCCL's is 10 minutes) while the others wait. They
    wait on a patient gloo group (`Processes.wait_for_main`), so the job trains."""
    config = tiny_config(make_corpus(tmp_path / "corpus.txt"), dropout=0.0, grad_accum=2,
                         max_steps=2, warmup_steps=1, eval_interval=2, eval_iters=1,
                         ckpt_interval=2)  # fmt: skip
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    out_dir = tmp_path / "two"
    mp.spawn(_train_with_a_slow_main, args=(2, port, config, out_dir, tmp_path / "work"), nprocs=2)
    summary = json.loads((out_dir / "summary.json").read_text())
    assert summary["processes"] == 2 and summary["steps"] == 2
