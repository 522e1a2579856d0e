"""aecli: a command-line experiment runner for small autoencoders.

The Python API (aecli/api.py) is exported lazily: `aecli.run`, `aecli.load_run` and
`aecli.load_sweep` import torch on first use, so `import aecli` (the CLI's `--help`
path) stays free of torch and matplotlib.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__all__ = ["Metrics", "Run", "Sweep", "SweepJob", "__version__", "load_run", "load_sweep", "run"]
_API = frozenset(__all__) - {"__version__"}  # aecli.api's names, imported on first use

if TYPE_CHECKING:  # type checkers see the real signatures
    from aecli.api import Metrics, Run, Sweep, SweepJob, load_run, load_sweep, run


def __getattr__(name: str) -> Any:
    if name == "__version__":  # read when asked: importlib.metadata takes 35 ms, before the CLI's stop handlers
        return _version()
    if name in _API:
        from aecli import api

        return getattr(api, name)
    raise AttributeError(f"module 'aecli' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *_API})


def _version() -> str:
    from importlib import metadata

    try:
        return metadata.version("aecli")
    except metadata.PackageNotFoundError:  # run from a source tree that was never installed
        return "0.1.0"
