"""Chapter 06, exercise 3: train a finished run for longer.

Train the profile's preset to its end, then resume it with twice the `max_steps`
(`train(None, run_dir, resume=True, overrides=["max_steps=..."])`, the `--resume --set
max_steps=...` of the command line). The run continues from its last checkpoint (the summary's
`resumed_from`), keeps the metrics it had, and its cosine is recomputed for the new length, so
the learning rate climbs back from zero; the validation loss ends lower. On `cpu`, chapter 06's
table: 1.501 -> 1.480 nats per byte for 1,100 more updates, 1.461 for 2,200.
"""

import math
import tempfile
from pathlib import Path

from gpt1_lib.optim import lr_at
from gpt1_lib.profiles import active_profile
from gpt1_lib.train import read_metrics, train

profile = active_profile(verbose=False)
steps = min(profile["max_steps"], 60)  # the smoke preset's whole run; a slice of the cpu one
with tempfile.TemporaryDirectory() as tmp:
    run_dir = Path(tmp) / "run"
    first = train(profile.name, run_dir, work_dir=profile.work_dir, progress=False,
                  overrides=[f"max_steps={steps}", f"warmup_steps={min(profile['warmup_steps'], steps // 4)}",
                             f"eval_interval={steps}"])  # fmt: skip
    more = train(None, run_dir, resume=True, work_dir=profile.work_dir, progress=False,
                 overrides=[f"max_steps={2 * steps}"])
    records = read_metrics(run_dir)
print(f"{steps} updates: validation loss {first['final_val_loss']:.3f}; "
      f"resumed at {more['resumed_from']} to {more['steps']}: {more['final_val_loss']:.3f}")
cfg = profile.config
assert more["resumed_from"] == steps and more["steps"] == 2 * steps
assert [r["step"] for r in records][-1] == 2 * steps
resumed = next(r for r in records if r["step"] > steps)  # the first line logged after the resume
warmup = min(cfg["warmup_steps"], steps // 4)
assert math.isclose(resumed["lr"], lr_at(resumed["step"] - 1, cfg["lr"], warmup, 2 * steps)) and resumed["lr"] > 0
assert more["final_val_loss"] < first["final_val_loss"]
