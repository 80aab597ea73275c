"""`python -m gpt1_lib.doctor --run RUN_DIR`: is this training run healthy?

Hand-written support module (not generated from a notebook), like `doctor`. It reads a run's
`metrics.jsonl` and `config.yaml`, compares the training loss with a reference band (the
curves of several seeds of the `cpu` preset: `gpt1_lib/configs/cpu_band.json`, written by
`benchmarks/cpu_band.py`), draws the run against it (`health.png` beside the run, when
matplotlib is installed) and names what it sees, one line each: inside the band or outside
it, and the symptoms readers of GPT courses ask about most: a loss stuck at the unigram
plateau, a loss at ln V, NaN or a collapsing fp16 loss scale, validation rising while training
falls. The thresholds are stated below; each symptom has a test that plants it.
"""

from __future__ import annotations

import io
import json
import math
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from gpt1_lib.atomic import write_atomically
from gpt1_lib.run_dir import CONFIG, read_metrics

# The settings that shape a loss curve: a run is compared with a band only when they agree.
BAND_KEYS = ("dataset", "vocab_size", "val_fraction", "n_ctx", "n_embd", "n_layer", "n_head",
             "pre_ln", "dropout", "batch_size", "grad_accum", "lr", "weight_decay",
             "warmup_steps", "max_steps")  # fmt: skip
SLACK = 0.05  # nats outside the band that still count as inside it (the seeds are few)
AT_LN_V = 0.1  # nats from ln V: a uniform guess over the vocabulary
FLAT = 0.05  # nats: the most a line fitted to the loss's last third may fall and still be "flat"
AT_PLATEAU = 0.3  # nats from the corpus's unigram entropy
HIGH = 0.7  # of ln V: a flat loss above it, where no unigram entropy is known, is suspect
OVERFIT = 0.05  # nats the validation loss rises above its best while the training loss falls
SKIPPED = 0.05  # of the updates skipped by the fp16 scaler: more is no longer "finding a scale"
PICTURE = "health.png"


def load_band(name: str = "cpu") -> dict[str, Any] | None:
    """A preset's reference band, or None if it has none."""
    path = resources.files("gpt1_lib") / "configs" / f"{name}_band.json"
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None


def band_differences(cfg: dict[str, Any], band: dict[str, Any]) -> list[str]:
    return [k for k in BAND_KEYS if cfg.get(k) != band["config"].get(k)]


def unigram_entropy(cfg: dict[str, Any], band: dict[str, Any] | None) -> float | None:
    """The loss of a model that knows only token frequencies, where the band measured it: it
    depends on the corpus and the tokenizer only."""
    keys = ("dataset", "vocab_size", "val_fraction")
    if band and all(cfg.get(k) == band["config"].get(k) for k in keys):
        return float(band["unigram_entropy"])
    return None


def _train(records: list[dict[str, Any]]) -> list[tuple[int, float]]:
    return [(r["step"], float(r["train_loss"])) for r in records if r.get("train_loss") is not None]


def _val(records: list[dict[str, Any]]) -> list[tuple[int, float]]:
    return [(r["step"], float(r["val_loss"])) for r in records if r.get("val_loss") is not None]


def not_finite(records: list[dict[str, Any]]) -> str | None:
    bad = [s for s, v in _train(records) + _val(records) if not math.isfinite(v)]
    if not bad:
        return None
    return (f"NaN: the loss is not a number from update {min(bad)}: fp16 overflow or too high a "
            "learning rate; try dtype=bfloat16 or float32, a lower lr, a longer warmup, "
            "grad_clip=1.0")  # fmt: skip


def scale_collapse(records: list[dict[str, Any]]) -> str | None:
    scaled = [r for r in records if "loss_scale" in r]
    if not scaled:
        return None
    first, last = scaled[0]["loss_scale"], scaled[-1]["loss_scale"]
    skipped, step = scaled[-1].get("skipped_updates", 0), scaled[-1]["step"]
    if last >= 1.0 and skipped <= SKIPPED * step:
        return None
    return (f"the fp16 loss scale collapsed: {first:g} -> {last:g}, {skipped} of {step} updates "
            "skipped: the gradients overflow at every scale; use dtype=bfloat16 (Ampere and "
            "newer) or float32, or a lower lr")  # fmt: skip


def last_third(points: list[tuple[int, float]]) -> list[tuple[int, float]]:
    return points[len(points) - max(3, len(points) // 3) :] if len(points) >= 3 else []


def at_ln_v(records: list[dict[str, Any]], cfg: dict[str, Any]) -> str | None:
    tail, ln_v = last_third(_train(records)), math.log(cfg.get("vocab_size") or 1)
    if not tail or ln_v == 0 or any(abs(v - ln_v) > AT_LN_V for _, v in tail):
        return None
    return (f"loss at ln V: the training loss sits at {tail[-1][1]:.2f} = ln {cfg['vocab_size']}, "
            "a uniform guess over the vocabulary: nothing is learned; look for a frozen model "
            "(lr 0, no optimiser step, parameters left out of the optimiser) or gradients that "
            "never reach the weights (detached, or zeroed after backward)")  # fmt: skip


def flat(points: list[tuple[int, float]]) -> bool:
    """Whether a least-squares line through `points` moves less than FLAT from first to last.
    A line, not the range of the values: on a real plateau the logged means (each of
    log_interval updates) still wander by about 0.05 nats, and a range would call that moving."""
    steps, values = zip(*points)
    slope = float(np.polyfit(steps, values, 1)[0])
    return abs(slope * (steps[-1] - steps[0])) <= FLAT


def plateau(records: list[dict[str, Any]], entropy: float | None, ln_v: float) -> str | None:
    """Stuck at the unigram entropy where it is known; else flat and still high (above HIGH of
    ln V, where unigram entropies of text lie: a converged run is flat too, but lower)."""
    tail = [(s, v) for s, v in last_third(_train(records)) if math.isfinite(v)]
    if len(tail) < 3 or not flat(tail):
        return None
    level = float(np.mean([v for _, v in tail]))  # where it sits, not its last wobble
    if entropy is not None and abs(level - entropy) <= AT_PLATEAU:
        return (f"stuck at the unigram plateau: the training loss has sat at {level:.2f}, "
                f"the corpus's unigram entropy ({entropy:.2f}), since update {tail[0][0]}: the "
                "model predicts token frequencies only; try a longer warmup, a lower lr, or "
                "pre_ln: true (post-LN leaves this plateau late, chapter 05 §9)")  # fmt: skip
    if entropy is None and level > HIGH * ln_v:
        return (f"flat and high: the training loss has not moved from {level:.2f} since "
                f"update {tail[0][0]}; if that is far above what the corpus allows, see the unigram "
                "plateau of chapter 05 §9 (warmup, lr, pre_ln)")  # fmt: skip
    return None


def overfitting(records: list[dict[str, Any]]) -> str | None:
    val, train = _val(records), dict(_train(records))
    if len(val) < 3:
        return None
    best_step, best = min(val, key=lambda p: p[1])
    end_step, end = val[-1]
    later = [s for s, _ in val if s > best_step]
    if len(later) < 2 or end - best < OVERFIT:
        return None
    t0, t1 = train.get(best_step), train.get(end_step)
    if t0 is None or t1 is None or t1 > t0 - OVERFIT:
        return None
    return (f"overfitting: the validation loss rose from {best:.2f} (update {best_step}) to "
            f"{end:.2f} (update {end_step}) while the training loss fell from {t0:.2f} to "
            f"{t1:.2f}: ckpt_best.pt keeps update {best_step}; more text, dropout, or fewer "
            "updates")  # fmt: skip


def interpolate(steps: list[int], values: list[float], step: int) -> float | None:
    """`values` at `step`, linearly between the band's steps; None outside them."""
    if not steps or not steps[0] <= step <= steps[-1]:
        return None
    return float(np.interp(step, steps, values))


def against_band(records: list[dict[str, Any]], band: dict[str, Any]) -> str:
    """Where the training loss lies against the band, in one line."""
    b, seeds = band["train_loss"], len(band["seeds"])
    where = []
    for step, value in _train(records):
        low, high = (interpolate(band["steps"], b[k], step) for k in ("low", "high"))
        if low is not None and high is not None and math.isfinite(value):
            where.append(
                (step, value, low, high, -1 if value < low - SLACK else int(value > high + SLACK))
            )
    if not where:
        return "no point of this run lies within the steps the band covers"
    inside = sum(1 for *_, side in where if side == 0)
    step, value, low, high, side = where[-1]
    at_end = f"at update {step} {value:.2f} against {low:.2f}-{high:.2f}"
    if side == 0:
        return (f"within the band: the training loss stays inside the {seeds} seeds of the "
                f"{band['preset']} preset at {inside} of {len(where)} points ({at_end})")  # fmt: skip
    first = next(
        s for s, *_, sd in where if sd == side and all(x[4] == side for x in where if x[0] >= s)
    )
    if side > 0:
        return (f"above the band from update {first}: the run learns slower than the "
                f"{band['preset']} preset's {seeds} seeds ({at_end}); see the lines below, or "
                "compare its device and dtype with theirs")  # fmt: skip
    return (f"below the band from update {first} ({at_end}): lower than the {band['preset']} "
            "preset's seeds; validation tells whether it generalises")  # fmt: skip


def read_run(run_dir: Path) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """A run's metrics records and its config (empty where it has no config.yaml)."""
    path = run_dir / CONFIG
    cfg = yaml.safe_load(path.read_text(encoding="utf-8")) if path.is_file() else {}
    return read_metrics(run_dir), cfg or {}


def diagnose(run_dir: str | Path, band: dict[str, Any] | None = None) -> list[str]:
    """One line per finding about the run in `run_dir` (`band`: the cpu preset's by default)."""
    run_dir = Path(run_dir)
    records, cfg = read_run(run_dir)
    if not records:
        return [f"no metrics: {run_dir / 'metrics.jsonl'} has no record yet"]
    band = load_band() if band is None else band
    lines = []
    if band is not None:
        differ = band_differences(cfg, band)
        lines.append(against_band(records, band) if not differ else
                     f"no reference band: {', '.join(differ)} {'differs' if len(differ) == 1 else 'differ'} "
                     f"from the {band['preset']} preset's, whose seeds the band holds (the symptoms "
                     "below are checked all the same)")  # fmt: skip
    checks = (not_finite(records), scale_collapse(records), at_ln_v(records, cfg),
              plateau(records, unigram_entropy(cfg, band), math.log(cfg.get("vocab_size") or 2)),
              overfitting(records))  # fmt: skip
    found = [c for c in checks if c]
    if any(c.startswith(("NaN", "loss at ln V")) for c in found):  # the rest follows from these
        found = [c for c in found if not c.startswith(("flat", "stuck"))]
    return lines + (found or ["no symptom found: not NaN, not at ln V, not on a plateau, no "
                              "overfitting, no collapsing loss scale"])  # fmt: skip


def draw(run_dir: str | Path, band: dict[str, Any] | None = None) -> Path | None:
    """`health.png` beside the run: its losses over the band, with ln V and the unigram
    plateau dashed. None when matplotlib (the chapters' dependency) is not installed."""
    try:
        from matplotlib.figure import Figure  # no pyplot: no GUI backend, no global state
    except ImportError:
        return None
    run_dir, band = Path(run_dir), load_band() if band is None else band
    records, cfg = read_run(run_dir)
    ax = (fig := Figure(figsize=(7, 4), layout="constrained")).subplots()
    if band is not None and not band_differences(cfg, band):
        b = band["train_loss"]
        ax.fill_between(band["steps"], b["low"], b["high"], color="tab:blue", alpha=0.25,
                        label=f"{band['preset']} preset, {len(band['seeds'])} seeds")  # fmt: skip
        if band.get("val_loss"):  # the validation losses of the same seeds
            v = band["val_loss"]
            ax.fill_between(band["val_steps"], v["low"], v["high"], color="tab:orange",
                            alpha=0.25, label="their validation losses")  # fmt: skip
    for points, style, label in ((_train(records), "-", "training loss"),
                                 (_val(records), "o-", "validation loss")):  # fmt: skip
        if points:
            ax.plot(*zip(*points), style, label=label, markersize=3)
    if cfg.get("vocab_size"):
        ax.axhline(math.log(cfg["vocab_size"]), color="gray", ls="--", lw=1, label="ln V")
    if (entropy := unigram_entropy(cfg, band)) is not None:
        ax.axhline(entropy, color="tab:red", ls=":", lw=1, label="unigram plateau")
    ax.set(xlabel="update", ylabel="loss (nats)", title=f"{run_dir.name}: is this run healthy?")
    ax.legend(fontsize=8)
    png = io.BytesIO()
    fig.savefig(png, format="png", dpi=100)
    write_atomically(run_dir / PICTURE, lambda tmp: Path(tmp).write_bytes(png.getvalue()))
    return run_dir / PICTURE
