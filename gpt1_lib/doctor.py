"""`python -m gpt1_lib.doctor`: the facts a bug report needs, one `name: value` line each;
`--run RUN_DIR`: is a training run healthy (`health`); `--parity`: may the accelerator be
trusted to train (`parity`).

Hand-written support module (not generated from a notebook), like `profiles`; the probes of the
hardware are in `hardware`. Most problems a
reader meets on a GPU runtime come from the machine, not the code: a torch built for another
CUDA, a T4 asked for bf16, a full disk, an unmounted Drive, no network for the hub. This prints
them all in one paste (`!python -m gpt1_lib.doctor` on Colab). Every line is worked out on its
own and a line that cannot be worked out says what is missing, so the doctor itself never fails
on the broken machines it exists for; nothing here waits long on the network.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import threading
from collections.abc import Callable
from pathlib import Path

from gpt1_lib.hardware import (
    bf16_line,
    cpu_line,
    cuda_line,
    driver_line,
    gib,
    gpu_line,
    import_torch,
    run_command,
    sdpa_line,
)

DRIVE = Path("/content/drive")  # where Colab mounts Google Drive


def python_line() -> str:
    return f"{platform.python_version()} ({sys.executable})"


def os_line() -> str:
    return f"{platform.platform()}"


def torch_line() -> str:
    torch = import_torch()
    return f"{torch.__version__} ({Path(torch.__file__).parent})"


def disk_line(path: Path | None = None) -> str:
    path = Path.cwd() if path is None else path
    usage = shutil.disk_usage(path)
    line = f"{gib(usage.free)} free of {gib(usage.total)} at {path}"
    if DRIVE.is_dir() and os.path.ismount(DRIVE):
        drive = shutil.disk_usage(DRIVE)
        line += f"; Drive: {gib(drive.free)} free of {gib(drive.total)}"
    return line


def on_colab() -> bool:
    return "COLAB_RELEASE_TAG" in os.environ or "google.colab" in sys.modules


def drive_line() -> str:
    if DRIVE.is_dir() and (os.path.ismount(DRIVE) or (DRIVE / "MyDrive").is_dir()):
        return f"mounted at {DRIVE}"
    if on_colab():
        return (
            "not mounted: checkpoints on local disk are lost when the runtime disconnects; run "
            "from google.colab import drive; drive.mount('/content/drive')"
        )
    return "not mounted (not on Colab)"


def _offline_setting() -> str | None:
    for name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):
        if os.environ.get(name, "0").lower() in ("1", "true", "yes", "on"):
            return f"{name}={os.environ[name]}"
    return None


def hub_line(timeout: float = 3.0, check: Callable[[float], bool] | None = None) -> str:
    """Whether huggingface.co answers, within `timeout` seconds whatever the network does."""
    if setting := _offline_setting():
        return f"unreachable ({setting}: offline by choice)"
    if check is None:
        from gpt1_lib.hub import hub_reachable

        check = hub_reachable
    probe: Callable[[float], bool] = check
    answer: list[bool | str] = []

    def ask() -> None:
        try:
            answer.append(probe(timeout))
        except Exception as err:  # e.g. huggingface_hub missing: say so
            answer.append(f"{type(err).__name__}: {err}")

    # a daemon thread: a DNS lookup that hangs ignores socket timeouts, and must not hang us
    worker = threading.Thread(target=ask, daemon=True)
    worker.start()
    worker.join(timeout + 1.0)
    if not answer:
        return f"unreachable (no answer within {timeout + 1.0:.0f} s)"
    endpoint = os.environ.get("HF_ENDPOINT", "https://huggingface.co")
    if isinstance(answer[0], str):
        return f"unknown (the check failed: {answer[0]})"
    return f"reachable ({endpoint})" if answer[0] else f"unreachable (no connection to {endpoint})"


def install_line() -> str:
    """gpt1_lib's version, how it was installed (PEP 610's direct_url.json) and its git commit."""
    import gpt1_lib

    package = Path(gpt1_lib.__file__).resolve().parent
    parts = [gpt1_lib.__version__]
    parts.append(_install_kind())
    if run_command(["git", "--version"]) is None:
        parts.append("git not found, so no commit")
    elif commit := run_command(["git", "rev-parse", "--short=12", "HEAD"], cwd=package):
        dirty = run_command(["git", "status", "--porcelain", "--untracked-files=no"], cwd=package)
        parts.append(f"git commit {commit}{' with uncommitted changes' if dirty else ''}")
    else:
        parts.append("not in a git checkout")
    return f"{', '.join(parts)} (imported from {package})"


def _install_kind() -> str:
    from importlib import metadata

    try:
        dists = list(metadata.distributions(name="gpt1_lib"))
    except Exception:  # a damaged environment: the rest of the line still helps
        dists = []
    if not dists:
        return "not installed (imported from a path)"
    for dist in dists:  # a checkout's *.egg-info may come first, without direct_url.json
        text = dist.read_text("direct_url.json")
        if not text:
            continue
        info = json.loads(text)
        url = info.get("url", "?")
        if info.get("dir_info", {}).get("editable"):
            return f"editable install of {url.removeprefix('file://')}"
        if vcs := info.get("vcs_info"):
            ref = vcs.get("requested_revision")
            return f"installed from {url}{'@' + ref if ref else ''} (commit {vcs.get('commit_id', '?')[:12]})"
        return f"installed from {url}"
    return "installed (no record of where from)"


def profile_line(gpu_presets: bool) -> str:
    from gpt1_lib.profiles import detect_profile

    try:
        name, why = detect_profile(gpu_presets=gpu_presets)
    except ValueError as err:  # a bad GPT1_PROFILE
        return f"none: {err}"
    return f"{name} ({why})"


LINES: list[tuple[str, Callable[[], str]]] = [
    ("python", python_line),
    ("os", os_line),
    ("cpu", cpu_line),
    ("torch", torch_line),
    ("cuda", cuda_line),
    ("driver", driver_line),
    ("gpu", gpu_line),
    ("bf16", bf16_line),
    ("sdpa", sdpa_line),
    ("disk", disk_line),
    ("drive", drive_line),
    ("hub", hub_line),
    ("gpt1_lib", install_line),
    ("profile (GPU chapter)", lambda: profile_line(gpu_presets=True)),
    ("profile (teaching chapters)", lambda: profile_line(gpu_presets=False)),
]


def report(lines: list[tuple[str, Callable[[], str]]] | None = None) -> list[str]:
    """Every `name: value` line; a line whose check fails says why instead of stopping the rest."""
    out = []
    for name, make in LINES if lines is None else lines:
        try:
            value = make()
        except Exception as err:  # the doctor must report, never crash
            first = str(err).splitlines()[0] if str(err) else ""
            value = f"could not tell ({type(err).__name__}: {first})"
        out.append(f"{name}: {value}")
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m gpt1_lib.doctor",
        description="Print what a bug report needs: versions, GPU, bf16, SDPA, disk, Drive, "
        "hub, install, profile. Paste the output into the issue.",
    )
    parser.add_argument("--run", type=Path, metavar="RUN_DIR",
                        help="is this training run healthy? its losses against the cpu preset's "
                        "band, and the symptoms it shows, one line each; draws RUN_DIR/health.png")  # fmt: skip
    parser.add_argument("--parity", nargs="?", const="", metavar="DEVICE",
                        help="train a small GPT on the CPU and on the accelerator (CUDA, else "
                        "MPS; or DEVICE) and say whether to trust it")  # fmt: skip
    args = parser.parse_args(argv)
    if args.run is not None:
        from gpt1_lib.health import diagnose, draw, read_run

        if not (args.run / "metrics.jsonl").is_file():
            if (args.run / "config.yaml").is_file():  # a run folder, too young to have a line
                every = (read_run(args.run)[1] or {}).get("log_interval", "log_interval")
                print(f"{args.run}: no metrics yet: a run writes its first line of metrics.jsonl "
                      f"after {every} updates; ask again then")  # fmt: skip
                return 0
            print(f"error: {args.run} has no metrics.jsonl: give the run folder of a "
                  "gpt1_lib.train run", file=sys.stderr)  # fmt: skip
            return 1
        for line in diagnose(args.run):
            print(line, flush=True)
        picture = draw(args.run)
        print(f"picture: {picture}" if picture else "picture: pip install matplotlib to draw it")
        return 0
    if args.parity is not None:
        from gpt1_lib.parity import parity

        if args.parity:  # a device asked for: one that this machine lacks is one line, not a trace
            import torch

            from gpt1_lib.config import ConfigError
            from gpt1_lib.precision import resolve_device

            try:
                torch.device(args.parity)
            except (RuntimeError, ValueError):
                print(f"error: {args.parity} is not a device torch knows: give cuda, cuda:1, mps "
                      "or cpu, or leave DEVICE out", file=sys.stderr)  # fmt: skip
                return 1
            try:
                resolve_device(args.parity)
            except ConfigError:
                print(f"error: this machine has no {args.parity} device: leave DEVICE out to test "
                      "the accelerator it has (CUDA, else MPS)", file=sys.stderr)  # fmt: skip
                return 1
        trust, lines = parity(args.parity or None)
        print("\n".join(lines), flush=True)
        return 0 if trust else 2
    for line in report():
        print(line, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
