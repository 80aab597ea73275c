"""Windows, simulated on Linux (issue 30): nothing here runs Windows, so each test takes away what
Windows lacks and checks the code still works, or fails in one line.

- Text files: without UTF-8 mode, Windows reads and writes text in the locale's code page
  (cp1252), where the book's λ, δ and ᵀ do not exist. A real cp1252 locale, built with
  `localedef` into a temporary folder (the C locale's ASCII where `localedef` is missing), runs
  the tools in a subprocess with `PYTHONUTF8=0`.
- The run folder's lock: no `fcntl` (`msvcrt.locking` instead, faked here with Windows' rules:
  a byte range locked per open file, refused to every other one, even for reading), no
  `O_NOFOLLOW`, no `os.pread`/`os.pwrite`; and a file that is open or mapped cannot be replaced
  or deleted.
"""

from __future__ import annotations

import errno
import os
import shutil
import subprocess
import sys
import types
from pathlib import Path

import pytest
from training_helpers import (
    ROOT,
    one_thread,  # noqa: F401 (an autouse fixture)
    tiny_config,
    write_config,
)

from gpt1_lib import run_dir, run_folder
from gpt1_lib.checkpoint import LAST, CheckpointError
from gpt1_lib.distributed import Processes
from gpt1_lib.run_folder import exclusive
from gpt1_lib.train_cli import main

pytestmark = pytest.mark.skipif(
    sys.platform != "linux", reason="simulates Windows with Linux's locales and /proc"
)


# ---- text in the locale's code page ---------------------------------------------------------
@pytest.fixture(scope="module")
def cp1252_env(tmp_path_factory) -> dict[str, str]:
    """The environment of a Python whose default text encoding is not UTF-8, as on Windows."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LC_", "PYTHONIOENCODING"))}
    env.update(PYTHONUTF8="0", LANG="C", LC_ALL="C", PYTHONPATH=str(ROOT))
    locales = tmp_path_factory.mktemp("locales")
    if shutil.which("localedef"):
        made = subprocess.run(["localedef", "-f", "CP1252", "-i", "en_US",
                               str(locales / "en_US.CP1252")], capture_output=True)  # fmt: skip
        if made.returncode in (0, 1) and (locales / "en_US.CP1252").is_dir():  # 1: warnings
            env.update(LOCPATH=str(locales), LC_ALL="en_US.CP1252")
    probe = "import locale; print(locale.getpreferredencoding(False))"
    encoding = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True,
                              text=True, check=True).stdout.strip().lower()  # fmt: skip
    assert encoding in ("cp1252", "ansi_x3.4-1968", "ascii"), encoding  # never UTF-8
    return env


def run_python(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([sys.executable, *args], env=env, cwd=ROOT, capture_output=True)


def export_root(root: Path) -> Path:
    """A project root for tools/export.py to write a package into: the notebooks (linked) and
    pyproject.toml (ruff's settings)."""
    root.mkdir()
    shutil.copyfile(ROOT / "pyproject.toml", root / "pyproject.toml")
    (root / "notebooks").symlink_to(ROOT / "notebooks")
    return root


def test_export_reads_and_writes_utf8_whatever_the_locale(cp1252_env, tmp_path, monkeypatch):
    """Under cp1252, `tools/export.py` writes every module (λ, δ and ᵀ in them) byte for byte as
    under UTF-8, LF line ends included, and `--check` reads them back as in sync."""
    monkeypatch.syspath_prepend(str(ROOT / "tools"))
    import export

    utf8 = export_root(tmp_path / "utf8")
    for name, value in (("ROOT", utf8), ("NOTEBOOKS", utf8 / "notebooks"),
                        ("PACKAGE", utf8 / "gpt1_lib")):  # fmt: skip
        monkeypatch.setattr(export, name, value)
    assert export.export() == 0
    cp1252 = export_root(tmp_path / "cp1252")
    script = (
        "import sys; from pathlib import Path; sys.path.insert(0, 'tools'); import export\n"
        f"export.ROOT = Path({str(cp1252)!r})\n"
        "export.PACKAGE, export.NOTEBOOKS = export.ROOT / 'gpt1_lib', export.ROOT / 'notebooks'\n"
        "assert export.export() == 0\n"
        "sys.exit(export.export(check=True))\n"
    )
    done = run_python(cp1252_env, "-c", script)
    assert done.returncode == 0, done.stderr.decode(errors="replace")[-2000:]
    written = sorted((utf8 / "gpt1_lib").rglob("*.py"))
    assert len(written) > 10
    for path in written:
        other = cp1252 / path.relative_to(utf8)
        assert other.read_bytes() == path.read_bytes(), f"{other} differs from a UTF-8 export"


def test_prose_numbers_reads_utf8_and_prints_on_a_cp1252_pipe(cp1252_env, tmp_path):
    """A problem quoting λ is read as λ (not as the cp1252 'Î»') and printed, escaped, on a pipe
    whose code page has no λ: no UnicodeEncodeError, no traceback."""
    import nbformat

    notebook = tmp_path / "XX_lambda.ipynb"
    nb = nbformat.v4.new_notebook()
    nb.cells.append(nbformat.v4.new_markdown_cell("With λ = 0.5 the loss falls by 12.5%."))
    nbformat.write(nb, notebook)
    done = run_python(cp1252_env, "tools/prose_numbers.py", str(notebook))
    out, err = done.stdout.decode("ascii", errors="replace"), done.stderr.decode(errors="replace")
    assert done.returncode == 1 and "Traceback" not in err, err
    assert "12.5%" in out and "\\u03bb" in out, out


# ---- the run folder without fcntl, O_NOFOLLOW, pread and pwrite -----------------------------
class FakeMsvcrt(types.ModuleType):
    """`msvcrt.locking` with Windows' rules: `nbytes` bytes from the file's position, locked for
    one open file (fd); another fd's lock or read of a locked byte fails with EACCES, and so does
    unlocking a range this fd has not locked."""

    LK_UNLCK, LK_LOCK, LK_NBLCK = 0, 1, 2

    def __init__(self) -> None:
        super().__init__("msvcrt")
        self.locks: dict[tuple[int, int, int], int] = {}  # (device, inode, byte): fd

    def _bytes(self, fd: int, nbytes: int) -> list[tuple[int, int, int]]:
        where, start = os.fstat(fd), os.lseek(fd, 0, os.SEEK_CUR)
        return [(where.st_dev, where.st_ino, b) for b in range(start, start + nbytes)]

    def locking(self, fd: int, mode: int, nbytes: int) -> None:
        wanted = self._bytes(fd, nbytes)
        if mode == self.LK_UNLCK:
            if any(self.locks.get(b) != fd for b in wanted):
                raise PermissionError(errno.EACCES, "Permission denied")
            for b in wanted:
                del self.locks[b]
            return
        assert mode == self.LK_NBLCK, "the lock must not wait"
        if any(b in self.locks for b in wanted):
            raise PermissionError(errno.EACCES, "Permission denied")
        self.locks.update(dict.fromkeys(wanted, fd))

    def refuses_read(self, fd: int, n: int) -> bool:
        return any(self.locks.get(b, fd) != fd for b in self._bytes(fd, n))


def held_open() -> set[Path]:
    """The files this process has open or mapped (Linux's /proc): Windows would let no other name
    replace or delete them."""
    held = {Path(os.readlink(f"/proc/self/fd/{fd}")) for fd in os.listdir("/proc/self/fd")
            if os.path.exists(f"/proc/self/fd/{fd}")}  # fmt: skip
    maps = Path("/proc/self/maps").read_text(encoding="utf-8", errors="replace").splitlines()
    mapped = [parts[5] for parts in (line.split(maxsplit=5) for line in maps) if len(parts) == 6]
    return held | {Path(m) for m in mapped if m.startswith("/")}


@pytest.fixture
def windows(monkeypatch) -> FakeMsvcrt:
    """Take away what Windows lacks; add msvcrt and Windows' refusal to replace an open file."""
    msvcrt = FakeMsvcrt()
    monkeypatch.setitem(sys.modules, "fcntl", None)  # `import fcntl` raises ImportError
    monkeypatch.setitem(sys.modules, "msvcrt", msvcrt)
    for name in ("O_NOFOLLOW", "pread", "pwrite"):
        monkeypatch.delattr(os, name)
    monkeypatch.setattr(run_dir, "NOFOLLOW", 0)
    monkeypatch.setattr(run_folder, "NOFOLLOW", 0)
    read = os.read

    def windows_read(fd: int, n: int) -> bytes:
        if msvcrt.refuses_read(fd, n):
            raise PermissionError(errno.EACCES, "Permission denied")
        return read(fd, n)

    monkeypatch.setattr(os, "read", windows_read)
    for name in ("replace", "rename", "unlink", "remove"):
        real = getattr(os, name)

        def refuse_open(*args, _real=real, **kwargs):
            targets = [Path(a).resolve() for a in args[:2] if isinstance(a, (str, Path))]
            if kwargs.get("dir_fd") is None and set(targets) & held_open():
                raise PermissionError(errno.EACCES, "The process cannot access the file "
                                      "because it is being used by another process")  # fmt: skip
            return _real(*args, **kwargs)

        monkeypatch.setattr(os, name, refuse_open)
    return msvcrt


def test_without_fcntl_a_second_trainer_is_refused_as_on_posix(windows, tmp_path):
    run = tmp_path / "run"
    with exclusive(run, Processes()):
        assert (run / ".lock").read_text() == str(os.getpid())
        assert windows.locks, "msvcrt.locking was not used"
        with pytest.raises(CheckpointError) as refused:
            with exclusive(run, Processes()):
                pass
        message = str(refused.value)
        assert message == (
            f"another process (pid {os.getpid()}) is training into {run}: wait for it to "
            "finish, or choose another --out-dir"
        )
    assert not windows.locks, "the lock was not released"
    with exclusive(run, Processes()):  # free again
        assert windows.locks


def test_a_smoke_training_runs_to_its_end_as_on_windows(
    windows, capsys, corpus, work_dir, tmp_path
):
    """The command line trains, checkpoints and finishes with Windows' calls only, holding the
    lock; a second trainer, and a checkpoint another program holds open, are one-line errors."""
    out = tmp_path / "run"
    config = write_config(tmp_path / "c.yaml", tiny_config(corpus, max_steps=6, ckpt_interval=3))
    args = ["--config", str(config), "--out-dir", str(out), "--work-dir", str(work_dir),
            "--no-progress"]  # fmt: skip
    assert main(args) == 0, capsys.readouterr().err
    assert (out / LAST).is_file() and (out / "metrics.jsonl").is_file()
    assert (out / ".lock").read_text() == str(os.getpid()), "the run did not hold the lock"
    assert not windows.locks and not list(out.glob("*.tmp"))

    def one_line_error(argv: list[str]) -> str:
        capsys.readouterr()
        assert main(argv) == 1
        err = capsys.readouterr().err.strip()
        assert "\n" not in err and "Traceback" not in err, err
        return err

    with exclusive(out, Processes()):  # another trainer holds the folder
        assert "is training into" in one_line_error([*args, "--resume", "--set", "max_steps=9"])
    before = (out / LAST).read_bytes()
    fd = os.open(out / LAST, os.O_RDONLY)  # another program has the checkpoint open
    try:
        err = one_line_error([*args, "--resume", "--set", "max_steps=9"])
    finally:
        os.close(fd)
    assert f"could not write {out / LAST}" in err and "previous checkpoint is intact" in err, err
    assert "being used by another process" in err and "close the program" in err, err  # not "full"
    assert (out / LAST).read_bytes() == before and not list(out.glob("*.tmp"))
    assert main([*args, "--resume", "--set", "max_steps=9"]) == 0  # closed: it trains on
    assert not windows.locks
