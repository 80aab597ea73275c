"""A run folder is often copied, shared or unpacked from someone else: what training, fine-tuning
and sampling may do to it, and to what lies outside it.

1. No write ever follows a link planted in a run folder: every file a run writes (`.lock`,
   `config.yaml`, `metrics.jsonl`, `tokenizer.json`, the checkpoints and their `*.tmp`,
   fine-tuning's `hf/`, the `tensorboard/` folder) is planted as a link to a "victim"
   outside the folder, and the victim must keep every byte. The run may refuse (one line, no
   traceback, naming the file or the folder) or go on with the link replaced by a real file.
2. Only what the library wrote is ever deleted: a fresh run into a folder of someone else's
   files refuses it or keeps them byte for byte; `--overwrite` leaves no snapshot of the old run
   and keeps the `.corrupt` file it said it kept.
3. A resume (or a sample) checks its inputs by content: a corpus, a tokenizer.json, a task file
   or a pre-training run changed under the same name is refused in one line that says what.
5. Fine-tuning takes its lock before it writes anything.

Outcomes are checked by kind (exit status, file bytes) and a few keywords, never exact wording.
Runs are a few updates of the tiny config: the file runs in seconds.
"""

from __future__ import annotations

import json
import os
import random
import shutil
from pathlib import Path

import pytest
from training_helpers import (
    WORDS,
    make_corpus,
    one_thread,  # noqa: F401 (an autouse fixture)
    tiny_config,
    write_config,
)

import gpt1_lib.finetune as ft
from gpt1_lib import sample
from gpt1_lib.checkpoint import CheckpointError, read_checkpoint
from gpt1_lib.distributed import Processes
from gpt1_lib.run_folder import exclusive
from gpt1_lib.tokenizer import load_tokenizer, save_tokenizer, train_tokenizer
from gpt1_lib.train import train
from gpt1_lib.train_cli import main as train_main

VICTIM = b"someone else's file, outside the run folder: it must never change\n"


# ---- helpers --------------------------------------------------------------------------------
def tree(folder: Path) -> dict[str, bytes | None]:
    """Every entry under `folder` (links not followed): files by bytes, folders and links as None
    (a link's target is recorded instead of its content)."""
    found: dict[str, bytes | None] = {}
    for root, dirs, files in os.walk(folder):
        for name in dirs + files:
            path = Path(root) / name
            rel = str(path.relative_to(folder))
            if path.is_symlink():
                found[rel] = f"link -> {os.readlink(path)}".encode()
            elif path.is_file():
                found[rel] = path.read_bytes()
            else:
                found[rel] = None
    return found


def plant_link(run_dir: Path, name: str, outside: Path, directory: bool = False) -> Path:
    """Replace `run_dir/name` by a link to a victim outside the run folder; return the victim."""
    outside.mkdir(parents=True, exist_ok=True)
    if directory:
        victim = outside / "victim_dir"
        (victim / "other_experiment").mkdir(parents=True, exist_ok=True)
        (victim / "other_experiment" / "events.x").write_bytes(VICTIM)
    else:
        victim = outside / f"victim_of_{name.lstrip('.')}"
        victim.write_bytes(VICTIM)
    run_dir.mkdir(parents=True, exist_ok=True)
    link = run_dir / name
    if link.is_symlink() or link.is_file():
        link.unlink()
    elif link.is_dir():
        shutil.rmtree(link)
    link.symlink_to(victim, target_is_directory=directory)
    return victim


def run_train(capsys, *args) -> tuple[int, str, str]:
    """`python -m gpt1_lib.train ARGS` in this process: (status, stdout, stderr)."""
    status = train_main([str(a) for a in args])
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    return status, out, err.strip()


FAST = ["--set", "batch_size=4", "--set", "epochs=2", "--set", "device=cpu", "--set",
        "ckpt_interval=3", "--no-progress"]  # fmt: skip


def run_finetune(capsys, checkpoint, task, out_dir, *args) -> tuple[int, str, str]:
    """`python -m gpt1_lib.finetune ...` in this process: (status, stdout, stderr)."""
    status = ft.main(["--checkpoint", str(checkpoint), "--task", str(task), "--out-dir",
                      str(out_dir), *FAST, *map(str, args)])  # fmt: skip
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    return status, out, err.strip()


def run_sample(capsys, *args) -> tuple[int, str]:
    """`python -m gpt1_lib.sample ARGS` in this process: (exit status, stderr or exit message)."""
    try:
        sample.main([str(a) for a in args])
        status, message = 0, ""
    except SystemExit as exit_:
        code = exit_.code
        status = code if isinstance(code, int) else 1  # sys.exit("error: ...") exits with 1
        message = code if isinstance(code, str) else ""
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    return status, (message or err).strip()


def one_line_error(err: str) -> None:
    assert err.startswith("error: ") and "\n" not in err, err


def refused_or_replaced(
    status: int, err: str, run_dir: Path, name: str, written: bool = True
) -> None:
    """The two acceptable outcomes of a run into a folder holding a planted link: refused in
    one line naming the file (or the folder), or done with the link replaced by a real file
    (where the run writes that file: a stale temporary name, or a file a resume only reads or
    leaves alone, may stay as it was)."""
    if status == 0:
        if written and not name.endswith(".tmp"):
            assert not (run_dir / name).is_symlink(), f"{name} is still a link after the run"
    else:
        assert status == 1
        one_line_error(err)
        assert name in err or run_dir.name in err, err


# ---- shared runs ----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def base(tmp_path_factory):
    return tmp_path_factory.mktemp("safety")


@pytest.fixture(scope="module")
def corpus(base):
    return make_corpus(base / "corpus.txt", n_lines=600)


@pytest.fixture(scope="module")
def work(base):
    return base / "work"


def config_of(corpus: Path, **overrides):
    fields = dict(max_steps=4, eval_interval=2, ckpt_interval=2, keep_every=2)
    return tiny_config(corpus, **{**fields, **overrides})


@pytest.fixture(scope="module")
def config_file(base, corpus):
    return write_config(base / "tiny.yaml", config_of(corpus))


@pytest.fixture(scope="module")
def partial_run(base, corpus, work):
    """A pre-training run stopped after update 2 of 4 (snapshot 2 kept), to resume."""
    out = base / "partial"
    train(config_of(corpus), out, progress=False, work_dir=work, until=2)
    return out


@pytest.fixture(scope="module")
def pretrained(base, corpus, work):
    """A finished pre-training run: the language model to fine-tune and to sample from."""
    out = base / "pretrained"
    train(config_of(corpus), out, progress=False, work_dir=work)
    return out


@pytest.fixture(scope="module")
def other_pretrained(base, work):
    """Another pre-training run of the same shapes: other corpus, other seed."""
    other = make_corpus(base / "other.txt", n_lines=600, seed=1)
    out = base / "other_pretrained"
    train(config_of(other, seed=8), out, progress=False, work_dir=work)
    return out


@pytest.fixture(scope="module")
def other_tokenizer(base, pretrained):
    """A tokenizer of the same vocabulary size as the runs', trained on another text."""
    tok = train_tokenizer(make_corpus(base / "tok.txt", n_lines=600, seed=5), 300)
    assert tok.get_vocab_size() == 300
    assert tok.get_vocab() != load_tokenizer(pretrained / "tokenizer.json").get_vocab()
    return tok


def write_task(path: Path, seed: int = 0) -> Path:
    """A classification task file: label 1 iff the line holds "crown"; 16/4/4 examples."""
    rng = random.Random(seed)
    others = [w for w in WORDS if w != "crown"]
    with path.open("w") as f:
        for split, n in (("train", 16), ("valid", 4), ("test", 4)):
            for i in range(n):
                words = [rng.choice(others) for _ in range(rng.randint(3, 6))]
                if i % 2:
                    words.insert(rng.randrange(len(words) + 1), "crown")
                f.write(
                    json.dumps({"text": " ".join(words), "label": i % 2, "split": split}) + "\n"
                )
    return path


@pytest.fixture(scope="module")
def task_file(base):
    return write_task(base / "crown.jsonl")


@pytest.fixture(scope="module")
def ft_partial(base, pretrained, task_file):
    """A fine-tuning run stopped after update 2 of 8, to resume."""
    out = base / "ft_partial"
    status = ft.main(["--checkpoint", str(pretrained), "--task", str(task_file), "--out-dir",
                      str(out), *FAST, "--until", "2"])  # fmt: skip
    assert status == 0
    return out


def copy_run(source: Path, dest: Path) -> Path:
    shutil.copytree(source, dest, symlinks=True)
    return dest


# ---- 1. no write follows a link planted in the run folder -----------------------------------
TRAIN_FILES = [".lock", "config.yaml", "metrics.jsonl", "tokenizer.json", "ckpt_last.pt",
               "ckpt_best.pt", "ckpt_step_000002.pt", "ckpt_last.pt.tmp", "ckpt_best.pt.tmp",
               "ckpt_step_000002.pt.tmp"]  # fmt: skip


@pytest.mark.parametrize("name", TRAIN_FILES)
def test_a_fresh_run_never_writes_through_a_planted_link(capsys, config_file, work, tmp_path, name):
    run, outside = tmp_path / "shared_folder", tmp_path / "outside"
    plant_link(run, name, outside)
    before = tree(outside)
    status, _, err = run_train(capsys, "--config", config_file, "--out-dir", run,
                               "--work-dir", work, "--no-progress")  # fmt: skip
    assert tree(outside) == before, f"a run wrote through the link {name} to outside its folder"
    refused_or_replaced(status, err, run, name)


def test_a_fresh_run_never_writes_through_a_planted_tensorboard_link(
    capsys, corpus, work, tmp_path
):
    pytest.importorskip("tensorboard")
    config = write_config(tmp_path / "tb.yaml", config_of(corpus, tensorboard=True))
    run, outside = tmp_path / "shared_folder", tmp_path / "outside"
    plant_link(run, "tensorboard", outside, directory=True)
    before = tree(outside)
    status, _, err = run_train(capsys, "--config", config, "--out-dir", run, "--work-dir", work,
                               "--no-progress")  # fmt: skip
    assert tree(outside) == before, "TensorBoard wrote through the tensorboard link"
    refused_or_replaced(status, err, run, "tensorboard")


def test_a_link_for_any_other_file_a_run_writes_is_not_followed_either(
    capsys, config_file, pretrained, work, tmp_path
):
    """The names above are those a run writes today; one the library adds is covered too."""
    written = {p.name for p in pretrained.iterdir() if p.is_file()}
    written |= {n + ".tmp" for n in written if n.endswith(".pt")}
    for name in sorted(written - set(TRAIN_FILES)):
        run, outside = tmp_path / name / "shared_folder", tmp_path / name / "outside"
        plant_link(run, name, outside)
        before = tree(outside)
        status, _, err = run_train(capsys, "--config", config_file, "--out-dir", run,
                                   "--work-dir", work, "--no-progress")  # fmt: skip
        assert tree(outside) == before, f"a run wrote through the link {name}"
        refused_or_replaced(status, err, run, name)


RESUME_FILES = [".lock", "config.yaml", "metrics.jsonl", "tokenizer.json", "ckpt_last.pt",
                "ckpt_best.pt", "ckpt_step_000004.pt", "ckpt_last.pt.tmp", "ckpt_best.pt.tmp",
                "ckpt_step_000004.pt.tmp"]  # fmt: skip


@pytest.mark.parametrize("name", RESUME_FILES)
def test_a_resumed_run_never_writes_through_a_planted_link(
    capsys, config_file, partial_run, work, tmp_path, name
):
    run, outside = copy_run(partial_run, tmp_path / "shared_folder"), tmp_path / "outside"
    plant_link(run, name, outside)
    before = tree(outside)
    status, _, err = run_train(capsys, "--config", config_file, "--out-dir", run, "--resume",
                               "--work-dir", work, "--no-progress")  # fmt: skip
    assert tree(outside) == before, f"a resume wrote through the link {name} to outside its folder"
    refused_or_replaced(status, err, run, name, written=name != "tokenizer.json")  # only read


FINETUNE_FILES = [".lock", "config.yaml", "tokenizer.json", "metrics.jsonl", "ckpt_last.pt",
                  "ckpt_best.pt", "ckpt_last.pt.tmp", "ckpt_best.pt.tmp", "hf"]  # fmt: skip


@pytest.mark.parametrize("name", FINETUNE_FILES)
def test_a_fresh_finetune_never_writes_through_a_planted_link(
    capsys, pretrained, task_file, tmp_path, name
):
    run, outside = tmp_path / "shared_folder", tmp_path / "outside"
    plant_link(run, name, outside)
    before = tree(outside)
    status, _, err = run_finetune(capsys, pretrained, task_file, run, "--until", 4)  # a best at 4
    assert tree(outside) == before, f"fine-tuning wrote through the link {name}"
    refused_or_replaced(status, err, run, name)


@pytest.mark.parametrize(
    "name",
    [".lock", "config.yaml", "tokenizer.json", "metrics.jsonl", "ckpt_last.pt.tmp",
     "ckpt_best.pt.tmp", "hf"],
)  # fmt: skip
def test_a_resumed_finetune_never_writes_through_a_planted_link(
    capsys, pretrained, task_file, ft_partial, tmp_path, name
):
    run, outside = copy_run(ft_partial, tmp_path / "shared_folder"), tmp_path / "outside"
    plant_link(run, name, outside)
    before = tree(outside)
    status, _, err = run_finetune(capsys, pretrained, task_file, run, "--resume", "--until", 4)
    assert tree(outside) == before, f"a resumed fine-tuning wrote through the link {name}"
    written = name != "tokenizer.json"  # written when the run started
    refused_or_replaced(status, err, run, name, written)


# ---- 2. only what the library wrote is deleted ----------------------------------------------
FOREIGN = {
    "tensorboard/other_experiment/events.x": b"another experiment's TensorBoard events\n",
    "notes.pt.bak": b"my notes about the .pt files\n",
    "results.pt.txt": b"results I copied by hand\n",
    "config.yaml": b"# my hand-written config, not a run's\nlr: 0.1\n",
}


def plant_files(folder: Path, names) -> None:
    for name in names:
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(FOREIGN[name])


@pytest.mark.parametrize("planted", [[n] for n in FOREIGN] + [list(FOREIGN)],
                         ids=[*FOREIGN, "all"])  # fmt: skip
def test_a_fresh_run_refuses_or_keeps_a_folder_of_someone_elses_files(
    capsys, config_file, work, tmp_path, planted
):
    run = tmp_path / "shared_folder"
    plant_files(run, planted)
    status, _, err = run_train(capsys, "--config", config_file, "--out-dir", run,
                               "--work-dir", work, "--no-progress")  # fmt: skip
    if status != 0:  # not a run of ours: refused in one line naming the folder
        assert status == 1
        one_line_error(err)
        assert run.name in err, err
    for name in planted:
        assert (run / name).is_file(), f"a fresh run deleted {name}, a file it did not write"
        assert (run / name).read_bytes() == FOREIGN[name], f"a fresh run rewrote {name}"


def test_overwrite_deletes_only_the_files_the_library_wrote(capsys, corpus, work, tmp_path):
    run = tmp_path / "shared_folder"
    config = write_config(tmp_path / "c.yaml", config_of(corpus, max_steps=2, warmup_steps=1))
    assert run_train(capsys, "--config", config, "--out-dir", run, "--work-dir", work,
                     "--no-progress")[0] == 0  # fmt: skip
    planted = ["tensorboard/other_experiment/events.x", "notes.pt.bak", "results.pt.txt"]
    plant_files(run, planted)
    status, _, err = run_train(capsys, "--config", config, "--out-dir", run, "--overwrite",
                               "--work-dir", work, "--no-progress")  # fmt: skip
    if status != 0:
        assert status == 1
        one_line_error(err)
    for name in planted:
        assert (run / name).is_file(), f"--overwrite deleted {name}, a file it did not write"
        assert (run / name).read_bytes() == FOREIGN[name]


def test_overwrite_leaves_no_snapshot_of_the_old_run(capsys, recwarn, corpus, work, tmp_path):
    """Chapter 09 reads every ckpt_step_* of a folder: after --overwrite they are the new run's."""
    run = tmp_path / "run"
    old = write_config(tmp_path / "old.yaml", config_of(corpus, max_steps=6))
    assert run_train(capsys, "--config", old, "--out-dir", run, "--work-dir", work,
                     "--no-progress")[0] == 0  # fmt: skip
    old_snapshots = sorted(p.name for p in run.glob("ckpt_step_*.pt"))
    assert old_snapshots == [f"ckpt_step_00000{s}.pt" for s in (2, 4, 6)]
    new = write_config(tmp_path / "new.yaml", config_of(corpus, max_steps=2, warmup_steps=1))
    status, out, err = run_train(capsys, "--config", new, "--out-dir", run, "--overwrite",
                                 "--work-dir", work, "--no-progress")  # fmt: skip
    assert status == 0, err
    snapshots = sorted(p.name for p in run.glob("ckpt_step_*.pt"))
    assert snapshots == ["ckpt_step_000002.pt"], f"the old run's snapshots are left: {snapshots}"
    assert read_checkpoint(run / snapshots[0])["config"]["max_steps"] == 2  # the new run's
    said = out + err + "".join(str(w.message) for w in recwarn)
    for name in old_snapshots[1:]:  # what --overwrite deleted is listed by name
        assert name in said, f"--overwrite deleted {name} without saying so"


def test_overwrite_keeps_the_corrupt_file_it_said_it_kept(corpus, work, tmp_path):
    run, config = tmp_path / "run", config_of(corpus)
    train(config, run, progress=False, work_dir=work, until=2)
    torn = (run / "ckpt_last.pt").read_bytes()[:3000]
    (run / "ckpt_last.pt").write_bytes(torn)
    with pytest.raises(CheckpointError, match=r"ckpt_last\.pt\.corrupt"):
        train(config, run, resume=True, progress=False, work_dir=work)
    assert (run / "ckpt_last.pt.corrupt").read_bytes() == torn  # "kept it as ...corrupt"
    train(config, run, overwrite=True, progress=False, work_dir=work)  # the message's advice
    assert (run / "ckpt_last.pt.corrupt").is_file(), "--overwrite deleted the file it said it kept"
    assert (run / "ckpt_last.pt.corrupt").read_bytes() == torn


# ---- 3. a resume checks its inputs by content -----------------------------------------------
def same_size_change(path: Path, old: bytes, new: bytes) -> None:
    """Change a file's content under the same name, keeping its byte size."""
    assert len(old) == len(new)
    data = path.read_bytes()
    changed = data.replace(old, new)
    assert changed != data and len(changed) == len(data)
    path.write_bytes(changed)


def test_resuming_on_a_changed_corpus_is_refused(capsys, corpus, work, tmp_path):
    plays = tmp_path / "plays.txt"
    shutil.copyfile(corpus, plays)
    config = write_config(tmp_path / "c.yaml", config_of(plays))
    run = tmp_path / "run"
    assert run_train(capsys, "--config", config, "--out-dir", run, "--until", 2,
                     "--work-dir", work, "--no-progress")[0] == 0  # fmt: skip
    same_size_change(plays, b"e", b"a")  # same name, same size, other text
    status, _, err = run_train(capsys, "--config", config, "--out-dir", run, "--resume",
                               "--work-dir", work, "--no-progress")  # fmt: skip
    assert status == 1, "a resume trained on a corpus the run never started with"
    one_line_error(err)
    assert "plays.txt" in err or "corpus" in err or "dataset" in err, err


def test_resuming_with_a_swapped_tokenizer_is_refused(
    capsys, config_file, partial_run, work, other_tokenizer, tmp_path
):
    run = copy_run(partial_run, tmp_path / "run")
    save_tokenizer(other_tokenizer, run / "tokenizer.json")  # same vocabulary size, other merges
    status, _, err = run_train(capsys, "--config", config_file, "--out-dir", run, "--resume",
                               "--work-dir", work, "--no-progress")  # fmt: skip
    assert status == 1, "a resume trained with a tokenizer the run never started with"
    one_line_error(err)
    assert "tokenizer" in err, err


def test_sampling_with_a_swapped_tokenizer_is_refused(
    capsys, pretrained, other_tokenizer, tmp_path
):
    run = copy_run(pretrained, tmp_path / "run")
    args = ["--prompt", "The king", "--max-new-tokens", 3, "--seed", 0, "--device", "cpu"]
    assert run_sample(capsys, "--checkpoint", run, *args)[0] == 0  # the run as it was samples
    save_tokenizer(other_tokenizer, run / "tokenizer.json")
    status, err = run_sample(capsys, "--checkpoint", run, *args)
    assert status == 1, "sampled with a tokenizer the model was never trained with"
    assert err.startswith("error: ") and "\n" not in err and "tokenizer" in err, err


def test_resuming_a_finetune_on_a_changed_task_file_is_refused(
    capsys, pretrained, task_file, tmp_path
):
    task, run = tmp_path / "crown.jsonl", tmp_path / "ft"
    shutil.copyfile(task_file, task)
    assert run_finetune(capsys, pretrained, task, run, "--until", 2)[0] == 0
    data = task.read_bytes()  # swap the labels 0 <-> 1: same name, same size
    task.write_bytes(data.replace(b'"label": 0', b'"label": X').replace(b'"label": 1', b'"label": 0')
                     .replace(b'"label": X', b'"label": 1'))  # fmt: skip
    assert task.read_bytes() != data and len(task.read_bytes()) == len(data)
    status, _, err = run_finetune(capsys, pretrained, task, run, "--resume")
    assert status == 1, "a resumed fine-tuning trained on a task file it never started with"
    one_line_error(err)
    assert "crown.jsonl" in err or "task" in err, err


def test_resuming_a_finetune_on_a_replaced_pretraining_run_is_refused(
    capsys, pretrained, other_pretrained, task_file, tmp_path
):
    pre, run = copy_run(pretrained, tmp_path / "pre"), tmp_path / "ft"
    assert run_finetune(capsys, pre, task_file, run, "--until", 2)[0] == 0
    shutil.rmtree(pre)
    copy_run(other_pretrained, pre)  # another run under the same --checkpoint path
    status, _, err = run_finetune(capsys, pre, task_file, run, "--resume")
    assert status == 1, (
        "a resumed fine-tuning went on from a pre-training run it never started from"
    )
    one_line_error(err)
    assert "checkpoint" in err or str(pre) in err or "pre-train" in err or "tokenizer" in err, err


# ---- 5. fine-tuning locks its folder before writing anything --------------------------------
def test_a_finetune_refused_by_the_lock_has_written_nothing(
    capsys, pretrained, task_file, tmp_path
):
    """A first fine-tuning is running into the folder (it holds the lock, and has written its
    tokenizer and settings but no checkpoint yet); a second one into it must change nothing."""
    run = tmp_path / "ft"
    run.mkdir()
    (run / "config.yaml").write_text("lr: 6.25e-05\nbatch_size: 4\ntask: crown\n")
    shutil.copyfile(pretrained / "tokenizer.json", run / "tokenizer.json")
    with exclusive(run, Processes()):  # as the first process does
        before = {k: v for k, v in tree(run).items() if k != ".lock"}
        status, _, err = run_finetune(capsys, pretrained, task_file, run, "--set", "lr=0.01")
        after = {k: v for k, v in tree(run).items() if k != ".lock"}
    assert status == 1, err
    one_line_error(err)
    changed = sorted(k for k in before.keys() | after.keys() if before.get(k) != after.get(k))
    assert not changed, f"a fine-tuning refused by the lock wrote {changed} first"
