"""Chapter 05, exercise 2: what GPT-1's weight decay spares.

`decay_split` exempts the tensors of rank 1: every bias and every LayerNorm gain and shift.
In GPT-1's full-size model (12 layers of width 768, 40,478 ids, 512 positions) they are few and
small: per block the attention's two biases (3·768 + 768), the MLP's two (3,072 + 768) and two
LayerNorms' gains and shifts (4 · 768), 9,984 numbers, so 119,808 in all, about 0.1 % of the
116.5 million parameters. Decay acts on the rest: the embeddings (tied with the output head)
and the weight matrices.
"""

import torch

from gpt1_lib.model import GPT, model_config
from gpt1_lib.optim import decay_split
from gpt1_lib.profiles import load_config

with torch.device("meta"):  # shapes only: no memory, no initialisation time
    model = GPT(model_config(load_config("gpt1")))
params = dict(model.named_parameters())
decay, no_decay = decay_split(model)
spared = sum(params[n].numel() for n in no_decay)
total = sum(p.numel() for p in model.parameters())
kinds = sorted({n.split(".")[-2] + "." + n.split(".")[-1] for n in no_decay})
print(f"spared: {len(no_decay)} tensors, {spared:,} of {total:,} parameters ({spared / total:.2%})")
print("kinds:", ", ".join(kinds))
per_block = 3 * 768 + 768 + 3072 + 768 + 4 * 768
assert spared == 12 * per_block == 119_808
assert all(params[n].dim() == 1 for n in no_decay) and spared / total < 0.002
