"""One way for a test to import a script of the tools folder (each runs as a script, not a package)."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path
from types import ModuleType

TOOLS = Path(__file__).resolve().parent.parent / "tools"


def import_tool(name: str) -> ModuleType:
    """`tools/<name>.py` as a module, without leaving `tools/` on sys.path."""
    sys.path.insert(0, str(TOOLS))
    try:
        return importlib.import_module(name)
    finally:
        sys.path.remove(str(TOOLS))
