"""`python -m gpt1_lib.doctor --parity`: may this accelerator be trusted to train?

Hand-written support module (not generated from a notebook), like `doctor`. Apple's MPS
backend has a record of silently wrong losses in GPT courses (LLMs-from-scratch #791: 19.9 on
MPS where the CPU gave 3.8), and a broken driver or a torch built for another CUDA can do the
same on any GPU. So this trains a small GPT for a few seeded updates twice, on the CPU and on
the accelerator, in float32, from the same weights on the same batches and without dropout,
and compares what came out: the loss of every update and the gradients of the first. Within
the tolerances below the accelerator computes what the CPU computes; beyond them, train on
the CPU (`--set device=cpu`) and report the doctor's output.
"""

from __future__ import annotations

import math

import torch

from gpt1_lib.model import GPT, GPTConfig
from gpt1_lib.optim import make_optimizer
from gpt1_lib.profiles import default_device

STEPS = 5  # seeded updates on each device
LOSS_RTOL = 1e-3  # the largest relative difference of a loss, over the updates
GRAD_RTOL = 1e-2  # the largest relative L2 difference of a parameter's gradient, first update
SMALL = GPTConfig(vocab_size=256, n_ctx=32, n_embd=64, n_layer=2, n_head=4, dropout=0.0)


def run_updates(device: str, steps: int = STEPS, seed: int = 0) -> tuple[list[float], dict]:
    """(the loss of each update, the gradients of the first on the CPU in float64) of `steps`
    AdamW updates of a small GPT on `device`, all of it fixed by `seed`."""
    torch.manual_seed(seed)
    model = GPT(SMALL).to(device)  # created on the CPU, then moved: the same weights everywhere
    optimizer = make_optimizer(model, 1e-3, 0.01)
    ids = torch.randint(0, SMALL.vocab_size, (steps, 8, SMALL.n_ctx + 1),
                        generator=torch.Generator().manual_seed(seed))  # fmt: skip
    losses: list[float] = []
    grads: dict[str, torch.Tensor] = {}
    for step in range(steps):
        x, y = ids[step, :, :-1].to(device), ids[step, :, 1:].to(device)
        _, loss = model(x, y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if step == 0:
            grads = {n: p.grad.detach().cpu().double() for n, p in model.named_parameters()
                     if p.grad is not None}  # fmt: skip
        optimizer.step()
        losses.append(loss.item())
    return losses, grads


def parity(device: str | None = None, steps: int = STEPS) -> tuple[bool, list[str]]:
    """(whether to trust `device`, the lines that say why); `device` defaults to the one the
    book would train on (CUDA, then MPS). `device="cpu"` compares the CPU with itself."""
    if device is None:
        device = default_device()
        if device == "cpu":
            return True, ["no accelerator (no CUDA GPU, no MPS): training runs on the CPU, "
                          "which is the reference; nothing to compare"]  # fmt: skip
    ref_losses, ref_grads = run_updates("cpu", steps)
    try:
        losses, grads = run_updates(device, steps)
    except Exception as error:  # a kernel missing or failing on the accelerator is a finding too
        first = (str(error).strip().splitlines() or [""])[0]
        return False, [f"{device} against the CPU: {steps} seeded float32 updates of a small GPT",
                       f"do not trust {device}: training on it failed ({type(error).__name__}: "
                       f"{first}); train with --set device=cpu, and report this output"]  # fmt: skip
    loss_gap = max(abs(a - b) / max(abs(a), 1e-12) if math.isfinite(b) else math.inf
                   for a, b in zip(ref_losses, losses))  # fmt: skip
    gaps = {n: ((grads[n] - g).norm() / g.norm().clamp_min(1e-12)).item() if n in grads
            else math.inf for n, g in ref_grads.items()}  # fmt: skip
    worst = max(gaps, key=lambda n: gaps[n] if math.isfinite(gaps[n]) else math.inf)
    trust = loss_gap <= LOSS_RTOL and gaps[worst] <= GRAD_RTOL
    lines = [
        f"{device} against the CPU: {steps} seeded float32 updates of a small GPT",
        f"losses: {', '.join(f'{b:.4f}' for b in losses)} on {device}, "
        f"{', '.join(f'{a:.4f}' for a in ref_losses)} on the CPU; largest relative "
        f"difference {loss_gap:.1e} (tolerance {LOSS_RTOL:.0e})",
        f"gradients of the first update: largest relative difference {gaps[worst]:.1e}, in "
        f"{worst} (tolerance {GRAD_RTOL:.0e})",
    ]
    if trust:
        lines.append(f"trust {device}: it trains as the CPU does, within the tolerances")
    else:
        lines.append(f"do not trust {device}: its training differs from the CPU's beyond the "
                     "tolerances; train with --set device=cpu, and report this output")  # fmt: skip
    return trust, lines
