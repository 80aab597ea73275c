"""Chapter 08, exercise 2: could the `t4` preset use a bigger micro-batch?

§3 measured, on a CPU in fp16 autocast, what one more sequence of 512 tokens costs in saved
activations: 26.3 MiB per layer and 18.3 MiB outside the layers (embeddings, logits, loss), an
upper bound for the GPU, whose attention kernels keep less. With 16 bytes per parameter for
weights, gradients and Adam (1.37 GiB for 91.7M parameters) and about 1 GiB of CUDA context and
slack, a T4's 15 GiB leave room for about 38 sequences, so the largest micro-batch that still
divides GPT-1's 64 sequences per update is 32: `batch_size=32, grad_accum=2`, by the upper
bound. The preset keeps 8 × 8 for the margin: the bound does not see the kernels' workspaces
or the allocator's fragmentation, and a larger micro-batch buys little once the GPU is busy.
"""

from gpt1_lib.config import load_config

GIB, MIB = 2**30, 2**20
per_sequence = 12 * 26.3 * MIB + 18.3 * MIB  # §3's measurements, for n_layer = 12
fixed = 16 * 91.7e6 + 1 * GIB  # weights, gradients, Adam's moments; CUDA context and slack
room = 15 * GIB - fixed
fits = int(room // per_sequence)
choices = [b for b in (1, 2, 4, 8, 16, 32, 64) if b <= fits]
batch = max(choices)
cfg = load_config("t4", [f"batch_size={batch}", f"grad_accum={64 // batch}"])  # still valid
print(f"one sequence: {per_sequence / MIB:.0f} MiB; room for {fits} sequences; "
      f"largest divisor of 64 that fits: batch_size={batch}, grad_accum={64 // batch}")
assert cfg["batch_size"] * cfg["grad_accum"] == 64 == load_config("t4")["batch_size"] * load_config("t4")["grad_accum"]
assert batch == 32 and 32 <= fits < 64
