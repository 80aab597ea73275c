"""Chapter 05, exercise 3: why warm up? Measure it.

Train chapter 05's post-LN probe at GPT-1's peak learning rate, 2.5e-4, with the warmup of §8
(15 updates) and with a warmup of a single update (the peak from the first step), on the same
batches from the same initial weights, and compare the first 40 updates.

The answer, measured: at this size and learning rate warmup does not help. The run without it
is ahead at every logged update (on `cpu`: 7.114 against 7.381 at update 20, 6.651 against
6.796 at update 40), simply because it takes full steps sooner. Warmup protects against what
this small model does not meet: Adam's first steps, taken at full size on moment estimates of
one or two gradients, throwing a deep post-LN stack off course at a high learning rate.
Chapter 03's warmup experiment shows the case where it matters.
"""

import torch

from gpt1_lib.model import GPT, model_config
from gpt1_lib.optim import lr_at, make_optimizer
from gpt1_lib.profiles import active_profile
from gpt1_lib.token_cache import prepare_tokens
from gpt1_lib.tokenizer_cache import prepare_tokenizer

profile = active_profile(verbose=False)
tokenizer = prepare_tokenizer(profile["dataset"], profile["vocab_size"], profile.work_dir)
tokens = prepare_tokens(profile["dataset"], tokenizer, profile.work_dir, progress=False)
probe = {**profile.config, "n_embd": 128, "n_layer": 2, "n_head": 4, "n_ctx": 64, "dropout": 0.0,
         "pre_ln": False}
batches = tokens.windows("train", probe["n_ctx"], probe["batch_size"], probe["seed"])
torch.set_flush_denormal(True)


def first_losses(warmup: int, steps: int = 40, lr: float = 2.5e-4) -> list[float]:
    """Training losses of the first `steps` updates of a 160-update run with this warmup."""
    torch.manual_seed(probe["seed"])
    model = GPT(model_config(probe))
    optimizer = make_optimizer(model, lr)
    losses = []
    for step in range(steps):
        for group in optimizer.param_groups:
            group["lr"] = lr_at(step, lr, warmup, 160)
        loss = model(*batches.batch(step))[1]
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        losses.append(loss.item())
    return losses


warm, cold = first_losses(15), first_losses(1)
for name, losses in (("warmup 15", warm), ("warmup 1", cold)):
    print(f"{name:>9}: loss at updates 1, 5, 10, 20, 40: "
          + ", ".join(f"{losses[i - 1]:.3f}" for i in (1, 5, 10, 20, 40)))
assert warm[0] == cold[0]  # the same weights and batch before any step
assert sum(cold[:20]) < sum(warm[:20])  # no warmup: lower on average over the first 20 updates
assert cold[39] < warm[39]  # and still ahead at update 40
