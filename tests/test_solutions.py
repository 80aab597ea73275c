"""Every exercise's solution runs, and asserts its own result, so a solution never rots.

A chapter ends with exercises; their worked solutions are `solutions/NN_*.py`, plain scripts
that import `gpt1_lib`, do the exercise and `assert` what the exercise asks the reader to find.
Each runs here in a fresh interpreter, in CI's profile.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SOLUTIONS = sorted((ROOT / "solutions").glob("[0-9A][0-9]_*.py"))


@pytest.mark.parametrize("solution", SOLUTIONS, ids=[p.name for p in SOLUTIONS])
def test_a_solution_runs_and_its_assertions_hold(solution):
    env = {**os.environ, "GPT1_PROFILE": os.environ.get("GPT1_PROFILE", "smoke")}
    run = subprocess.run(
        [sys.executable, str(solution)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, (
        f"{solution.name} failed:\n{run.stdout[-2000:]}\n{run.stderr[-4000:]}"
    )


def test_a_chapter_with_solutions_links_to_them():
    for solution in SOLUTIONS:
        chapter = next((ROOT / "notebooks").glob(f"{solution.name[:2]}_*.ipynb"))
        text = json.dumps(json.loads(chapter.read_text())["cells"])
        assert f"solutions/{solution.name}" in text, f"{chapter.name} does not link {solution.name}"
