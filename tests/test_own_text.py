"""Your own text: `python -m gpt1_lib.train --config cpu --set dataset=my.txt` trains the `cpu`
preset on a text file, with a tokenizer learned from that text; a file it cannot train on is
one line that says what to do, before anything is written."""

from __future__ import annotations

from pathlib import Path

import pytest
from training_helpers import make_corpus, one_thread  # noqa: F401 (an autouse fixture)

from gpt1_lib.tokenizer import load_tokenizer
from gpt1_lib.train_cli import main


def run(capsys, text: Path, out: Path, work: Path, *extra: str) -> tuple[int, str]:
    status = main(["--config", "cpu", "--set", f"dataset={text}", "--set", "max_steps=2",
                   "--set", "warmup_steps=1", "--set", "eval_interval=2", "--set",
                   "eval_iters=1", "--set", "device=cpu", "--out-dir", str(out), "--work-dir",
                   str(work), "--no-progress", *extra])  # fmt: skip
    out_text, err = capsys.readouterr()
    assert "Traceback" not in out_text + err
    return status, err.strip()


BAD = {
    "empty": (b"", "is empty: give a file with text in it"),
    "binary": (b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 8, "holds binary data (a NUL byte at offset"),
    "latin-1": ("café crème brûlée\n".encode("latin-1") * 500, "is not UTF-8 text"),
    "too short": (b"To be, or not to be, that is the question.\n" * 20, "is too short to train on"),
    "utf-16": ("To be, or not to be\n".encode("utf-16") * 500, "is UTF-16 text, not UTF-8"),
}


@pytest.mark.parametrize("kind", BAD)
def test_a_file_that_cannot_be_trained_on_is_one_line_and_writes_nothing(capsys, tmp_path, kind):
    content, message = BAD[kind]
    text = tmp_path / "my.txt"
    text.write_bytes(content)
    status, err = run(capsys, text, tmp_path / "run", tmp_path / "work")
    assert status == 1 and err.startswith("error: ") and "\n" not in err, err
    assert message in err and str(text) in err, err
    assert not list((tmp_path / "run").glob("ckpt_*")) if (tmp_path / "run").exists() else True


def test_a_missing_file_is_one_line(capsys, tmp_path):
    status, err = run(capsys, tmp_path / "nowhere.txt", tmp_path / "run", tmp_path / "work")
    assert status == 1 and "does not exist" in err and "\n" not in err


def test_your_own_text_trains_the_cpu_preset_with_a_tokenizer_learned_from_it(capsys, tmp_path):
    text = make_corpus(tmp_path / "my.txt", n_lines=2000)
    status, err = run(capsys, text, tmp_path / "run", tmp_path / "work")
    assert status == 0, err
    tokenizer = load_tokenizer(tmp_path / "run" / "tokenizer.json")
    sample = text.read_text()[:3000]
    assert len(tokenizer.encode(sample).ids) < len(sample.encode()) / 3  # its pieces: its words
    assert (tmp_path / "run" / "ckpt_last.pt").is_file()
