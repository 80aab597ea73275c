"""Execute the book's notebooks top to bottom, in place, in the automatic profile.

Hand-written; `make course` runs it. Each notebook runs with a fresh kernel whose working
directory is `notebooks/`, so its outputs and `figures/` come from a real run. Pass notebook
paths to run only those.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parent.parent


def run(path: Path, timeout: int) -> float:
    nb = nbformat.read(path, as_version=4)
    start = time.perf_counter()
    NotebookClient(
        nb,
        timeout=timeout,
        kernel_name="python3",
        resources={"metadata": {"path": str(path.parent)}},
    ).execute()
    nbformat.write(nb, path)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("notebooks", nargs="*", type=Path)
    parser.add_argument("--timeout", type=int, default=1800, help="seconds per cell")
    args = parser.parse_args()
    paths = args.notebooks or sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
    total = 0.0
    for path in paths:
        print(f"running {path.name} ...", flush=True)
        try:
            seconds = run(path.resolve(), args.timeout)
        except Exception as err:  # report which notebook broke, then stop
            print(f"{path.name} failed: {err}", file=sys.stderr)
            sys.exit(1)
        total += seconds
        print(f"  {path.name}: {seconds:.0f} s", flush=True)
    print(f"all {len(paths)} notebooks ran in {total / 60:.1f} min")


if __name__ == "__main__":
    main()
