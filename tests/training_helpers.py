"""Shared helpers of the chapter-05 tests: a synthetic corpus, tiny configs, CLI subprocesses.

The corpus is generated (no download, no data mirror needed); the models are tiny so a run of
dozens of updates takes about a second on one CPU thread. Every process of a test runs with
one thread, so results are bitwise comparable between the test process and its subprocesses.
"""

from __future__ import annotations

import os
import random
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml

ROOT = Path(__file__).resolve().parent.parent
WORDS = (
    "the king queen lord lady sword crown night day love death fair foul sweet bitter "
    "speak hear see go come stay fly run rest sleep dream wake weep laugh sing call"
).split()


def story_tokenizer(folder: Path, vocab_size: int = 300):
    """A byte-level BPE trained on a few repeated short stories (the Hugging Face export tests
    encode English sentences with it)."""
    from gpt1_lib.tokenizer import train_tokenizer

    corpus = folder / "stories.txt"
    story = "Once upon a time, there was a little {} named {}. It liked to play in the park.\n"
    corpus.write_text(
        "".join(story.format(a, n) for a in ("dog", "cat", "bird") for n in ("Max", "Lily", "Tom"))
        * 20
    )
    return train_tokenizer(corpus, vocab_size)


def make_corpus(path: Path, n_lines: int = 3000, seed: int = 0) -> Path:
    """A deterministic text of short capitalised lines (about 25 bytes each)."""
    rng = random.Random(seed)
    lines = []
    for _ in range(n_lines):
        words = [rng.choice(WORDS) for _ in range(rng.randint(3, 7))]
        lines.append(" ".join(words).capitalize() + rng.choice(".,;!?"))
    path.write_text("\n".join(lines) + "\n")
    return path


def tiny_config(corpus: Path, **overrides: Any) -> dict[str, Any]:
    """A model of a few thousand parameters; dropout on, so the RNG state matters on resume."""
    config = {
        "dataset": str(corpus), "vocab_size": 300, "n_ctx": 32, "n_embd": 32, "n_layer": 2,
        "n_head": 2, "dropout": 0.1, "batch_size": 4, "grad_accum": 1, "lr": 3e-3,
        "warmup_steps": 4, "max_steps": 40, "eval_interval": 6, "eval_iters": 2,
        "ckpt_interval": 5, "log_interval": 1, "seed": 7, "device": "cpu",
    }  # fmt: skip
    config.update(overrides)
    return config


def write_config(path: Path, config: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump(config))
    return path


def one_thread_env() -> dict[str, str]:
    """The environment of a subprocess: one CPU thread, the package importable."""
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    return env


def cli(*args: str, **kwargs: Any) -> subprocess.Popen:
    """Start `python -m gpt1_lib.train ARGS` (one thread)."""
    return subprocess.Popen(
        [sys.executable, "-m", "gpt1_lib.train", *args],
        env=one_thread_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        **kwargs,
    )


def comparable(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Metrics without the fields that measure time."""
    return [{k: v for k, v in r.items() if k not in ("tokens_per_s", "mfu")} for r in records]


@pytest.fixture(autouse=True)
def one_thread():
    """Training tests run on one thread: steadier on shared cores, and bitwise repeatable."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
