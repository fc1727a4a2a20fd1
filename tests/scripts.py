"""The repository's hack/ scripts, loaded as modules for the tests that reuse their code (no copy)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

HACK = Path(__file__).resolve().parents[1] / "hack"


def load_script(name: str) -> ModuleType:
    """hack/<name>.py as a module named ``minerguard_hack_<name>`` (registered, so dataclasses resolve)."""
    module_name = f"minerguard_hack_{name}"
    spec = importlib.util.spec_from_file_location(module_name, HACK / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    spec.loader.exec_module(module)
    return module
