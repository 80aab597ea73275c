"""A Colab session of the GPU chapter, rehearsed on CPU: install, Drive, a disconnect, a resume.

Chapter 08 runs as Colab runs it, changing only what cannot be reached from here:

- a fresh, empty folder is the runtime's disk (`/content`, the kernel's working directory);
- `tests/colab_stub` stands in for `google.colab` (Drive is a folder that outlives each
  runtime), preloaded by a `sitecustomize.py` as Colab preloads the real module;
- the install cell pip-installs `gpt1_lib` from a `git+file://` URL of a snapshot of this
  working tree, tagged with pyproject's ref: the GitHub URL's code path, into a folder of its
  own (never over the project's editable install);
- a small corpus in TinyStories' format (separate train and valid files) is the mirror;
- the `t4` preset runs (fp16 autocast with a GradScaler), at a tiny size, through `GPT1_SET`.

The run trains on the runtime's disk and is copied to Drive after each slice (the rehearsal's
slices are `eval_interval` updates: SLICE_MINUTES = 0). The kernel is killed in the middle of
the second slice (the disconnect); a second fresh runtime with the same Drive runs the notebook
again. It must resume from the first slice's copy on Drive (the disconnect lost one slice, no
more), must not tokenise the unchanged corpus again, and its per-update losses must equal an
uninterrupted run's. Other runtimes: the quick run (pre-LN, exported as GPT-2) to its end; a
Drive too full for the plan's copies, which stops before training; a declined Drive; and the
runtime's disk by choice, whose results are offered as a zip.
"""

from __future__ import annotations

import copy
import json
import os
import random
import re
import shutil
import subprocess
import sys
import threading
import time
import zipfile
from pathlib import Path

import nbformat
import pytest
import torch
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError, DeadKernelError

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOK = ROOT / "notebooks" / "08_train_gpt1.ipynb"
STUB = ROOT / "tests" / "colab_stub"
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
REPO_URL = PYPROJECT["project"]["urls"]["Repository"]
REF = PYPROJECT["tool"]["gpt1_book"]["ref"]

# The t4 preset at a size a CPU trains in seconds; everything else (fp16, GradScaler, dropout,
# the schedule's shape) stays the preset's. One update is logged per line, for the comparison.
TINY = (
    "device=cpu n_layer=2 n_embd=32 n_head=4 n_ctx=32 vocab_size=300 batch_size=4 grad_accum=2 "
    "max_steps=60 warmup_steps=6 eval_interval=20 eval_iters=2 ckpt_interval=5 log_interval=1 "
    "tokenizer_sample_bytes=200000"
)
MAX_STEPS, FIRST_SLICE, KILL_AT = 60, 20, 33
RUN = Path("MyDrive/gpt1-from-scratch/runs/t4-gpt1")  # inside the "Drive"
LOCAL_RUN = Path("runs/t4-gpt1")  # inside a runtime's /content, where it trains
LOSS_KEYS = ("train_loss", "lr", "grad_norm", "val_loss")


def tiny_stories(seed: int, n: int) -> str:
    """Stories in TinyStories' V2 format: plain text, each followed by `<|endoftext|>`."""
    rng = random.Random(seed)
    names = ["Lily", "Tom", "Max", "Sue", "Ben", "Mia"]
    things = ["ball", "kite", "cat", "dog", "tree", "cake", "boat", "hat"]
    feelings = ["happy", "sad", "brave", "tired", "curious"]
    stories = []
    for _ in range(n):
        who, what, how = rng.choice(names), rng.choice(things), rng.choice(feelings)
        friend = rng.choice([m for m in names if m != who])
        stories.append(
            f"Once upon a time, there was a little girl named {who}. She had a red {what}.\n"
            f"One day, {who} felt {how}. She went to the park with {friend}.\n"
            f'"Look at my {what}!" said {who}. {friend} smiled and said, "It is very nice."\n'
            f"They played with the {what} all day. At the end, they were {rng.choice(feelings)}.\n"
        )
    return "<|endoftext|>\n".join(stories) + "<|endoftext|>\n"


def snapshot_repository(dest: Path) -> Path:
    """A git repository of this working tree (tracked and untracked, not ignored) at REF."""
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
        cwd=ROOT, capture_output=True, check=True,
    ).stdout.decode().split("\0")  # fmt: skip
    for name in filter(None, listed):
        source = ROOT / name
        if source.is_file():  # a tracked file deleted in the working tree is left out
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, dest / name)
    git = ["git", "-c", "user.name=rehearsal", "-c", "user.email=rehearsal@localhost"]
    # REF is the branch `main` until a release, then the release's tag: the snapshot has it too
    tag = [] if REF == "main" else [["tag", REF]]
    for command in (
        ["init", "-q", "-b", "main"],
        ["add", "-A"],
        ["commit", "-qm", "snapshot"],
        *tag,
    ):
        subprocess.run([*git, *command], cwd=dest, check=True, capture_output=True)
    return dest


def colab_notebook(repo: Path) -> nbformat.NotebookNode:
    """The chapter with the repository URL of its install cell pointed at the local snapshot,
    and one cell appended that reports which gpt1_lib the kernel imported."""
    nb = nbformat.read(NOTEBOOK, as_version=4)
    install = next(c for c in nb.cells if c.cell_type == "code")
    assert install.source.count(f'"{REPO_URL}"') == 1 and "git+{REPO}@{REF}" in install.source
    install.source = install.source.replace(f'"{REPO_URL}"', f'"file://{repo}"')
    slices = cell_with(nb, "SLICE_MINUTES = 20")  # a slice of eval_interval updates
    slices.source = slices.source.replace("SLICE_MINUTES = 20", "SLICE_MINUTES = 0", 1)
    probe = "import gpt1_lib, json\nprint(json.dumps({'gpt1_lib': gpt1_lib.__file__}))"
    nb.cells.append(nbformat.v4.new_code_cell(probe))
    return nb


def output_text(cell) -> str:
    """Everything a cell showed: streams, results and widget text, joined."""
    parts = []
    for out in cell.get("outputs", []):
        parts.append(out.get("text", ""))
        parts.extend(str(v) for k, v in out.get("data", {}).items() if k.startswith("text/"))
        parts.extend(out.get("traceback", []))
    return "".join(parts)


class Rehearsal:
    """The shared pieces: snapshot repository, corpus mirror, Drive, and the kernel's env."""

    def __init__(self, base: Path) -> None:
        self.base = base
        self.repo = snapshot_repository(base / "repo")
        self.mirror = base / "mirror" / "tinystories"
        self.mirror.mkdir(parents=True)
        (self.mirror / "TinyStoriesV2-GPT4-train.txt").write_text(tiny_stories(0, 1200))
        (self.mirror / "TinyStoriesV2-GPT4-valid.txt").write_text(tiny_stories(1, 120))
        self.drive, self.log = base / "drive", base / "colab_calls.jsonl"
        self.notebook = colab_notebook(self.repo)

    def env(self, site: Path, **changes: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("GPT1_", "PIP_"))}
        env.pop("PYTHONPATH", None)
        env.update(
            GPT1_PROFILE="t4", GPT1_SET=TINY, GPT1_DATA_MIRROR=str(self.mirror.parent),
            HF_HUB_OFFLINE="1", OMP_NUM_THREADS="1", MKL_NUM_THREADS="1",
            PYTHONPATH=f"{site}{os.pathsep}{STUB}",  # pip's target first, as site-packages is
            PIP_TARGET=str(site), PIP_NO_DEPS="1", PIP_NO_INDEX="1", PIP_NO_CACHE_DIR="1",
            PIP_NO_BUILD_ISOLATION="0", PIP_DISABLE_PIP_VERSION_CHECK="1",
            COLAB_STUB_DRIVE=str(self.drive), COLAB_STUB_LOG=str(self.log),
        )  # fmt: skip
        env.update(changes)
        return env

    def runtime(self, name: str, kill_at: int | None = None, use_drive: bool = True,
                stops: bool = False, edits: dict[str, str] | None = None, **env_changes: str):  # fmt: skip
        """Run the notebook in a fresh runtime (an empty /content and an empty pip target);
        with `kill_at`, kill the kernel once the run training in /content has logged that
        update. The reader's `USE_DRIVE = False` with `use_drive=False`, other edits of a
        setting with `edits` (old text: new text); `stops`: a cell is meant to fail."""
        content, site = self.base / name / "content", self.base / name / "site"
        content.mkdir(parents=True)
        site.mkdir()
        nb = copy.deepcopy(self.notebook)
        edits = dict(edits or {})
        if not use_drive:
            edits["USE_DRIVE = True"] = "USE_DRIVE = False"
        for old, new in edits.items():
            cell = cell_with(nb, old)
            cell.source = cell.source.replace(old, new)
        client = NotebookClient(nb, timeout=600, kernel_name="python3",
                                resources={"metadata": {"path": str(content)}})  # fmt: skip
        killed = threading.Event()
        watcher = None
        if kill_at is not None:
            watcher = threading.Thread(target=self._kill_when,
                                       args=(client, content / LOCAL_RUN, kill_at, killed))  # fmt: skip
            watcher.start()
        try:
            client.execute(env=self.env(site, **env_changes))
            assert not stops, "the notebook ran to its end"
        except CellExecutionError:
            if not stops:
                raise
        except DeadKernelError:
            assert killed.is_set(), "the kernel died without being killed"
        finally:
            killed.set()  # stops the watcher if the notebook ended first
            if watcher is not None:
                watcher.join()
        return nb, content, site

    def _kill_when(self, client: NotebookClient, run: Path, step: int, done: threading.Event) -> None:
        metrics = run / "metrics.jsonl"
        while not done.is_set():
            lines = metrics.read_text().splitlines() if metrics.is_file() else []
            if any(json.loads(line)["step"] >= step for line in lines if line.endswith("}")):
                os.kill(client.km.provisioner.pid, 9)  # the disconnect: no cleanup, no flush
                done.set()
                return
            time.sleep(0.01)


def metrics(run: Path) -> dict[int, dict]:
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    return {r["step"]: {k: r.get(k) for k in LOSS_KEYS} for r in records}


def calls(log: Path) -> list[dict]:
    return [json.loads(line) for line in log.read_text().splitlines()] if log.is_file() else []


def token_files(folder: Path) -> dict[str, int]:
    """The token-id files of a cache folder, with their modification times."""
    return {p.name: p.stat().st_mtime_ns for p in sorted(folder.glob("*.bin"))}


def cell_with(nb, text: str):
    """The first code cell whose source contains `text`."""
    return next(c for c in nb.cells if c.cell_type == "code" and text in c.source)


@pytest.fixture(scope="module")
def rehearsal(tmp_path_factory):
    return Rehearsal(tmp_path_factory.mktemp("colab"))


@pytest.fixture(scope="module")
def sessions(rehearsal):
    """Session 1, killed mid-training; then session 2 on the same Drive, to the end."""
    first, content1, site1 = rehearsal.runtime("runtime1", kill_at=KILL_AT)
    run = rehearsal.drive / RUN
    state = {
        "ckpt_step": torch.load(run / "ckpt_last.pt", weights_only=True)["step"],
        "metrics": metrics(run),
        "trained": metrics(content1 / LOCAL_RUN),  # what the killed runtime had done, lost with it
        "drive_files": sorted(p.name for p in run.iterdir()),
        "tokens": token_files(rehearsal.drive / "MyDrive/gpt1-from-scratch/cache/tokens"),
        "calls": calls(rehearsal.log),
    }
    second, content2, site2 = rehearsal.runtime("runtime2")
    return {"first": first, "second": second, "after_kill": state, "sites": (site1, site2),
            "content2": content2, "run": run}  # fmt: skip


def test_the_kernels_imported_the_gpt1_lib_that_pip_installed_from_the_git_url(sessions):
    for site in sessions["sites"]:  # each runtime installed its own copy
        assert (site / "gpt1_lib" / "trainer.py").is_file()
    probe = json.loads(output_text(sessions["second"].cells[-1]))  # the first was killed before
    assert Path(probe["gpt1_lib"]).is_relative_to(sessions["sites"][1])


def test_a_cpu_runtime_is_warned_loudly_before_anything_trains(sessions):
    setup = output_text(cell_with(sessions["first"], "active_profile(gpu_presets=True)"))
    assert "NO GPU" in setup and "Runtime -> Change runtime type -> T4 GPU" in setup


def test_the_disconnect_in_the_second_slice_lost_that_slice_and_no_more(sessions):
    state = sessions["after_kill"]
    assert max(state["trained"]) >= KILL_AT > FIRST_SLICE  # killed in the middle of slice two
    # Drive holds the run as the first slice left it: its checkpoint and its metrics
    assert state["ckpt_step"] == FIRST_SLICE and max(state["metrics"]) == FIRST_SLICE
    assert all(state["metrics"][s] == state["trained"][s] for s in state["metrics"])
    assert [c["call"] for c in state["calls"]] == ["drive.mount"]  # killed before any flush


def test_drive_holds_one_whole_copy_of_each_file_and_nothing_half_written(sessions):
    """One copy per checkpoint (the replaced ones are Drive's Trash's), no temporary file, no
    lock: only what a run keeps, written aside and renamed into place."""
    expected = ["ckpt_best.pt", "ckpt_last.pt", "config.yaml", "metrics.jsonl", "tokenizer.json"]
    assert sessions["after_kill"]["drive_files"] == expected
    assert sorted(p.name for p in sessions["run"].iterdir() if p.is_file()) == expected


def test_the_second_runtime_resumed_from_the_checkpoint_on_drive(sessions):
    text = "".join(output_text(c) for c in sessions["second"].cells)
    assert f"resumed from ckpt_last.pt at step {sessions['after_kill']['ckpt_step']}" in text
    ckpt = torch.load(sessions["run"] / "ckpt_last.pt", weights_only=True)
    assert ckpt["step"] == MAX_STEPS
    assert ckpt["config"]["dtype"] == "float16" and ckpt["scaler"]["scale"] > 0  # fp16 + scaler


def test_the_unchanged_corpus_was_not_tokenised_again(rehearsal, sessions):
    first_text = "".join(output_text(c) for c in sessions["first"].cells)
    second_text = "".join(output_text(c) for c in sessions["second"].cells)
    assert "tokenizing" in first_text and "tokenizing" not in second_text
    kept = rehearsal.drive / "MyDrive/gpt1-from-scratch/cache/tokens"
    assert token_files(kept) == sessions["after_kill"]["tokens"]  # the same files, untouched
    corpus = sessions["content2"] / "data/raw/tinystories/TinyStoriesV2-GPT4-train.txt"
    assert corpus.is_file()  # the second runtime fetched its own copy of the corpus


def test_losses_after_the_resume_equal_an_uninterrupted_run(rehearsal, sessions, tmp_path):
    run = sessions["run"]
    env = rehearsal.env(tmp_path / "unused")
    for key in ("PYTHONPATH", "GPT1_PROFILE", "GPT1_SET"):
        env.pop(key)
    subprocess.run(
        [sys.executable, "-m", "gpt1_lib.train", "--config", str(run / "config.yaml"),
         "--out-dir", "reference", "--work-dir", "cache", "--no-progress"],
        cwd=tmp_path, env=env, check=True, capture_output=True,
    )  # fmt: skip
    reference, resumed = metrics(tmp_path / "reference"), metrics(run)
    assert (tmp_path / "reference/tokenizer.json").read_text() == (
        run / "tokenizer.json"
    ).read_text()
    assert sorted(reference) == sorted(resumed) == list(range(1, MAX_STEPS + 1))
    assert resumed == reference  # exactly: every loss, lr, gradient norm and validation loss
    before_kill = sessions["after_kill"]["trained"]
    redone = [s for s in before_kill if s > sessions["after_kill"]["ckpt_step"]]
    assert redone and all(before_kill[s] == resumed[s] for s in redone)  # lost to the kill, redone


def test_drive_holds_what_the_reader_takes_away_and_is_flushed_at_the_end(rehearsal, sessions):
    home = rehearsal.drive / "MyDrive/gpt1-from-scratch"
    assert (home / "figures" / "08_curves_t4.png").is_file()
    assert {"config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"} <= {
        p.name for p in (sessions["run"] / "hf").iterdir()
    }
    second = calls(rehearsal.log)[len(sessions["after_kill"]["calls"]) :]
    assert [c["call"] for c in second] == ["drive.mount", "drive.flush_and_unmount"]
    text = "".join(output_text(c) for c in sessions["second"].cells)
    assert "space this run keeps on Google Drive" in text
    assert not (sessions["content2"] / "drive").exists()  # unmounted


def test_a_declined_drive_mount_stops_with_one_line_before_anything_is_written(rehearsal):
    """Training on /content after a declined mount would start from step 0 beside the run kept
    on Drive: the chapter stops instead, saying how to mount or choose the local disk."""
    nb, content, _ = rehearsal.runtime("declined", COLAB_STUB_DECLINE_DRIVE="1", stops=True)
    where = output_text(cell_with(nb, "drive.mount("))
    assert "Google Drive is not mounted (MessageError" in where and "USE_DRIVE = False" in where
    assert "runs:" not in where  # the cell stopped there, and Run all with it
    assert not list(content.rglob("runs")) and not list(content.rglob("ckpt_*.pt"))


def test_a_run_on_local_disk_by_choice_trains_and_offers_its_files(rehearsal):
    before = len(calls(rehearsal.log))
    nb, content, _ = rehearsal.runtime(
        "local", use_drive=False,
        GPT1_SET=TINY.replace("max_steps=60", "max_steps=10").replace("eval_interval=20", "eval_interval=5"),
    )  # fmt: skip
    assert not [c for c in calls(rehearsal.log)[before:] if c["call"] == "drive.mount"]
    assert (content / "build/t4/runs/t4-gpt1/ckpt_last.pt").is_file()
    offered = [c for c in calls(rehearsal.log)[before:] if c["call"] == "files.download"]
    assert len(offered) == 1 and Path(offered[0]["path"]) == content / "gpt1-t4-gpt1.zip"
    with zipfile.ZipFile(offered[0]["path"]) as zf:
        names = set(zf.namelist())
    assert {"gpt1-t4-gpt1/08_curves_t4.png", "gpt1-t4-gpt1/hf/config.json"} <= names


def test_the_quick_run_trains_to_its_end_and_exports_as_gpt2(rehearsal):
    """RUN = "quick" trains a pre-LN model: it runs to the end of the chapter, its export in
    GPT-2's layout (transformers' GPT2LMHeadModel) copied to Drive beside the run."""
    nb, content, _ = rehearsal.runtime(
        "quick", edits={'RUN = "gpt1"': 'RUN = "quick"'},
        GPT1_SET=TINY.replace("max_steps=60", "max_steps=10").replace("eval_interval=20", "eval_interval=5"),
    )  # fmt: skip
    run = rehearsal.drive / "MyDrive/gpt1-from-scratch/runs/t4-quick"
    ckpt = torch.load(run / "ckpt_last.pt", weights_only=True)
    assert ckpt["step"] == 10 and ckpt["config"]["pre_ln"] is True
    assert json.loads((run / "hf" / "config.json").read_text())["model_type"] == "gpt2"
    assert "Drive is flushed and unmounted" in output_text(cell_with(nb, "drive.flush_and_unmount()"))


def test_a_drive_too_full_for_the_run_stops_before_the_first_update(rehearsal, tmp_path):
    """The plan's copies would not fit: one line says how much is free and what to do, and
    nothing has trained (a Drive of its own, whose free space the edit makes 1.3 MB: room for
    the first estimate, about 0.9 MB, not for the plan's, about 1.9 MB)."""
    nb, content, _ = rehearsal.runtime(
        "full", stops=True, COLAB_STUB_DRIVE=str(tmp_path / "drive"),
        edits={"shutil.disk_usage(drive_home).free": "1_300_000"},
    )  # fmt: skip
    data = output_text(cell_with(nb, "drive_room((0"))  # the first estimate fits: it says so
    assert re.search(r"Google Drive: 0\.0 GB free; this run writes about 0\.00 GB there \(token ids, "
                     r"checkpoints and export, estimated before the plan\)", data), data  # fmt: skip
    plan = output_text(cell_with(nb, "plan_run("))
    assert "plan: 2 layers x 32 on cpu, float16 + GradScaler" in plan
    assert "RuntimeError" in plan and "Google Drive has 0.0 GB free and this run would write about" in plan
    assert "copies of its checkpoints, the replaced ones kept in Drive's Trash, and the export" in plan
    assert "empty the Trash or free space on Drive, or raise SLICE_MINUTES" in plan
    assert not list(content.rglob("ckpt_*.pt")) and not list(tmp_path.rglob("ckpt_*.pt"))


def test_a_drive_too_full_for_the_token_ids_stops_before_writing_to_it(rehearsal, tmp_path):
    """Right after the download, before the token ids (about 1 GB for TinyStories) go to Drive:
    an estimate from the corpus's and the model's sizes, without the plan."""
    drive = tmp_path / "drive"
    nb, content, _ = rehearsal.runtime(
        "full_early", stops=True, COLAB_STUB_DRIVE=str(drive),
        edits={"shutil.disk_usage(drive_home).free": "200_000"},
    )  # fmt: skip
    data = output_text(cell_with(nb, "drive_room((0"))
    assert "RuntimeError" in data and "Google Drive has 0.0 GB free and this run would write " \
           "about 0.0 GB there (token ids, checkpoints and export, estimated before the plan)" in data  # fmt: skip
    assert "token ids:" not in data  # stopped before tokenising
    written = [p for p in drive.rglob("*") if p.is_file()]
    assert not [p for p in written if "cache" in p.parts or "runs" in p.parts], written


def test_the_fp16_run_shows_its_loss_scale_and_the_updates_gradscaler_skipped(sessions):
    """The curves cell's third panel is the fp16 loss scale; its line counts the skipped updates
    from metrics.jsonl, where every logged update of an fp16 run records both."""
    records = [json.loads(line) for line in (sessions["run"] / "metrics.jsonl").read_text().splitlines()]
    assert records and all(r["loss_scale"] > 0 and r["skipped_updates"] >= 0 for r in records)
    curves = output_text(cell_with(sessions["second"], "ax_scale"))
    skipped = records[-1]["skipped_updates"]
    assert f"GradScaler skipped {skipped} of {MAX_STEPS} updates" in curves, curves
    assert "image/png" in str(cell_with(sessions["second"], "ax_scale")["outputs"])
