"""Do the GPU presets' learning rates and warmups get post-LN GPT-1 off the unigram plateau?

Hand-written experiment. Chapter 05 found post-LN GPT-1 sitting on the unigram plateau
(the loss of a model that knows only token frequencies) for the whole CPU budget. The `t4` and
`a10g` presets (12 layers, lr 2.5e-4, 500 warmup updates of 3000) and chapter 08's "quick" run
(6 layers, lr 1e-3, 200 warmup updates of 6000) train post-LN. A 768-wide model does not fit a
shared 2-core CPU, so each preset is probed at its own depth and its own schedule (peak lr, warmup
length and total updates, linear warmup then cosine to zero: the very `Trainer` the presets run),
but narrow, with a short context and a small batch, on tiny shakespeare. Every preset is trained
post-LN (as shipped) and pre-LN (GPT-2's blocks) at the preset's lr, and both again at the lr
scaled by 768 / width (t4) or 384 / width (quick): Adam moves every weight by about lr per update,
so a layer's output moves about width times as far; the scaled lr makes the narrow model's steps
as large, in that sense, as the wide model's. The two lrs bracket the wide model.

A run "leaves the plateau" at the first logged update whose mean training loss (over the last
`log_interval` updates) is MARGIN nats below the unigram entropy of the training tokens. A run
stops early once the plateau is left and every logged loss of the last CONFIRM updates is below
that line (`--full`: never stop early); chunks resume from the run's checkpoint, which the Trainer
restores exactly, so stopping early changes nothing before the stop.

    GPT1_DATA_MIRROR=/work/shared/data HF_HUB_OFFLINE=1 python benchmarks/preset_check.py
    python benchmarks/preset_check.py --full      # every run to the preset's last update

Run directories (build/preset_check/runs/) are kept: a rerun with the same configs replays them
instead of training again, and --full continues them from where they stopped.

Writes benchmarks/results/preset_check.md, benchmarks/results/preset_check.json and
figures/08_preset_check.png.
"""

from __future__ import annotations

import argparse
import ast
import datetime
import json
import os
import platform
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from gpt1_lib.config import load_config  # noqa: E402
from gpt1_lib.data import token_entropy  # noqa: E402
from gpt1_lib.hardware import load_average  # noqa: E402
from gpt1_lib.run_dir import read_metrics  # noqa: E402
from gpt1_lib.token_cache import prepare_tokens  # noqa: E402
from gpt1_lib.tokenizer_cache import prepare_tokenizer  # noqa: E402
from gpt1_lib.train import train  # noqa: E402

MARGIN = 0.3  # nats below the unigram entropy that count as off the plateau
CONFIRM = 250  # logged losses of this many updates below the line before stopping early
CHUNK = 250  # updates between looks at the loss
DATASET, VOCAB = "tinyshakespeare", 2048  # chapter 05's corpus and the cpu preset's BPE
NOTEBOOK_07 = ROOT / "notebooks" / "08_train_gpt1.ipynb"


@dataclass
class Probe:
    """One training run: a preset's depth and schedule on the narrow model, one block layout."""

    name: str
    preset: str
    cfg: dict[str, Any]
    wide: int  # the preset's width, for the table
    wide_tokens: int  # the preset's tokens per update
    curve: list[tuple[int, float]] = field(default_factory=list)
    left_at: int | None = None
    cpu_s: float = 0.0
    wall_s: float = 0.0


def quick_overrides() -> dict[str, Any]:
    """Chapter 08's `QUICK = dict(...)`, read from the notebook so the two cannot drift apart."""
    cells = json.loads(NOTEBOOK_07.read_text(encoding="utf-8"))["cells"]
    for cell in cells:
        source = "".join(cell["source"])
        if cell["cell_type"] != "code" or "QUICK = dict(" not in source:
            continue
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", "") == "QUICK":
                return {kw.arg: ast.literal_eval(kw.value) for kw in node.value.keywords}
    sys.exit(f"error: no `QUICK = dict(...)` cell in {NOTEBOOK_07}: update quick_overrides()")


def probes(args: argparse.Namespace) -> list[Probe]:
    """Post-LN, pre-LN and post-LN at the width-scaled lr for the t4/a10g schedule and quick's."""
    t4, a10g = load_config("t4"), load_config("a10g")
    keys = ("n_layer", "lr", "warmup_steps", "max_steps", "pre_ln", "dropout", "weight_decay")
    if any(t4.get(k) != a10g.get(k) for k in keys):
        sys.exit("error: t4 and a10g no longer share depth and schedule: probe each on its own")
    narrow = {
        "dataset": DATASET, "vocab_size": VOCAB, "tokenizer_sample_bytes": None,
        "n_embd": args.n_embd, "n_head": args.n_head, "n_ctx": args.n_ctx,
        "batch_size": args.batch_size, "grad_accum": 1, "device": "cpu", "dtype": "float32",
        "eval_iters": 4, "log_interval": 10, "ckpt_interval": 10**9,
    }  # fmt: skip
    out = []
    for preset, overrides in (("t4/a10g", {}), ("quick", quick_overrides())):
        base = load_config("t4", overrides)
        cfg = {**base, **narrow, "eval_interval": base["max_steps"]}
        scaled = base["lr"] * base["n_embd"] / args.n_embd
        layout = "pre" if base["pre_ln"] else "post"
        other = "post" if base["pre_ln"] else "pre"
        factor = f"lr x{base['n_embd'] / args.n_embd:g}"
        shape = (base["n_embd"], base["batch_size"] * base["grad_accum"] * base["n_ctx"])
        out += [
            Probe(f"{preset} {layout}-LN", preset, cfg, *shape),
            Probe(f"{preset} {other}-LN", preset, {**cfg, "pre_ln": not base["pre_ln"]}, *shape),
            Probe(f"{preset} post-LN, {factor}", preset, {**cfg, "pre_ln": False, "lr": scaled},
                  *shape),
            Probe(f"{preset} pre-LN, {factor}", preset, {**cfg, "pre_ln": True, "lr": scaled},
                  *shape),
        ]  # fmt: skip
    return out


def unigram_entropy(work_dir: Path) -> tuple[float, int]:
    """Entropy (nats) of the training tokens' frequencies, and how many tokens there are."""
    tokenizer = prepare_tokenizer(DATASET, VOCAB, work_dir)
    files = prepare_tokens(DATASET, tokenizer, work_dir, progress=False)
    ids = np.fromfile(files.train, dtype=files.dtype)
    return token_entropy(ids, VOCAB), len(ids)


def run(probe: Probe, run_dir: Path, work_dir: Path, line: float, full: bool) -> None:
    """Train `probe` in chunks until it has clearly left the plateau or its budget is spent.

    A run directory left by an earlier invocation with the same config is resumed: chunks it
    already holds are read, not trained again (the stopping rule replays on them), and their
    CPU and wall seconds come from `preset_check_time.json` beside the checkpoint.
    """
    saved = run_dir / "config.yaml"
    same = saved.is_file() and yaml.safe_load(saved.read_text(encoding="utf-8")) == load_config(probe.cfg)
    times_file = run_dir / "preset_check_time.json"
    times = json.loads(times_file.read_text(encoding="utf-8")) if same and times_file.is_file() else {}
    end, step = probe.cfg["max_steps"], 0
    while step < end:
        cpu, wall = time.process_time(), time.perf_counter()
        step = min(step + CHUNK, end)
        summary = train(probe.cfg, run_dir, resume=same, progress=False, work_dir=work_dir,
                        until=step, overwrite=not same)  # fmt: skip
        same = True
        if summary["resumed_from"] != summary["steps"]:  # this chunk was trained now
            times[str(step)] = [time.process_time() - cpu, time.perf_counter() - wall]
            times_file.write_text(json.dumps(times), encoding="utf-8")
        records = [r for r in read_metrics(run_dir) if r["step"] <= step]
        probe.curve = [(r["step"], r["train_loss"]) for r in records]
        below = [s for s, loss in probe.curve if loss < line]
        probe.left_at = below[0] if below else None
        recent = [loss for s, loss in probe.curve if s > step - CONFIRM]
        print(f"  {probe.name}: update {step}, loss {probe.curve[-1][1]:.3f}, left the plateau "
              f"at {probe.left_at}", flush=True)  # fmt: skip
        if not full and probe.left_at and step - probe.left_at >= CONFIRM and max(recent) < line:
            break
    kept = [v for k, v in times.items() if int(k) <= step]
    probe.cpu_s, probe.wall_s = sum(v[0] for v in kept), sum(v[1] for v in kept)


def machine() -> str:
    """One line naming the CPU, its cores and the software."""
    cpu = platform.processor() or platform.machine()
    try:
        names = [ln for ln in Path("/proc/cpuinfo").read_text().splitlines() if "model name" in ln]
        cpu = names[0].split(":", 1)[1].strip()
    except (OSError, IndexError):
        pass
    return (f"{cpu}, {os.cpu_count()} logical cores visible, {torch.get_num_threads()} torch "
            f"thread(s); Python {platform.python_version()}, torch {torch.__version__}")  # fmt: skip


def left(probe: Probe) -> str:
    """The table's 'leaves the plateau' cell."""
    if probe.left_at is not None:
        return f"update {probe.left_at}"
    return f"never within {probe.curve[-1][0]}" if probe.curve else "not run"


def plot(runs: list[Probe], entropy: float, path: Path) -> None:
    """Training loss against updates, one panel per preset, the plateau line dashed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    presets = list(dict.fromkeys(p.preset for p in runs))
    fig, axes = plt.subplots(1, len(presets), figsize=(11, 3.8), squeeze=False)
    for ax, preset in zip(axes[0], presets):
        group = [p for p in runs if p.preset == preset]
        cfg = group[0].cfg
        for probe in group:
            steps, losses = zip(*probe.curve)
            layout = "pre-LN" if probe.cfg["pre_ln"] else "post-LN"
            lr = probe.name.split(", ")[1] + ", width-scaled" if ", " in probe.name else "preset's"
            ax.plot(steps, losses, lw=1.1, label=f"{layout}, lr {probe.cfg['lr']:g} ({lr})")
        ax.axhline(entropy, color="grey", ls="--", lw=1, label=f"unigram entropy {entropy:.2f}")
        ax.axhline(entropy - MARGIN, color="grey", ls=":", lw=1, label=f"entropy - {MARGIN}")
        ax.axvline(cfg["warmup_steps"], color="black", ls=":", lw=0.8)
        ax.set(xlim=(0, cfg["max_steps"]), ylim=(entropy - 2.0, entropy + 1.5), xlabel="update",
               ylabel="training loss (nats per token)",
               title=f"{preset}: {cfg['n_layer']} layers x {cfg['n_embd']}, warmup "
                     f"{cfg['warmup_steps']} (dotted) of {cfg['max_steps']}")  # fmt: skip
        ax.legend(fontsize=8)
    fig.suptitle(
        "Narrow CPU stand-ins for the GPU presets (a curve ends once it is clearly off "
        "the plateau)",
        fontsize=10,
    )
    fig.tight_layout()
    fig.savefig(path, dpi=120, bbox_inches="tight")
    plt.close(fig)


def findings(runs: list[Probe]) -> list[str]:
    """Per preset: when each run left the plateau, and keep or change, from those numbers."""
    out = []
    for preset in dict.fromkeys(p.preset for p in runs):
        group = [p for p in runs if p.preset == preset]
        cfg = group[0].cfg
        parts = [f"{p.name.split(' ', 1)[1]} (lr {p.cfg['lr']:g}): "
                 f"{left(p).replace('update', 'off at update')}, {p.curve[-1][1]:.2f} after "
                 f"{p.curve[-1][0]} updates" for p in group]  # fmt: skip
        out.append(f"**{preset}** ({cfg['n_layer']} layers, lr {cfg['lr']:g}, {cfg['warmup_steps']} "
                   f"warmup updates of {cfg['max_steps']}): " + "; ".join(parts) + ".")  # fmt: skip
        post = {p.cfg["lr"]: p for p in group if not p.cfg["pre_ln"]}
        pre = {p.cfg["lr"]: p for p in group if p.cfg["pre_ln"]}
        if len(post) != 2 or len(pre) != 2:
            continue  # a partial run (--only): no verdict
        (lr, nominal), (wide_lr, scaled) = sorted(post.items())
        if nominal.left_at is not None and scaled.left_at is not None:
            out.append(f"Verdict for {preset}: **keep post-LN**. It leaves the plateau at the "
                       f"preset's lr (update {nominal.left_at}) and at the width-scaled lr "
                       f"(update {scaled.left_at}), both within the preset's {cfg['max_steps']}.")  # fmt: skip
        else:
            stuck = nominal if nominal.left_at is None else scaled
            which = "the width-scaled lr" if stuck is scaled else "the preset's lr"
            text = (f"Verdict for {preset}: **change it**. Post-LN at lr {stuck.cfg['lr']:g} "
                    f"({which}) never "
                    f"leaves the plateau in {stuck.curve[-1][0]} updates, so the {nominal.wide}-wide "
                    "post-LN model may not either; ")  # fmt: skip
            if all(q.left_at is not None for q in pre.values()):
                text += ("pre-LN leaves it at both ends of the bracket (" + ", ".join(
                    f"update {q.left_at} at lr {q.cfg['lr']:g}" for q in pre.values())
                    + f"): train {preset} with `pre_ln: true`.")  # fmt: skip
            else:
                text += "pre-LN does not leave it at both ends of the bracket either."
            if nominal.left_at is not None:
                text += (f" (Post-LN at lr {lr:g} on the narrow model, whose steps match a "
                         f"{nominal.wide}-wide model's at lr "
                         f"{lr * nominal.cfg['n_embd'] / nominal.wide:.2g}, leaves it at update "
                         f"{nominal.left_at}: a post-LN {preset} run would want an lr about "
                         "that low.)")  # fmt: skip
            out.append(text)
    return out


def lr_ceiling(runs: list[Probe]) -> str:
    """Which peak lrs let post-LN off the plateau on the narrow model, and which did not."""
    post = [p for p in runs if not p.cfg["pre_ln"]]
    off = sorted({p.cfg["lr"] for p in post if p.left_at is not None})
    stuck = sorted({p.cfg["lr"] for p in post if p.left_at is None})
    text = f"At width {runs[0].cfg['n_embd']}, post-LN left the plateau at peak lr " + ", ".join(
        f"{x:g}" for x in off
    )
    if not stuck:
        return text + " (every lr tried)."
    return (
        text + " and sat on it at " + ", ".join(f"{x:g}" for x in stuck) + " (chapter 05: 2 "
        "layers at 2e-3 after 15 warmup updates): in these runs the plateau marks a ceiling on "
        "post-LN's peak learning rate, not a wall at every lr (depth and warmup differ between "
        "the runs, so where exactly the ceiling lies is not pinned down), and a wider model, which takes larger steps at one lr, meets that "
        "ceiling at a lower lr; the width-scaled runs stand in for that."
    )


def caveats(runs: list[Probe]) -> str:
    """What the narrow runs say about the wide models, and what they cannot say."""
    cfg = runs[0].cfg
    tokens = cfg["batch_size"] * cfg["n_ctx"]
    widths = " or ".join(str(w) for w in sorted({p.wide for p in runs}, reverse=True))
    ratio = min(p.wide_tokens for p in runs) // tokens
    return (
        "What carries over from these runs to the GPU: the depth, the schedule counted in updates "
        "(warmup length, total, linear warmup then cosine to zero), the block layout, AdamW with "
        "its weight decay, clipping and dropout, all run by the same `Trainer`. What does not: "
        f"the width ({cfg['n_embd']}, against {widths}), the batch ({tokens} tokens per update, "
        f"at least {ratio} times fewer), the context and the corpus. Under Adam each weight moves "
        "by about lr per update, so a layer's output moves in proportion to its width: at one lr "
        "the narrow model takes smaller steps than the wide one, which is why each preset also "
        f"runs at lr x (preset width / {cfg['n_embd']}); the wide model sits between the two runs "
        "only as far as that scaling holds. The update at which a GPU run leaves the plateau is "
        "not predicted here (its far larger batch is far less noisy); what is shown is whether a "
        "stack of that depth, with that block layout and that schedule, gets off the plateau "
        "within the preset's budget."
    )


def report(
    runs: list[Probe],
    entropy: float,
    n_tokens: int,
    args: argparse.Namespace,
    seconds: tuple[float, float],
    loads: tuple[str, str],
) -> str:
    """The Markdown report: setup, table, measured findings."""
    cfg = runs[0].cfg
    rows = [
        f"| {p.preset} | {p.cfg['n_layer']} × {p.cfg['n_embd']} (preset: × {p.wide}) | "
        f"{p.cfg['lr']:g} | {p.cfg['warmup_steps']} of {p.cfg['max_steps']} | {p.curve[-1][0]} | "
        f"{'pre' if p.cfg['pre_ln'] else 'post'} | {left(p)} | {p.curve[-1][1]:.3f} | "
        f"{p.cpu_s:.0f} |"
        for p in runs
    ]
    command = (
        "GPT1_DATA_MIRROR=/work/shared/data HF_HUB_OFFLINE=1 python benchmarks/preset_check.py"
    )
    if args.full:
        command += " --full"
    return "\n".join([
        "# Do the GPU presets' schedules get post-LN GPT-1 off the unigram plateau?", "",
        f"Written by `benchmarks/preset_check.py` ({datetime.datetime.now():%Y-%m-%d %H:%M}); "
        f"command: `{command}`.", "",
        f"- Machine: {machine()}; load average before {loads[0]}, after {loads[1]} (other "
        "processes shared the cores).",
        f"- Cost of the runs: {sum(p.cpu_s for p in runs) / 60:.1f} min of CPU "
        f"({sum(p.wall_s for p in runs) / 60:.1f} min wall), summed over the chunks as they "
        "were trained (the runs may span invocations: a run directory with the same config is "
        f"resumed, not retrained); this invocation: {seconds[0] / 60:.1f} min wall, "
        f"{seconds[1] / 60:.1f} min CPU.",
        f"- Data: tiny shakespeare, byte-level BPE of {VOCAB} ids (the `cpu` preset's), "
        f"{n_tokens:,} training tokens; unigram entropy of the training tokens "
        f"**{entropy:.3f} nats**. A run leaves the plateau at the first logged update whose "
        f"mean training loss over the last {cfg['log_interval']} updates is below "
        f"{entropy - MARGIN:.3f} (entropy − {MARGIN}).",
        f"- Narrow model: width {cfg['n_embd']}, {cfg['n_head']} heads, context {cfg['n_ctx']}, "
        f"{cfg['batch_size']} sequences per update ({cfg['batch_size'] * cfg['n_ctx']} tokens; "
        "the presets: " + ", ".join(f"{n:,} for {name}" for name, n in {p.preset: p.wide_tokens for p in runs}.items())
        + "), fp32. `quick` is chapter 08's `QUICK` overrides of the t4/a10g preset, read from "
        "the notebook. Kept from each preset: depth, "
        "peak lr, warmup and total updates, linear warmup then cosine to zero (`gpt1_lib.optim."
        "lr_at` through the `Trainer`), AdamW with weight decay 0.01, dropout 0.1, clipping at 1.0.",
        "- Runs stop early once the plateau is left and every logged loss of the last "
        f"{CONFIRM} updates is below the line (`--full` runs all of them to the end).", "",
        "| preset | layers × width | lr | warmup | steps run | LN | leaves the plateau | "
        "final loss | CPU s |",
        "|---|---|---:|---:|---:|---|---|---:|---:|",
        *rows, "", "## Measured", "", *[f"- {s}" for s in findings(runs)], "",
        "## Conclusion", "", lr_ceiling(runs) + " " + caveats(runs), "",
    ])  # fmt: skip


def main() -> None:
    """Probe every preset, then write the report, the curves and the figure."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n-embd", type=int, default=128, help="width of the narrow model")
    parser.add_argument("--n-head", type=int, default=4)
    parser.add_argument("--n-ctx", type=int, default=32)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (shared CPU)")
    parser.add_argument("--full", action="store_true", help="never stop a run early")
    parser.add_argument("--only", help="run only the probes whose name contains this")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    work = ROOT / "build" / "preset_check"
    load_before = load_average()
    wall, cpu = time.perf_counter(), time.process_time()
    entropy, n_tokens = unigram_entropy(work)
    print(f"unigram entropy {entropy:.3f} nats over {n_tokens:,} training tokens", flush=True)
    runs = [p for p in probes(args) if not args.only or args.only in p.name]
    for probe in runs:
        slug = probe.name.replace("/", "-").replace(" ", "_").replace(",", "")
        run(probe, work / "runs" / slug, work, entropy - MARGIN, args.full)
    seconds = (time.perf_counter() - wall, time.process_time() - cpu)
    loads = (load_before, load_average())
    results = ROOT / "benchmarks" / "results"
    (results / "preset_check.md").write_text(report(runs, entropy, n_tokens, args, seconds, loads), encoding="utf-8")
    (results / "preset_check.json").write_text(json.dumps({
        "unigram_entropy": entropy, "margin": MARGIN, "train_tokens": n_tokens,
        "machine": machine(), "wall_s": seconds[0], "cpu_s": seconds[1],
        "runs_cpu_s": sum(p.cpu_s for p in runs), "runs_wall_s": sum(p.wall_s for p in runs),
        "runs": [{"name": p.name, "preset": p.preset, "preset_width": p.wide,
                  "config": p.cfg, "left_plateau_at": p.left_at, "steps_run": p.curve[-1][0],
                  "final_loss": p.curve[-1][1], "cpu_s": p.cpu_s, "wall_s": p.wall_s,
                  "curve": {"step": [s for s, _ in p.curve], "train_loss": [x for _, x in p.curve]}}
                 for p in runs],
    }, indent=1), encoding="utf-8")  # fmt: skip
    plot(runs, entropy, ROOT / "figures" / "08_preset_check.png")
    print(f"wrote benchmarks/results/preset_check.md and .json, figures/08_preset_check.png "
          f"({seconds[0] / 60:.1f} min wall, {seconds[1] / 60:.1f} min CPU)")  # fmt: skip


if __name__ == "__main__":
    main()
