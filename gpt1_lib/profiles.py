"""Which machine are we on? Pick the named preset (profile) and the folders it writes to.

Hand-written glue (not generated from a notebook). Every notebook starts with
`profile = active_profile()`, so one code path serves CI (`smoke`), a laptop (`cpu`),
Colab (`t4`), an Ampere GPU (`a10g`) and GPT-1's own size and optimiser settings (`gpt1`);
`GPT1_PROFILE` overrides the automatic choice. The presets are `gpt1_lib/configs/<profile>.yaml`;
CONTRIBUTING.md has the table of what each one runs.
"""

from __future__ import annotations

import os
import platform
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

PROFILES = ("smoke", "cpu", "t4", "a10g", "gpt1")


def project_root() -> Path:
    """The checkout holding `notebooks/` and `gpt1_lib/`, else the working directory.

    Notebooks run with the working directory `notebooks/`, scripts from the root, Colab
    from `/content`; all of them should write into the same place.
    """
    if env := os.environ.get("GPT1_ROOT"):
        return Path(env).resolve()
    here = Path.cwd().resolve()
    for candidate in (here, *here.parents):
        if (candidate / "notebooks").is_dir() and (candidate / "gpt1_lib").is_dir():
            return candidate
    return here


def load_config(name_or_path: str | os.PathLike) -> dict[str, Any]:
    """The flat dict of a named preset (`gpt1_lib/configs/<name>.yaml`) or of a YAML file."""
    text_name = str(name_or_path)
    if text_name in PROFILES:
        text = resources.files("gpt1_lib").joinpath(f"configs/{text_name}.yaml").read_text(encoding="utf-8")
    else:
        path = Path(text_name)
        if not path.is_file():
            raise ValueError(
                f"unknown profile or config file {text_name!r}: use one of "
                f"{', '.join(PROFILES)} or the path of a YAML file"
            )
        text = path.read_text(encoding="utf-8")
    config = yaml.load(text, Loader=_UniqueKeyLoader)
    if config is None:  # an empty file would silently train the defaults: GPT-1's size
        raise ValueError(
            f"{text_name} is empty: write the keys to set in it (gpt1_lib/configs/cpu.yaml is "
            "an example), or pass a preset name"
        )
    if not isinstance(config, dict):
        raise ValueError(f"{text_name}: a config must be a YAML mapping of key: value")
    return config


class _UniqueKeyLoader(yaml.SafeLoader):
    """YAML's safe loader, except that a key given twice is an error: the usual loader keeps
    the last one silently, so a config would not say what it trains."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"the key {key!r} is given twice: keep one", key_node.start_mark
                )
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def detect_profile(gpu_presets: bool = True) -> tuple[str, str]:
    """Choose a profile from the hardware, or from `GPT1_PROFILE`; return (name, why).

    With `gpu_presets=False` (the teaching chapters) a GPU still gets the course-sized `cpu`
    preset, run on the GPU: a chapter must finish in minutes on any runtime, and the GPU
    presets (2 GB of TinyStories, a 117M-parameter model) are an opt-in, `GPT1_PROFILE=t4`.
    """
    if name := os.environ.get("GPT1_PROFILE"):
        if name not in PROFILES:
            raise ValueError(
                f"GPT1_PROFILE={name!r} is not a profile: use one of {', '.join(PROFILES)}"
            )
        return name, "set by GPT1_PROFILE"
    import torch

    if torch.cuda.is_available():
        major, minor = torch.cuda.get_device_capability()
        gpu = torch.cuda.get_device_name()
        if not gpu_presets:
            return "cpu", f"the course size, on {gpu}; GPT1_PROFILE=t4 or a10g opts in to the GPU preset"
        if (major, minor) >= (8, 0):
            return "a10g", f"{gpu} (sm_{major}{minor}) has fast bf16"
        return "t4", f"{gpu} (sm_{major}{minor}) has no fast bf16: fp16 with a GradScaler"
    return "cpu", "no CUDA GPU found"


def default_device(cuda: bool | None = None, mps: bool | None = None) -> str:
    """The book's device choice, everywhere one is made: a CUDA GPU, else Apple's MPS, else the
    CPU (`cuda`, `mps`: what is available, when the caller already knows). `--set device=cpu`
    opts out; `python -m gpt1_lib.doctor --parity` says whether to trust the accelerator."""
    import torch

    if cuda if cuda is not None else torch.cuda.is_available():
        return "cuda"
    if mps if mps is not None else torch.backends.mps.is_available():
        return "mps"
    return "cpu"


@dataclass
class Profile:
    """The active preset: its name, why it was chosen, its config and its folders."""

    name: str
    reason: str
    device: str
    config: dict[str, Any] = field(repr=False)
    root: Path = field(repr=False)

    @property
    def work_dir(self) -> Path:
        """Ignored folder for this profile's artefacts: tokenizer, token ids, checkpoints."""
        return self.root / "build" / self.name

    @property
    def figures_dir(self) -> Path:
        """Committed `figures/`, except in `smoke` (CI), which must not touch tracked files."""
        if self.name == "smoke":
            return self.work_dir / "figures"
        return self.root / "figures"

    def __getitem__(self, key: str) -> Any:
        return self.config[key]

    def describe(self) -> str:
        import torch

        where = self.device
        if self.device == "cuda":
            where = f"cuda ({torch.cuda.get_device_name()})"
        elif self.device == "mps":
            where = f"mps (Apple {platform.machine()}; untested on real hardware in this book)"
        else:
            threads = torch.get_num_threads()
            where = f"cpu ({platform.processor() or platform.machine()}, {threads} thread{'s' * (threads != 1)})"
        return f"profile: {self.name} ({self.reason}) · device: {where} · torch {torch.__version__}"


def active_profile(verbose: bool = True, gpu_presets: bool = False) -> Profile:
    """Detect the profile, create its folders, and (by default) say which one runs.

    The teaching chapters take the default, the course size on any machine; the GPU chapter
    and the command line pass `gpu_presets=True` to let a GPU choose `t4` or `a10g`.
    """
    name, reason = detect_profile(gpu_presets)
    profile = Profile(name, reason, default_device(), load_config(name), project_root())
    profile.work_dir.mkdir(parents=True, exist_ok=True)
    profile.figures_dir.mkdir(parents=True, exist_ok=True)
    if verbose:
        print(profile.describe())
    return profile
