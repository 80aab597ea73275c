"""Execute the book's notebooks top to bottom, in place, in the automatic profile.

Hand-written; `make course` runs it. Each notebook runs with a fresh kernel whose working
directory is `notebooks/`, so its outputs and `figures/` come from a real run. Pass notebook
paths to run only those.

Committed outputs hold no progress bars and no profiler log lines. A bar committed as output
is frozen at whatever it showed when the cell ended ("0%"), so the live bars (widgets in a
kernel) are dropped from the outputs before the notebook is written, and the bars of plain
tqdm, of the hub and of `transformers` are switched off; the profiler's log lines are noise on
stderr. A reader running a notebook still sees the bars.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parent.parent
# A kernel inherits this process's environment (nbclient passes none of its own).
QUIET = {"TQDM_DISABLE": "1", "HF_HUB_DISABLE_PROGRESS_BARS": "1", "KINETO_LOG_LEVEL": "6"}


def is_live_widget(output: dict) -> bool:
    """A widget's output (a progress bar): live in a kernel, frozen text once committed."""
    return "application/vnd.jupyter.widget-view+json" in output.get("data", {})


def run(path: Path, timeout: int) -> float:
    nb = nbformat.read(path, as_version=4)
    start = time.perf_counter()
    NotebookClient(
        nb,
        timeout=timeout,
        kernel_name="python3",
        resources={"metadata": {"path": str(path.parent)}},
    ).execute()
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs = [out for out in cell.outputs if not is_live_widget(out)]
    nb.metadata.pop("widgets", None)  # the state of the widgets just dropped
    nbformat.write(nb, path)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("notebooks", nargs="*", type=Path)
    parser.add_argument("--timeout", type=int, default=1800, help="seconds per cell")
    args = parser.parse_args()
    os.environ.update(QUIET)
    paths = args.notebooks or sorted((ROOT / "notebooks").glob("[0-9A][0-9]_*.ipynb"))
    total, times = 0.0, {}
    for path in paths:
        print(f"running {path.name} ...", flush=True)
        try:
            seconds = run(path.resolve(), args.timeout)
        except Exception as err:  # report which notebook broke, then stop
            print(f"{path.name} failed: {err}", file=sys.stderr)
            sys.exit(1)
        total += seconds
        times[path.name] = seconds
        print(f"  {path.name}: {seconds:.0f} s", flush=True)
    print(f"all {len(paths)} notebooks ran in {total / 60:.1f} min")
    if not args.notebooks:  # the whole course: how long each chapter takes, for the README
        write_times(times, total)


def write_times(times: dict[str, float], total: float) -> None:
    """benchmarks/results/course.md: each notebook's seconds in this run of `make course`."""
    sys.path.insert(0, str(ROOT))
    from gpt1_lib.hardware import cpu_name
    from gpt1_lib.profiles import active_profile

    profile = active_profile()
    lines = [
        "# How long each notebook takes: one `make course` run",
        "",
        f"Measured on {time.strftime('%Y-%m-%d')} on {cpu_name()} ({os.cpu_count()} cores), "
        f"profile `{profile.name}` for the teaching chapters ({profile.reason}); one run, on a "
        "shared machine, so a few seconds either way. Written by `tools/run_notebooks.py`.",
        "",
        "| notebook | seconds |",
        "|---|---:|",
        *(f"| {name} | {seconds:.0f} |" for name, seconds in times.items()),
        f"| all | {total:.0f} ({total / 60:.1f} min) |",
        "",
    ]
    (ROOT / "benchmarks" / "results" / "course.md").write_text(
        "\n".join(lines), encoding="utf-8", newline="\n"
    )


if __name__ == "__main__":
    main()
