"""What array libraries this machine has, for bug reports (``xpnet versions``): each library's
version and devices, NumPy's BLAS and its threads, CuPy's CUDA driver and runtime. Every probe
is guarded: a library that fails to load or to list its devices says so in its line."""

from __future__ import annotations

import importlib
import importlib.util
import re


def _numpy() -> str:
    import numpy as np

    try:
        from threadpoolctl import threadpool_info

        pools = [
            f"{p.get('internal_api')} {p.get('version')} ({p.get('num_threads')} threads)"
            for p in threadpool_info()
            if p.get("user_api") == "blas"
        ]
    except Exception as e:  # noqa: BLE001 (a report line, not a failure)
        pools = [f"BLAS unknown ({type(e).__name__})"]
    return f"numpy {np.__version__}: cpu; BLAS {', '.join(pools) or 'unknown'}"


def _cupy() -> str:
    cupy = importlib.import_module("cupy")
    runtime = cupy.cuda.runtime
    count = runtime.getDeviceCount()
    names = []
    for i in range(count):
        props = runtime.getDeviceProperties(i)
        name = props.get("name", b"?")
        names.append(f"cuda:{i} {name.decode() if isinstance(name, bytes) else name}")
    return (
        f"cupy {cupy.__version__}: CUDA driver {runtime.driverGetVersion()}, runtime {runtime.runtimeGetVersion()}; "
        + (", ".join(names) or "no CUDA device")
    )


def _torch() -> str:
    torch = importlib.import_module("torch")
    cuda = [f"cuda:{i} {torch.cuda.get_device_name(i)}" for i in range(torch.cuda.device_count())]
    return f"torch {torch.__version__}: cpu ({torch.get_num_threads()} threads)" + "".join(f", {d}" for d in cuda)


def _jax() -> str:
    jax = importlib.import_module("jax")
    return f"jax {jax.__version__}: " + ", ".join(f"{d.platform}:{d.id}" for d in jax.devices())


def _array_api_strict() -> str:
    strict = importlib.import_module("array_api_strict")
    names = [re.sub(r"^.*\('(.*)'\)$", r"\1", repr(d)) for d in strict.__array_namespace_info__().devices()]
    return f"array-api-strict {strict.__version__}: " + ", ".join(names)


# (module, the line's maker) for each library an xpnet backend runs on
LIBRARIES = (
    ("numpy", _numpy),
    ("cupy", _cupy),
    ("torch", _torch),
    ("jax", _jax),
    ("array_api_strict", _array_api_strict),
)


def library_lines() -> list[str]:
    """One line per array library: its version and devices, or that it is not installed."""
    lines = []
    for module, line in LIBRARIES:
        name = module.replace("_", "-")
        if importlib.util.find_spec(module) is None:
            lines.append(f"{name}: not installed")
            continue
        try:
            lines.append(line())
        except Exception as e:  # noqa: BLE001 (a report line, not a failure)
            first = (str(e).splitlines() or [""])[0][:120]
            lines.append(f"{name}: installed, but {type(e).__name__}: {first}")
    return lines
