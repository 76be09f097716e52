"""A versions report for bug reports (``xpnet versions``, ``xpnet.show_versions()``): xpnet,
Python and the platform, array-api-compat, each array library with its devices (NumPy with
its BLAS, CuPy with the CUDA driver and runtime), and the CPU threads xpnet would use."""

from __future__ import annotations

import platform
import sys

import array_api_compat

from xpnet.backends import inventory, threads
from xpnet.version import __version__


def lines() -> list[str]:
    """The report, one line each."""
    return [
        f"xpnet {__version__}",
        f"python {platform.python_version()} ({platform.python_implementation()}, {sys.platform}, "
        f"{platform.machine()})",
        f"array-api-compat {array_api_compat.__version__}",
        *inventory.library_lines(),
        f"threads: {threads.usable_cores()} usable cores (affinity and CPU quota); xpnet sizes the NumPy and "
        "PyTorch pools to those free of other work unless --threads N",
    ]


def show_versions() -> None:
    """Print the report (for a bug report)."""
    for line in lines():
        print(line)
