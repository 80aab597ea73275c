"""The `cpu` preset's reference band: its loss curves over several seeds, for `doctor --run`.

`python -m gpt1_lib.doctor --run runs/x` draws a run against the spread of these curves and
says whether it lies inside. This trains the `cpu` preset (chapter 06's run) once per seed,
each from scratch on the same corpus and tokenizer, and writes, next to the preset,

    gpt1_lib/configs/cpu_band.json

the lowest, highest and mean training loss over the seeds at every logged update, the same
for the validation loss at every evaluation, and the corpus's unigram entropy (the loss of a
model that knows only how often each token occurs: the plateau of chapter 05 §9). Rerun it
when the preset, the model code or the training loop changes what a run computes.

    python benchmarks/cpu_band.py                 # 5 seeds, about 4 minutes each on 2 cores
    python benchmarks/cpu_band.py --seeds 1 2     # a try
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from gpt1_lib.config import load_config  # noqa: E402
from gpt1_lib.data import token_entropy  # noqa: E402
from gpt1_lib.health import BAND_KEYS  # noqa: E402
from gpt1_lib.run_dir import read_metrics  # noqa: E402
from gpt1_lib.token_cache import prepare_tokens  # noqa: E402
from gpt1_lib.tokenizer import load_tokenizer  # noqa: E402
from gpt1_lib.train import train  # noqa: E402

OUT = ROOT / "gpt1_lib" / "configs" / "cpu_band.json"
SEEDS = (1, 2, 3, 4, 5)  # not 1337, the preset's own seed: chapter 06's run is checked against
# seeds it is not one of, so "within the band" is a finding, not true by construction


def spread(curves: list[dict[int, float]]) -> tuple[list[int], dict[str, list[float]]]:
    """The steps every curve has, and the lowest, highest and mean value at each."""
    steps = sorted(set.intersection(*(set(c) for c in curves)))
    rows = [[c[s] for c in curves] for s in steps]
    return steps, {"low": [round(min(r), 4) for r in rows], "high": [round(max(r), 4) for r in rows],
                   "mean": [round(sum(r) / len(r), 4) for r in rows]}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=list(SEEDS))
    parser.add_argument("--work-dir", type=Path, default=ROOT / "build" / "band")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    train_curves, val_curves, cfg = [], [], None
    with tempfile.TemporaryDirectory() as tmp:
        for seed in args.seeds:
            cfg = load_config("cpu", [f"seed={seed}", "keep_every=0", "device=cpu"])
            run = Path(tmp) / f"seed_{seed}"
            summary = train(cfg, run, progress=False, work_dir=args.work_dir)
            records = read_metrics(run)
            train_curves.append({r["step"]: r["train_loss"] for r in records if "train_loss" in r})
            val_curves.append({r["step"]: r["val_loss"] for r in records if "val_loss" in r})
            print(f"seed {seed}: final validation loss {summary['final_val_loss']:.3f} in "
                  f"{summary['train_seconds']:.0f} s", flush=True)  # fmt: skip
        assert cfg is not None
        tokenizer = load_tokenizer(run / "tokenizer.json")
        files = prepare_tokens(cfg["dataset"], tokenizer, args.work_dir, cfg["val_fraction"], False)
        entropy = token_entropy(np.fromfile(files.train, dtype=files.dtype), files.vocab_size)
    steps, train_band = spread(train_curves)
    val_steps, val_band = spread(val_curves)
    band = {
        "preset": "cpu", "seeds": args.seeds, "config": {k: cfg[k] for k in BAND_KEYS},
        "steps": steps, "train_loss": train_band, "val_steps": val_steps, "val_loss": val_band,
        "unigram_entropy": round(entropy, 4), "ln_vocab": round(math.log(cfg["vocab_size"]), 4),
        "written": datetime.datetime.now().strftime("%Y-%m-%d %H:%M"),
        "torch": torch.__version__, "device": "cpu", "script": "benchmarks/cpu_band.py",
    }  # fmt: skip
    args.out.write_text(
        "{\n" + ",\n".join(f"{json.dumps(k)}: {json.dumps(v)}" for k, v in band.items()) + "\n}\n",
        encoding="utf-8",
    )
    print(f"wrote {args.out}: {len(steps)} logged updates, unigram entropy {entropy:.3f} nats")


if __name__ == "__main__":
    main()
